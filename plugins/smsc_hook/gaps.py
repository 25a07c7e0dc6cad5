"""``python -m smsc_hook.gaps``: the command's stable name; the code is
:mod:`smsc_hook.checks.gaps`."""

from __future__ import annotations

from smsc_hook.checks.gaps import main

__all__ = ["main"]

if __name__ == "__main__":
    raise SystemExit(main())
