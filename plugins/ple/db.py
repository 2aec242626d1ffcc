"""Connections and transactions against the target database.

Every connection comes from the Airflow connection `ctb_postgres` through the Postgres provider's
hook, in a DAG task and on the command line alike. Connections are autocommit; work happens in
explicit transactions that set their own limits with SET LOCAL, because on Neon's pooled endpoint
(PgBouncer in transaction mode) nothing set on the session survives the transaction.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

import psycopg
from psycopg import errors

from ple.config import CTB_CONN_ID

log = logging.getLogger(__name__)

T = TypeVar("T")


def connect(conn_id: str = CTB_CONN_ID) -> psycopg.Connection:
    """An autocommit psycopg connection to the Airflow connection `conn_id`.

    Server-side prepared statements are off: PgBouncer in transaction mode (Neon's pooled
    endpoint) cannot keep them between transactions.
    """
    from airflow.providers.postgres.hooks.postgres import PostgresHook

    conn = PostgresHook(postgres_conn_id=conn_id).get_conn()
    conn.autocommit = True
    conn.prepare_threshold = None
    return conn


def sqlalchemy_url(conn: psycopg.Connection) -> str:
    """The database `conn` is connected to, as a SQLAlchemy URL (Great Expectations speaks
    SQLAlchemy): the expectations always check the very database the run changed."""
    from sqlalchemy.engine import URL

    params = conn.info.get_parameters()
    query = {
        k: v
        for k, v in params.items()
        if k in ("sslmode", "sslrootcert", "sslcert", "sslkey", "options", "target_session_attrs")
    }
    return URL.create(
        "postgresql+psycopg",
        username=params.get("user"),
        password=conn.info.password or None,
        host=conn.info.host,
        port=conn.info.port,
        database=conn.info.dbname,
        query=query,
    ).render_as_string(hide_password=False)


@contextmanager
def transaction(
    conn: psycopg.Connection,
    *,
    lock_timeout: str = "2s",
    statement_timeout: str = "30min",
    read_only: bool = False,
    snapshot: bool = False,
) -> Iterator[psycopg.Connection]:
    """One transaction with its own lock and statement limits (SET LOCAL: pool-safe).

    A read-only transaction is enforced by the server: `plan` mode cannot write even by mistake.
    `snapshot` makes it REPEATABLE READ: every statement sees the same moment.
    """
    with conn.transaction():
        if read_only or snapshot:
            conn.execute(
                "SET TRANSACTION ISOLATION LEVEL "
                + ("REPEATABLE READ" if snapshot else "READ COMMITTED")
                + (", READ ONLY" if read_only else "")
            )
        conn.execute(
            "SELECT set_config('lock_timeout', %s, true), set_config('statement_timeout', %s, true)",
            (lock_timeout, statement_timeout),
        )
        yield conn


def with_lock_retry(
    work: Callable[[], T],
    *,
    attempts: int = 5,
    first_delay: float = 0.5,
    max_delay: float = 15.0,
    on_retry: Callable[[int, Exception, float], None] | None = None,
) -> T:
    """Run `work` (one whole transaction); on a lock timeout or deadlock, back off and try again.

    The lock timeout keeps each try from queueing production queries behind us for longer than
    the timeout; the backoff (exponential, with jitter) gives the other sessions room.
    """
    for attempt in range(1, attempts + 1):
        try:
            return work()
        except (errors.LockNotAvailable, errors.DeadlockDetected, errors.SerializationFailure) as exc:
            if attempt == attempts:
                raise
            delay = min(max_delay, first_delay * 2 ** (attempt - 1)) * (0.5 + random.random() / 2)
            log.warning("attempt %d/%d hit %s; retrying in %.1fs", attempt, attempts, type(exc).__name__, delay)
            if on_retry:
                on_retry(attempt, exc, delay)
            time.sleep(delay)
    raise AssertionError("unreachable")
