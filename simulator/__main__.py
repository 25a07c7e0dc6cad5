"""``python -m simulator``: run the SMSC simulator until SIGTERM/SIGINT."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from datetime import date
from types import FrameType

from simulator.config import (
    DEFAULT_ACCOUNTS,
    DEFAULT_DIALECT,
    DIALECTS,
    SimulatorConfig,
    load_accounts,
)
from simulator.faults import FaultSpec
from simulator.server import start_in_thread


def _fault(spec: str) -> FaultSpec:
    try:
        return FaultSpec.parse(spec)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def parse_args(argv: list[str] | None = None) -> SimulatorConfig:
    """Turn the command line into a config."""
    parser = argparse.ArgumentParser(prog="python -m simulator", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765, help="0 picks a free port")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--accounts", metavar="FILE", help="JSON list of accounts")
    parser.add_argument(
        "--rate-limit",
        type=int,
        default=3,
        help="statistics calls (get.php and users.php together) per window",
    )
    parser.add_argument("--rate-window", type=float, default=60.0, help="seconds")
    parser.add_argument(
        "--time-scale", type=float, default=1.0, help="multiplies rate window and IP-block times"
    )
    parser.add_argument("--today", type=date.fromisoformat, help="YYYY-MM-DD; default Moscow date")
    parser.add_argument(
        "--fault",
        type=_fault,
        action="append",
        default=[],
        metavar="SPEC",
        help="KIND[:ARG][:COUNT], e.g. error:9:2, latency:1.5:3, http:503, reset:1",
    )
    parser.add_argument(
        "--dialect",
        choices=DIALECTS,
        default=DEFAULT_DIALECT,
        help="reply layout: arrays (default: lists of rows), single-object (a one-row reply"
        " unwrapped: bare JSON object, XML root that is the row), flat-xml (field elements"
        " straight under the root, each <login> starting a row), strings (JSON cnt as a"
        " string too), numbers (JSON amounts as numbers, 0-4 decimals), omit-zero (logins"
        " without traffic left out: an empty day answers [] or an empty root)",
    )
    parser.add_argument("--quiet", action="store_true", help="do not print the request log")
    args = parser.parse_args(argv)
    if args.time_scale <= 0 or args.rate_window <= 0 or args.rate_limit < 1:
        parser.error("--time-scale and --rate-window must be > 0, --rate-limit >= 1")
    return SimulatorConfig(
        accounts=load_accounts(args.accounts) if args.accounts else DEFAULT_ACCOUNTS,
        seed=args.seed,
        host=args.host,
        port=args.port,
        rate_limit=args.rate_limit,
        rate_window=args.rate_window,
        time_scale=args.time_scale,
        today=args.today,
        faults=list(args.fault),
        quiet=args.quiet,
        dialect=args.dialect,
    )


def main(argv: list[str] | None = None) -> int:
    """Serve until a signal; the first stdout line tells a parent process the URL."""
    config = parse_args(argv)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    server, url = start_in_thread(config)
    print(f"SMSC simulator listening on {url}", flush=True)
    try:
        # A timed wait keeps the main thread responsive to signals.
        while not stop.wait(0.5):
            pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
