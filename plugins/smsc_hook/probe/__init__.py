"""``python -m smsc_hook.probe``: what SMSC really answers, written as masked fixtures.

:mod:`~smsc_hook.probe.shapes` is pure (a reply's masked shape, its redacted copy, the
parser's verdict); :mod:`~smsc_hook.probe.run` makes the calls and writes the files.
"""

from __future__ import annotations

from smsc_hook.probe.run import UNPACED_GAP, ProbeResult, main, run_probe
from smsc_hook.probe.shapes import (
    EXTENSIONS,
    FIXTURE_NAME,
    FORMAT_NAMES,
    FORMATS,
    Verdict,
    describe_shape,
    fixture_name,
    judge,
    read_fixture_name,
    redact_reply,
)

__all__ = [
    "EXTENSIONS",
    "FIXTURE_NAME",
    "FORMATS",
    "FORMAT_NAMES",
    "UNPACED_GAP",
    "ProbeResult",
    "Verdict",
    "describe_shape",
    "fixture_name",
    "judge",
    "main",
    "read_fixture_name",
    "redact_reply",
    "run_probe",
]
