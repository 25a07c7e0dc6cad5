"""The reliability suite: every test fills one row of the summary printed at the end of the run."""

from __future__ import annotations

from collections import Counter
from collections.abc import Generator

import pytest

from devtools.reliability.harness import CaseFigures, format_table

#: Rows in the order the tests ran.
RESULTS: list[CaseFigures] = []
_FIGURES = pytest.StashKey[CaseFigures]()


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    # A module's CASE names its rows until a test names its own (a setup error keeps it).
    prefix = getattr(getattr(item, "module", None), "CASE", "")
    name = item.name.removeprefix("test_").replace("_", " ")
    figures = CaseFigures(case=f"{prefix}: {name}" if prefix else name)
    RESULTS.append(figures)
    item.stash[_FIGURES] = figures


@pytest.fixture(autouse=True)
def case(request: pytest.FixtureRequest) -> CaseFigures:
    """This test's row: the test names its case and fills in calls, rows and figures.

    Its seconds include the setup of the module fixture that ran the scenario, if this is
    the first test to use it.
    """
    return request.node.stash[_FIGURES]


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    figures = item.stash.get(_FIGURES, None)
    if figures is None:
        return report
    figures.seconds += report.duration
    if hasattr(report, "wasxfail"):
        figures.outcome = "xfailed (known bug)" if report.skipped else "XPASS"
    elif report.when == "call" or report.failed or report.skipped:
        if report.failed:
            figures.outcome = "FAILED" if report.when == "call" else f"ERROR ({report.when})"
        elif report.skipped:
            figures.outcome = "skipped"
        else:
            figures.outcome = "passed"
    return report


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not RESULTS:
        return
    terminalreporter.write_sep("=", "reliability and security summary")
    # By the case number (the leading digit), keeping run order within a case.
    ordered = sorted(RESULTS, key=lambda c: c.case[:1] if c.case[:1].isdigit() else "9")
    terminalreporter.write_line(format_table(ordered))
    outcomes = Counter(c.outcome for c in RESULTS)
    terminalreporter.write_line(
        f"{len(RESULTS)} case(s): "
        + ", ".join(f"{n} {outcome}" for outcome, n in outcomes.most_common())
        + f"; {sum(c.seconds for c in RESULTS):.0f} s. Seconds include the scenario a row's"
        " module ran first; calls and rows are per row (rows of one scenario overlap)."
    )
