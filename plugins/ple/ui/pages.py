"""The console's pages, read from the target database (`ctb_postgres`) in read-only transactions.

Each function takes a connection and returns the body of its page. They read what the engine
writes (`ple_ops.*`) and the plan file; they never write. A database the tools have not touched
yet (no `ple_ops`) shows empty sections rather than errors.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from html import escape
from pathlib import Path

import psycopg

from ple.errors import PlanRejected
from ple.reorg import decisions, progress
from ple.sqlutil import raw_template
from ple.ui.html import cell, line_chart, pre, table

AUDIT_RUNS_SHOWN = 60


def _exists(conn: psycopg.Connection, relation: str) -> bool:
    return conn.execute("SELECT to_regclass(%s) IS NOT NULL", (relation,)).fetchone()[0]


def _rows(mapping: dict | None) -> str:
    if not mapping:
        return ""
    return "<br>".join(f"{escape(k)}: {cell(v)}" for k, v in mapping.items())


# ------------------------------------------------------------------------- reorganization
def reorganization(conn: psycopg.Connection, run_id: str | None = None) -> str:
    """The phases (counts, state, what is left), the ledger, approvals, leaf lock and the
    reconcile table. The phase counts and the reconcile table come from one reconcile of the live
    database, so they cannot disagree."""
    from ple.reorg.plan import load

    plan = load()
    ledger_ready = _exists(conn, "ple_ops.action_ledger")
    try:
        with conn.transaction():  # a savepoint: the ledger and approvals show even when reconcile cannot
            verdicts, decided, path, answered = _verdicts(conn)
            phases = progress.phases(conn, answered, verdicts, decided)
    except (psycopg.Error, PlanRejected) as exc:
        verdicts, failure = None, f"<p class='bad'>reconcile could not read this database: {escape(str(exc))}</p>"
    body = [
        f"<p>Plan <code>{plan.sha256}</code> · {len(plan.steps)} steps in {len(plan.phases)} phases. "
        "Every number below comes from the target database: the phase counts are the reconcile table's "
        "(at the bottom) grouped by phase, with the ledger's reverts and failures.</p>",
        "<h2>Phases</h2>",
    ]
    if verdicts is None:
        body.append(failure)
    else:
        body += _phases(phases)
    body += _ledger(conn, run_id) if ledger_ready else ["<h2>Ledger</h2><p class='muted'>no step has run yet</p>"]
    body += _requests(conn, run_id) if run_id else []
    body += _approvals(conn)
    body += _leaf_lock(conn)
    body += _reconcile(verdicts, decided, path) if verdicts is not None else ["<h2>Reconcile</h2>", failure]
    return "".join(body)


PHASE_COLUMNS = ("pending", "conflict", "undecided", "moot", "applied", "adopted", "reverted", "failed")


def _phases(phases: list) -> list[str]:
    rows = [
        (
            p.phase.upper(),
            p.title,
            f"<span class='{p.css}'>{escape(p.state)}</span>",
            *(p.counts[c] for c in PHASE_COLUMNS),
            p.last_change,
        )
        for p in phases
    ]
    left = [
        f"<h3>{escape(p.phase.upper())}: {escape(p.title)}</h3><ul>"
        + "".join(f"<li class='bad'>{escape(item)}</li>" for item in p.checklist)
        + "</ul>"
        for p in phases
        if p.checklist
    ]
    return [
        table(("phase", "title", "state", *PHASE_COLUMNS, "last change"), rows, raw=("state",)),
        "<p class='muted'>pending, conflict, moot, applied, adopted: each action's reconcile state; "
        "undecided: conflicts, moot actions and adoptions with no decision, and unanswered 1L questions; "
        "reverted: actions applied and reverted since (reconcile counts them again as pending or conflict); "
        "failed: steps whose latest attempt failed.</p>",
        "<h2>What is left</h2>",
        "".join(left)
        or "<p class='muted'>nothing: no function names a table a phase took away, no revert kept a copy, "
        "no trigger is disabled on a table of the plan</p>",
    ]


def _ledger(conn: psycopg.Connection, run_id: str | None) -> list[str]:
    rows = conn.execute(raw_template("ui/ledger"), {"run_id": run_id}).fetchall()
    shown = []
    for (
        attempt_id,
        run,
        phase,
        step_id,
        action,
        mode,
        outcome,
        _target,
        sql_text,
        rows_before,
        rows_after,
        merged_rows,
        checksums_before,
        checksums_after,
        duration_ms,
        error,
        started_at,
    ) in rows:
        css = "bad" if outcome == "failed" else "ok"
        shown.append(
            (
                phase.upper(),
                f"<code>{escape(step_id)}</code>" + pre(sql_text),
                action + ("" if mode == "apply" else f" ({mode})"),
                f"<span class='{css}'>{escape(outcome)}</span>",
                _rows(rows_before),
                _rows(rows_after),
                merged_rows,
                pre("\n".join(f"{k}: {v}" for k, v in (checksums_before or {}).items()), "before")
                + pre("\n".join(f"{k}: {v}" for k, v in (checksums_after or {}).items()), "after"),
                duration_ms,
                f"<span class='bad'>{escape(error)}</span>" if error else "",
                started_at,
                f"<a href='reorganization?run_id={escape(run)}'>{escape(run)}</a> #{attempt_id}",
            )
        )
    title = f"Ledger of run <code>{escape(run_id)}</code>" if run_id else "Ledger: the latest attempt of every step"
    return [
        f"<h2>{title}</h2>",
        "<p class='muted'><a href='reorganization'>every run</a></p>" if run_id else "",
        table(
            (
                "phase",
                "step (SQL)",
                "action",
                "outcome",
                "rows before",
                "rows after",
                "merged",
                "checksums",
                "ms",
                "error",
                "started",
                "run",
            ),
            shown,
            raw=("step (SQL)", "outcome", "rows before", "rows after", "checksums", "error", "run"),
            empty="no step of this run has written" if run_id else "no step has run in apply or plan mode yet",
        ),
    ]


def _requests(conn: psycopg.Connection, run_id: str) -> list[str]:
    """The approval requests of the run, as the approver saw them in Required Actions."""
    from ple import approval

    asked = approval.requests_of(conn, run_id)
    if not asked:
        return [f"<h2>Approval requests of run {escape(run_id)}</h2><p class='muted'>this run asked for none</p>"]
    out = [f"<h2>Approval requests of run {escape(run_id)}</h2>"]
    for dag_id, subject, scope, asked_at, body in asked:
        out.append(
            f"<h3>{escape(subject)} <span class='muted'>({escape(dag_id)}, {escape(scope)}, {asked_at:%Y-%m-%d %H:%M:%S})</span></h3>"
        )
        out.append(pre(body, "the request, as the approver saw it"))
    return out


def _approvals(conn: psycopg.Connection) -> list[str]:
    """Every approval and rejection: who, when, what scope, for how long, which runs wrote under
    it, and whether (by whom, why) it was revoked; revoking is the ctb_revoke_approval DAG."""
    from ple import approval

    rows = approval.listing(conn, limit=100)
    if not rows:
        return ["<h2>Approvals</h2><p class='muted'>no approval or rejection recorded</p>"]
    shown = [
        (
            str(r["approval_id"]),  # an id is a label, not a quantity: no thousands separator
            f"<span class='{'ok' if r['verdict'] == 'approve' else 'bad'}'>{escape(r['verdict'])}</span>",
            escape(f"{r['subject']}: {r['scope']}"),
            escape(r["approver"]),
            escape(r["approved_via"]),
            r["approved_at"],
            "standing"
            if r["standing"]
            else ("this run: " + escape(r["for_run"]) if r["for_run"] else "one run")
            if r["verdict"] == "approve"
            else "vetoes the scope",
            "<br>".join(escape(f"{u['scope']}: {u['run_id']}") for u in r["used"]) or "not used",
            escape(
                f"{r['revoked_at']:%Y-%m-%d %H:%M} by {r['revoked_by']}"
                + (f": {r['revoke_reason']}" if r["revoke_reason"] else "")
            )
            if r["revoked_at"]
            else "",
            f"<code>{r['fingerprint'][:16]}</code>",
        )
        for r in rows
    ]
    return [
        "<h2>Approvals</h2>",
        "<p class='muted'>An approval covers the scope its request showed (a phase, or the whole plan: every "
        "phase), for one run unless standing; a rejection vetoes its scope until someone approves it again. "
        "Revoke one with the <code>ctb_revoke_approval</code> DAG (its number), or "
        "<code>python -m ple.cli approve --revoke NUMBER --approver NAME</code>.</p>",
        table(
            (
                "#",
                "verdict",
                "scope",
                "who",
                "via",
                "when",
                "for",
                "runs that wrote under it",
                "revoked",
                "fingerprint",
            ),
            shown,
            raw=("verdict", "scope", "who", "via", "for", "runs that wrote under it", "revoked", "fingerprint"),
            empty="no approval or rejection recorded yet",
        ),
    ]


def _leaf_lock(conn: psycopg.Connection) -> list[str]:
    if not _exists(conn, "ple_ops.leaf_lock"):
        return ["<h2>Leaf lock</h2><p class='muted'>not locked</p>"]
    locks = conn.execute(
        "SELECT schema_name, enforcement, locked_at, run_id FROM ple_ops.leaf_lock ORDER BY 1"
    ).fetchall()
    assigned = conn.execute(
        "SELECT sub_hub, ctb_class, count(*) FROM ple_ops.ctb_path_assignment GROUP BY 1, 2 ORDER BY 1, 2"
    ).fetchall()
    return [
        "<h2>Leaf lock</h2>",
        table(("schema", "enforcement", "locked at", "run"), locks, empty="no schema locked yet"),
        table(("sub-hub", "CTB class", "tables assigned"), assigned, empty="no table assigned to a sub-hub yet"),
    ]


def _reconcile(verdicts, decided, path) -> list[str]:
    """The reconcile table from the live database (every action of the plan as answered: its
    state, the evidence, the proposal, the decision recorded for it) and the decisions files with
    their checksums. Reconcile only reads (catalog, ledger, counts), inside the page's read-only
    transaction."""
    out = ["<h2>Reconcile and decisions</h2>"]
    folder = decisions.directory()
    files = sorted(p for p in folder.rglob("*.yaml") if p.is_file()) if folder.exists() else []
    out.append(
        table(
            ("decisions file", "SHA-256"),
            [(str(p.relative_to(folder)), hashlib.sha256(p.read_bytes()).hexdigest()) for p in files],
            empty=f"no decisions file in {folder}",
        )
    )
    rows = [
        (
            v.step_id.split("__")[0].upper(),
            f"<code>{escape(v.step_id)}</code>",
            v.action.kind,
            v.action.source,
            f"<span class='{RECONCILE_CSS.get(v.status.value, '')}'>{escape(v.status.value)}</span>",
            v.evidence,
            _entry(v.proposal) + (f"<br>target: {_entry(v.target_proposal)}" if v.target_proposal else ""),
            _decision(v, decided),
        )
        for v in verdicts
    ]
    counts = Counter(v.status.value for v in verdicts)
    out += [
        f"<h3>Reconcile: {len(verdicts)} actions ("
        + ", ".join(f"{n} {escape(state)}" for state, n in sorted(counts.items()))
        + f") · decisions from <code>{escape(str(path))}</code></h3>",
        table(
            ("phase", "step", "action", "source", "state", "evidence", "proposal", "decision"),
            rows,
            raw=("step", "state", "proposal", "decision"),
        ),
    ]
    return out


RECONCILE_CSS = {"applied": "ok", "adopted": "ok", "conflict": "bad", "moot": "muted"}


def _verdicts(conn: psycopg.Connection):
    from ple.catalog import read_catalog
    from ple.reorg import reconcile
    from ple.reorg.plan import load

    plan = progress.answered_plan(conn, load())  # 1L's answered questions are actions like the others
    decided = decisions.for_connection(conn)
    effective = decisions.effective_plan(plan, decided)
    verdicts = reconcile.reconcile(conn, plan, read_catalog(conn), None, effective)
    return (
        verdicts,
        decided,
        decided.source if decided.exists else "none recorded yet (decide with the ctb_decide DAG)",
        plan,
    )


def _decision(verdict, decided) -> str:
    """What the decisions file says for this action and, where reconcile proposed one, for its
    merge target; UNDECIDED where a person still has to decide."""
    action = decided.as_table().get(verdict.action.source)
    target = decided.targets.get(verdict.proposal_target) if verdict.target_proposal else None
    shown = [_entry(action)] if action else []
    if target:
        shown.append(f"target: {_entry(target)}")
    if shown:
        return "<br>".join(shown)
    if progress.undecided(verdict, decided):
        return "<span class='bad'>UNDECIDED</span><br><span class='muted'>decide: ctb_decide (Required Actions)</span>"
    return ""


def _entry(entry: dict | None) -> str:
    """A proposal or a decision: `kind: value` per resolution (state and evidence are shown apart)."""
    if not entry:
        return ""
    return "<br>".join(
        escape(key) if value is True else f"{escape(key)}: {cell(value)}"
        for key, value in entry.items()
        if key not in ("state", "evidence")
    )


# ------------------------------------------------------------------------- data quality
def data_quality(conn: psycopg.Connection) -> str:
    from ple.audit.history import ACCEPT_HOW, baseline, thresholds

    if not _exists(conn, "ple_ops.audit_history"):
        return "<p class='muted'>the nightly audit (ctb_nightly_audit) has not run yet</p>"
    rules = thresholds()
    series: dict[str, list] = {}
    for number, taken_at, value, _status, _run in conn.execute(
        raw_template("ui/audit_series"), {"runs": AUDIT_RUNS_SHOWN}
    ).fetchall():
        series.setdefault(number, []).append((taken_at, value))
    charts = [
        line_chart(number, points, rules.get(number, {}).get("min"), rules.get(number, {}).get("max"))
        for number, points in sorted(series.items(), key=lambda item: (not rules.get(item[0]), item[0]))
    ]
    runs = conn.execute(
        "SELECT run_id, taken_at, seconds, status FROM ple_ops.audit_run ORDER BY taken_at DESC LIMIT 20"
    ).fetchall()
    breaches = []
    for number, points in series.items():
        rule = rules.get(number, {})
        for when, value in points:
            if ("max" in rule and value > rule["max"]) or ("min" in rule and value < rule["min"]):
                breaches.append((when, number, value, rule.get("min"), rule.get("max")))
    breaches.sort(reverse=True)
    accepted = baseline(conn)
    base = accepted.numbers if accepted else {}
    latest = [
        (
            n,
            base.get(n),
            points[-1][1],
            _moved(points[-1][1], base.get(n), rules.get(n, {})),
            rules.get(n, {}).get("min"),
            rules.get(n, {}).get("max"),
        )
        for n, points in sorted(series.items())
    ]
    last = runs[0] if runs else None
    verdict = (
        f"<p>Latest run <code>{escape(last[0])}</code>: "
        + (
            f"<span class='bad'>breached</span>: it fails every night until fixed or accepted as the new baseline "
            f"(the run's Required Action <em>accept_baseline</em>, or {escape(ACCEPT_HOW.replace('`', ''))})"
            if last[3] == "breached"
            else f"<span class='ok'>{escape(last[3])}</span>"
        )
        + "</p>"
        if last
        else ""
    )
    return "".join(
        [
            f"<p>The last {AUDIT_RUNS_SHOWN} runs of <code>ctb_nightly_audit</code> (<code>ple_ops.audit_history</code>); "
            "dashed red: the threshold of <code>include/audit/thresholds.yaml</code>; red points broke it. "
            "Each run is judged by the audit's Great Expectations suite: every number against its threshold, and "
            "each number that must not grow against the <strong>accepted baseline</strong> (not the previous run) "
            "plus the run's margin (<code>regression_margin_pct</code> / <code>regression_margin_rows</code>).</p>",
            "<p>Accepted baseline: "
            + (
                escape(accepted.describe())
                if accepted
                else "<span class='muted'>none yet (the first clean run becomes it)</span>"
            )
            + "</p>",
            verdict,
            f"<div class='charts'>{''.join(charts)}</div>",
            "<h2>Latest numbers against the baseline</h2>",
            table(
                ("number", "baseline", "latest", "change", "min", "max"),
                latest,
                raw=("change",),
                empty="no audit has measured the numbers yet",
            ),
            "<h2>Last breaches of an absolute threshold</h2>",
            table(("when", "number", "value", "min", "max"), breaches[:20], empty="no number broke its threshold"),
            "<h2>Runs</h2>",
            table(("run", "taken at", "seconds", "status"), runs, empty="the nightly audit has not run yet"),
            _cleanups(conn),
        ]
    )


def _moved(value: int, base: int | None, rule: dict) -> str:
    """The change from the baseline; red where a number that must not grow grew."""
    if base is None or value == base:
        return ""
    worse = rule.get("worse") == "up" and value > base
    return f"<span class='{'bad' if worse else ''}'>{value - base:+,}</span>"


def _cleanups(conn: psycopg.Connection) -> str:
    if not _exists(conn, "ple_ops.cleanup_ledger"):
        return ""
    rows = conn.execute(
        "SELECT run_id, step, mode, outcome, rows_touched, archived_rows, artifact, duration_ms, started_at "
        "FROM ple_ops.cleanup_ledger ORDER BY attempt_id DESC LIMIT 30"
    ).fetchall()
    return "<h2>Phase 2C cleanups</h2>" + table(
        ("run", "step", "mode", "outcome", "rows", "archived", "artifact", "ms", "started"),
        rows,
        empty="no cleanup has run (ctb_phase_2c_data_quality, mode cleanup)",
    )


# ------------------------------------------------------------------------- DOL imports
def _dol_archive_dir() -> Path:
    """Where dol_staging_import keeps the EFAST2 archives by default: PLE_DOL_ARCHIVE_DIR, else
    <default landing folder>/efast2 (the console does not read Airflow Variables)."""
    import os

    from ple import config

    if os.environ.get(config.DOL_ARCHIVE_DIR_ENV):
        return Path(os.environ[config.DOL_ARCHIVE_DIR_ENV])
    return config.DOL_DEFAULT_LANDING_DIR / config.DOL_ARCHIVE_SUBDIR


def dol_datasets(conn: psycopg.Connection, archive_dir: Path | None = None) -> str:
    """The DOL page's head: each EFAST2 archive (last checked, last changed, outcome) and each
    dataset's rows (live, superseded, history, errors)."""
    from ple.dol import fetch

    states = fetch.archive_states(archive_dir or _dol_archive_dir())
    archives = table(
        ("archive", "outcome", "last checked", "last changed", "bytes", "message"),
        [
            (
                s["name"],
                s.get("status", ""),
                s.get("checked_at") or "",
                s.get("changed_at") or "",
                s.get("size") or 0,
                s.get("message") or "",
            )
            for s in states
        ],
    )
    datasets = "<p class='muted'>nothing imported yet</p>"
    if _exists(conn, "ple_ops.dol_row_history"):
        rows = conn.execute(raw_template("ui/dol_datasets")).fetchall()
        datasets = table(
            ("dataset", "inputs", "rows live", "superseded", "history", "errors", "last import"),
            [(*r[:6], str(r[6]).split(".")[0] if r[6] is not None else "") for r in rows],
            empty="no dataset imported yet",
        )
    return "<h2>EFAST2 archives</h2>" + archives + "<h2>Datasets</h2>" + datasets + "<h2>Imports</h2>"


def dol_imports(conn: psycopg.Connection, limit: int = 200) -> str:
    if not _exists(conn, "ple_ops.dol_import"):
        return "<p class='muted'>dol_staging_import has not run yet</p>"
    head = dol_datasets(conn)
    rows = conn.execute(raw_template("ui/dol_imports"), {"limit": limit}).fetchall()
    totals = conn.execute(
        "SELECT count(*), coalesce(sum(data_rows), 0), coalesce(sum(error_rows), 0), coalesce(sum(superseded), 0) "
        "FROM ple_ops.dol_import"
    ).fetchone()
    shown = [
        (
            str(r[0]),  # an id and a year are labels, not quantities: no thousands separator
            r[1],
            r[2],
            str(r[3]) if r[3] is not None else None,
            f"<span class='{'bad' if r[4] == 'failed' else 'ok'}'>{escape(r[4])}</span>",
            *r[5:11],
            ", ".join(r[11]) if r[11] else "",
            r[16],
            r[12],
            r[14],
            str(r[15]).split(".")[0] if r[15] is not None else "",
        )
        for r in rows
    ]
    return head + "".join(
        [
            f"<p>{totals[0]:,} files · {totals[1]:,} data rows · {totals[2]:,} error rows "
            f"(in <code>ple_ops.dol_import_error</code>, with the raw line) · {totals[3]:,} superseded</p>",
            table(
                (
                    "#",
                    "file",
                    "dataset",
                    "year",
                    "status",
                    "rows",
                    "new",
                    "changed",
                    "unchanged",
                    "errors",
                    "superseded",
                    "unknown columns",
                    "error reasons",
                    "message",
                    "started",
                    "took",
                ),
                shown,
                raw=("status",),
            ),
        ]
    )
