"""An application writing into a live merge target while the tool works, for the adversarial tests."""

import threading
import time

import psycopg

SOURCE = "marketing.failed_email_verification"
TARGET = "people.people_errors"


class Application:
    """Writes one row into the target every 50 ms with a 2 s lock timeout; counts refusals."""

    def __init__(self, dsn: str):
        self.dsn, self.written, self.refused, self.stop = dsn, 0, 0, threading.Event()
        self.errors: list[str] = []
        self.thread = threading.Thread(target=self._run)

    def _run(self):
        with psycopg.connect(self.dsn, autocommit=True) as app:
            app.execute("SET lock_timeout = '2s'")
            while not self.stop.is_set():
                try:
                    app.execute(
                        f"INSERT INTO {TARGET} SELECT (jsonb_populate_record(p, jsonb_build_object("
                        f"'error_id', gen_random_uuid()))).* FROM {TARGET} AS p "
                        "WHERE NOT to_jsonb(p) ? 'ctb_source_table' OR to_jsonb(p) ->> 'ctb_source_table' IS NULL LIMIT 1"
                    )
                    self.written += 1
                except psycopg.errors.LockNotAvailable:
                    self.refused += 1
                except psycopg.Error as exc:
                    self.errors.append(str(exc))
                time.sleep(0.05)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()
