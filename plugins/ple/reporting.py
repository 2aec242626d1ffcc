"""Human-readable reports that tasks write into their logs.

Reports go through the `ple.report` logger, not stdout: Airflow files a task's log records in
order, in the step that wrote them, whereas captured stdout lands after "Done. Returned value
was ..." inside the collapsed "Post Execute" group. Every report line starts with REPORT_PREFIX,
so the demo (and anyone grepping a log) can lift the report out of Airflow's log lines.
"""

from __future__ import annotations

import logging

REPORT_PREFIX = "│ "
log = logging.getLogger("ple.report")


def emit(text: str) -> None:
    for line in text.splitlines() or [""]:
        log.info("%s%s", REPORT_PREFIX, line)


def report_line(line: str) -> str | None:
    """The report part of one log line (from REPORT_PREFIX on), or None for Airflow's own lines."""
    at = line.find(REPORT_PREFIX)
    return line[at:] if at >= 0 else None


class _Terminal(logging.Handler):
    """Writes each report line to whatever sys.stdout is at the time (pytest swaps it)."""

    def emit(self, record: logging.LogRecord) -> None:
        print(self.format(record), flush=True)


def show_reports_on_stdout() -> None:
    """Outside Airflow (the CLI), reports still reach the terminal, bare."""
    if not any(isinstance(h, _Terminal) for h in log.handlers):
        log.addHandler(_Terminal())
        log.setLevel(logging.INFO)
        log.propagate = False


def table(rows: list[tuple], headers: tuple[str, ...]) -> str:
    """A fixed-width text table; numbers right-aligned with thousands separators."""
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]
    numeric = [
        bool(rows)
        and all(row[i] is None or (isinstance(row[i], int | float) and not isinstance(row[i], bool)) for row in rows)
        for i in range(len(headers))
    ]

    def fmt(values):
        return "  ".join(
            v.rjust(w) if numeric[i] else v.ljust(w) for i, (v, w) in enumerate(zip(values, widths, strict=True))
        )

    lines = [fmt(list(headers)), fmt(["-" * w for w in widths])]
    lines += [fmt(r) for r in cells]
    return "\n".join(line.rstrip() for line in lines)


def _cell(value) -> str:
    if isinstance(value, bool) or value is None:
        return "" if value is None else str(value).lower()
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.2f}"
    return str(value)
