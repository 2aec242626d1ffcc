"""Which PostgreSQL servers the bundle runs on, stated once and checked before any write.

Neon offers PostgreSQL 14 to 18. The reorganization engine needs 14 (the freeze's `CREATE OR
REPLACE TRIGGER` is new in 14) and uses nothing newer (no MERGE, no NULLS NOT DISTINCT, no
pg_input_is_valid); CI runs the whole suite on 16 (the pgserver wheel) and 15 (Debian's package).
A server outside the range is refused before the first statement that writes, with the fix named,
rather than failing halfway on a missing function or a changed catalog.
"""

from __future__ import annotations

import psycopg

from ple.errors import PermanentError

OLDEST_SUPPORTED_MAJOR = 14
NEWEST_SUPPORTED_MAJOR = 18


class UnsupportedServer(PermanentError):
    """The target database runs a PostgreSQL major version this bundle does not support."""


def major_of(server_version_num: int) -> int:
    """The major version of a `server_version_num` (160004 -> 16; 90624 -> 9.6 reads as 9)."""
    return server_version_num // 10000


def refuse_unsupported(server_version_num: int, server_version: str = "") -> int:
    """Raise UnsupportedServer unless the server's major version is in the supported range;
    returns the major version."""
    major = major_of(server_version_num)
    if OLDEST_SUPPORTED_MAJOR <= major <= NEWEST_SUPPORTED_MAJOR:
        return major
    shown = server_version or str(server_version_num)
    raise UnsupportedServer(
        f"the target database runs PostgreSQL {shown} (major {major}); this bundle supports PostgreSQL "
        f"{OLDEST_SUPPORTED_MAJOR} to {NEWEST_SUPPORTED_MAJOR}: point the connection ctb_postgres at a "
        f"server in that range (on Neon: a project or branch created with PostgreSQL "
        f"{OLDEST_SUPPORTED_MAJOR}-{NEWEST_SUPPORTED_MAJOR}), or upgrade this one"
    )


def require_supported_server(conn: psycopg.Connection) -> int:
    """Refuse (UnsupportedServer) a connection to an unsupported PostgreSQL; returns its major version.

    Reads what the server reported at connection time (`server_version` is a GUC_REPORT
    parameter), so it costs no round trip and opens no transaction: safe in `plan` mode and
    through a transaction-mode pooler.
    """
    return refuse_unsupported(conn.info.server_version, conn.info.parameter_status("server_version") or "")
