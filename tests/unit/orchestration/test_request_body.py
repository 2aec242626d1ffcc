"""The approval request as the approver reads it: its scope in the title, the summary first, and
no line longer than the dialog (so Approve and Reject never sit off screen)."""

from ple import approval
from ple.orchestration.approval_gate import WRAP, request_body, wrap

LONG = "INSERT INTO a (" + ", ".join(f"column_{i}" for i in range(200)) + ") SELECT 1"


def test_every_line_fits_and_nothing_is_lost():
    wrapped = wrap(LONG + "\n" + "x" * 350)
    assert max(len(line) for line in wrapped.splitlines()) <= WRAP
    assert "".join(wrapped.split()) == "".join((LONG + "x" * 350).split())


def test_the_title_names_the_scope_and_the_summary_comes_before_the_sql():
    fp = approval.Fingerprint(approval.REORGANIZATION, {"plan": "a" * 64}, approval.phase_scope("1c"))
    body = request_body(fp, LONG, "- `MOVE` `x` → `y`: 10 rows")
    assert body.splitlines()[0].startswith("**Approve exactly this: reorganization, phase 1c**")
    assert body.index("10 rows") < body.index("```sql")
    inside = body.split("```sql", 1)[1]
    assert max(len(line) for line in inside.splitlines()) <= WRAP
    whole = request_body(fp.scoped(approval.WHOLE_PLAN), "SELECT 1")
    assert "the whole plan (every phase)" in whole.splitlines()[0]
