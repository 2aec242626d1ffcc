"""The audit and cleanup tests run on every fixture: the pre-plan PLE fixture (`fresh_db`) and,
once it exists, the production twin (`twin_db`)."""

import psycopg
import pytest

import tests.conftest

FIXTURES = ["fresh_db"] + (["twin_db"] if hasattr(tests.conftest, "twin_db") else [])


@pytest.fixture(params=FIXTURES)
def db(request):
    """A private database of one fixture (ctb_postgres points at it); its DSN."""
    return request.getfixturevalue(request.param)


@pytest.fixture
def conn(db):
    with psycopg.connect(db, autocommit=True) as connection:
        yield connection
