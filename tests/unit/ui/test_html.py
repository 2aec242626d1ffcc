"""The console's HTML: values are escaped, charts draw the threshold and mark breaches."""

from datetime import datetime

from ple.ui.html import line_chart, page, table


def test_values_from_the_database_are_escaped():
    html = table(("step", "error"), [("1a__x", "<script>alert(1)</script>")])
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert "<script" not in page("t", "reorganization", "<b>eve</b>", "")


def test_chart_draws_the_threshold_and_marks_the_breach():
    points = [(datetime(2026, 1, d), v) for d, v in ((1, 0), (2, 0), (3, 3))]
    svg = line_chart("null_domains_on_spine", points, high=0)
    assert svg.count("stroke-dasharray") == 1  # the max line
    assert svg.count('fill="#dc2626"><title>') == 1  # one red point: 3 > 0
    assert "(3)" in svg  # the latest value in the title


def test_chart_without_runs():
    assert "no runs" in line_chart("spine", [])
