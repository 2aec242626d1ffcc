"""The console's page of old names: each compatibility object the reorganization left at a name it
took away, and who still uses it (issue 23; plugins/ple/reorg/usage.py says what is measured).
Its own module, so that pages.py stays as the other pages need it."""

from __future__ import annotations

from html import escape

import psycopg

from ple.ui.html import table


def compatibility(conn: psycopg.Connection) -> str:
    from ple.reorg import usage

    found = usage.report(conn)
    rows = []
    for item in found["objects"]:
        uses = item["uses"] or [None]
        for use in uses:
            rows.append(
                (
                    item["name"],
                    item["kind"],
                    item["over"],
                    item["removed"] or f"standing; grace {item['grace']} from {item['created_at']:%Y-%m-%d %H:%M}",
                    use["last_at"] if use else "no use recorded",
                    use["role"] if use else "",
                    use["calls"] if use else 0,
                    f"{use['operation']} ({use['source']})" if use else "",
                )
            )
    statements = "installed" if found["statements"] else "not installed: reads are not measured"
    return "".join(
        [
            f"<p>What is measured: {escape(found['measured'])}. pg_stat_statements: {escape(statements)}. "
            "The <code>ctb_contract</code> DAG removes an object once its grace has passed with no use, "
            "after an approval listing exactly what goes; its revert makes them again.</p>",
            table(
                ("old name", "kind", "now reads", "state", "last use", "by role", "how often", "what"),
                rows,
                empty="no compatibility view or function: no phase that moved a table has applied yet",
            ),
        ]
    )
