"""A local stand-in for SMSC's ``get_stat`` (and ``users.php?get_stat`` for resellers) with
the real server's limits, faults and truth."""

from simulator.config import (
    DEFAULT_ACCOUNTS,
    DIALECTS,
    Account,
    SimulatorConfig,
    load_accounts,
)
from simulator.control import SimulatorControl, SimulatorControlError
from simulator.faults import FaultSpec
from simulator.server import SimulatorServer, start_in_thread
from simulator.truth import Override, Row, moscow_today, subclient_rows, window_rows

__all__ = [
    "DEFAULT_ACCOUNTS",
    "DIALECTS",
    "Account",
    "FaultSpec",
    "Override",
    "Row",
    "SimulatorConfig",
    "SimulatorControl",
    "SimulatorControlError",
    "SimulatorServer",
    "load_accounts",
    "moscow_today",
    "start_in_thread",
    "subclient_rows",
    "window_rows",
]
