"""The audit and cleanup tests run on both fixtures: the pre-plan PLE fixture (`fresh_db`) and the
production twin (`twin_db`)."""

import psycopg
import pytest

FIXTURES = ["fresh_db", "twin_db"]


@pytest.fixture(params=FIXTURES)
def db(request):
    """A private database of one fixture (ctb_postgres points at it); its DSN."""
    return request.getfixturevalue(request.param)


@pytest.fixture
def conn(db):
    with psycopg.connect(db, autocommit=True) as connection:
        yield connection
