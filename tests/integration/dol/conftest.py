"""Fixtures shared by the DOL tests: the live-shaped DOL tables in a database of their own."""

from tests.integration.dol.test_live_tables import live, live_db, samples  # noqa: F401 (fixtures)
