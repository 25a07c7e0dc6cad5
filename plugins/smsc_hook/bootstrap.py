"""``python -m smsc_hook.bootstrap``: the command's stable name; the code is
:mod:`smsc_hook.airflow.bootstrap`."""

from __future__ import annotations

from smsc_hook.airflow.bootstrap import main

__all__ = ["main"]

if __name__ == "__main__":
    raise SystemExit(main())
