"""Contract: compatibility objects whose grace period has passed and that show no use go, after an
approval that lists exactly which (issue 23; the ctb_contract DAG runs this).

Due: standing (ple_ops.compat_object.removed_at NULL), created longer ago than its own grace
(`grace`, 30 days by default, per object), and no use recorded within that grace (ple_ops.compat_use:
writes counted by the object's trigger, reads sampled from pg_stat_statements where it exists; see
usage.py for what cannot be seen). The approval (subject "contract") covers the list of names with
their DDL and the engine code: a list that changed since voids it. Each object is dropped in its own
transaction under the advisory lock, re-checking the approval; its row and DDL stay, so `revert`
(subject "contract-revert", over the objects the contract removed) makes them again. Nothing here
touches a row of data: a compatibility object is a view and its trigger functions.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

import psycopg

from ple import approval
from ple.db import transaction
from ple.reorg import compat, usage
from ple.reorg.context import hold
from ple.sqlutil import raw_template

SUBJECT = "contract"
REVERT_SUBJECT = "contract-revert"


@dataclass(frozen=True)
class Due:
    name: str
    kind: str
    over: str
    created_at: object
    grace: object
    last_use: object
    drop_ddl: str

    def line(self) -> str:
        used = f"last used {self.last_use}" if self.last_use else "no use recorded"
        return f"{self.name} ({self.kind} over {self.over}): made {self.created_at}, grace {self.grace}, {used}"


def due(conn: psycopg.Connection) -> list[Due]:
    usage.sample(conn)
    if conn.execute("SELECT to_regclass('ple_ops.compat_object') IS NULL").fetchone()[0]:
        return []
    return [Due(*row) for row in conn.execute(raw_template("ops/compat_due"))]


def removed(conn: psycopg.Connection) -> list[tuple[str, str]]:
    """(name, ddl) of the objects the contract removed and its revert would make again."""
    if conn.execute("SELECT to_regclass('ple_ops.compat_object') IS NULL").fetchone()[0]:
        return []
    return conn.execute(
        "SELECT name, ddl FROM ple_ops.compat_object WHERE removed_by LIKE 'contract%%' ORDER BY name"
    ).fetchall()


def _digest(items) -> str:
    return hashlib.sha256(json.dumps(sorted(items)).encode()).hexdigest()


def fingerprint(conn: psycopg.Connection) -> approval.Fingerprint:
    objects = [(d.name, d.drop_ddl) for d in due(conn)]
    return approval.Fingerprint(SUBJECT, {"objects": _digest(objects), "code": approval.code_sha256()})


def revert_fingerprint(conn: psycopg.Connection) -> approval.Fingerprint:
    return approval.Fingerprint(
        REVERT_SUBJECT, {"objects": _digest([list(r) for r in removed(conn)]), "code": approval.code_sha256()}
    )


def render(conn: psycopg.Connection) -> str:
    items = due(conn)
    if not items:
        return "contract: no compatibility object is due (grace not over, or still in use)"
    lines = [f"contract would drop exactly these {len(items)} compatibility objects (no data is touched):"]
    lines += [f"  {d.line()}\n    {d.drop_ddl}" for d in items]
    return "\n".join(lines)


def render_revert(conn: psycopg.Connection) -> str:
    items = removed(conn)
    if not items:
        return "contract revert: nothing the contract removed is missing"
    return "contract revert would make again:\n" + "\n".join(f"  {name}" for name, _ in items)


def approve(conn: psycopg.Connection, approver: str, **kwargs) -> int:
    return approval.approve(conn, fingerprint(conn), approver, via=kwargs.pop("via", "test"), **kwargs)


def approve_revert(conn: psycopg.Connection, approver: str, **kwargs) -> int:
    return approval.approve(conn, revert_fingerprint(conn), approver, via=kwargs.pop("via", "test"), **kwargs)


HOW = "the ctb_contract DAG's approval (Required Actions)"


def apply(conn: psycopg.Connection, run_id: str, lock_timeout: str = "2s") -> list[str]:
    """Drop every due object, one transaction each; the approval is of the list as it was when
    asked (re-checked per object: a list that changed meanwhile stops the run)."""
    items = due(conn)
    if not items:
        return []  # nothing due: nothing to approve, nothing done
    fp = fingerprint(conn)
    with transaction(conn):  # refused before anything is dropped, and claimed by this run
        approval.require(conn, fp, HOW, run_id=run_id)
    done = []
    for item in items:
        with transaction(conn, lock_timeout=lock_timeout, statement_timeout="5min"):
            hold(conn, fp, HOW, run_id=run_id)
            compat.remove(conn, item.name, item.drop_ddl, f"contract {run_id}")
            done.append(item.name)
    return done


def revert(conn: psycopg.Connection, lock_timeout: str = "2s", run_id: str = "contract-revert") -> list[str]:
    """Make again what the contract removed (one transaction each); what cannot come back (its
    table moved since, or its name taken) stays removed and is left out of the result."""
    items = removed(conn)
    if not items:
        return []
    fp = revert_fingerprint(conn)
    with transaction(conn):
        approval.require(conn, fp, HOW, run_id=run_id)
    done = []
    for name, _ in items:
        with transaction(conn, lock_timeout=lock_timeout, statement_timeout="5min"):
            hold(conn, fp, HOW, run_id=run_id)
            if compat.restore(conn, name):
                done.append(name)
    return done
