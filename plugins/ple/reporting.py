"""Human-readable reports that tasks print into their logs.

Every report line starts with REPORT_PREFIX, so the demo (and anyone grepping a log) can lift the
report out of Airflow's log lines.
"""

from __future__ import annotations

REPORT_PREFIX = "│ "


def emit(text: str) -> None:
    for line in text.splitlines() or [""]:
        print(REPORT_PREFIX + line, flush=True)


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
