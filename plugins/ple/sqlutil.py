"""Safe SQL composition: identifiers only through psycopg.sql, templates from include/sql/.

Templates use psycopg's `{name}` placeholders for identifiers and SQL fragments and `%(name)s`
for values, so a template can never splice a value into the statement text.
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
    if not isinstance(name, str) or not IDENTIFIER.match(name):
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
def _template_text(name: str) -> str:
    return (SQL_DIR / f"{name}.sql").read_text(encoding="utf-8")


def template(name: str, **parts: sql.Composable) -> sql.Composed:
    """Load include/sql/<name>.sql and fill its `{placeholders}` with composed SQL parts."""
    return sql.SQL(_template_text(name)).format(**parts)


def raw_template(name: str) -> str:
    """A template with no identifier placeholders (only %(value)s parameters)."""
    return _template_text(name)


def render(statement: sql.Composable, conn) -> str:
    return statement.as_string(conn)
