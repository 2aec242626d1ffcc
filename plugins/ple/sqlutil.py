"""Safe SQL composition: identifiers only through psycopg.sql, templates from include/sql/.

Templates hold fixed SQL with `%(name)s` placeholders for values; statements that need
identifiers are composed with psycopg.sql, so neither can splice text into a statement.
"""

from __future__ import annotations

import functools
import re

from psycopg import sql

from ple.config import SQL_DIR

IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


class UnsafeIdentifier(ValueError):
    pass


def check_identifier(name: str) -> str:
    """Names of tables and columns must be plain lower-case identifiers.

    psycopg.sql.Identifier would quote anything safely; this check is stricter on purpose, so
    that a plan entry carrying SQL or odd quoting is rejected with a clear message before any
    statement is built.
    """
    if not isinstance(name, str) or not IDENTIFIER.fullmatch(name):
        raise UnsafeIdentifier(f"not a plain identifier: {name!r}")
    return name


def split_qualified(name: str) -> tuple[str, str]:
    parts = name.split(".") if isinstance(name, str) else []
    if len(parts) != 2:
        raise UnsafeIdentifier(f"expected schema.table, got {name!r}")
    return check_identifier(parts[0]), check_identifier(parts[1])


def qualified(name: str) -> sql.Identifier:
    return sql.Identifier(*split_qualified(name))


def identifiers(names) -> sql.Composed:
    return sql.SQL(", ").join(sql.Identifier(check_identifier(n)) for n in names)


@functools.cache
def raw_template(name: str) -> str:
    """include/sql/<name>.sql: fixed SQL with %(value)s parameters."""
    return (SQL_DIR / f"{name}.sql").read_text(encoding="utf-8")
