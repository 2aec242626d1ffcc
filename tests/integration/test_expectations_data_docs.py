"""Great Expectations through a file data context: a Checkpoint with UpdateDataDocsAction stores
each validation and publishes it in the Data Docs site the console serves; no password is
written to the project."""

import re

import psycopg
import pytest

from ple import expectations
from ple.db import sqlalchemy_url
from ple.expectations import TableSuite
from ple.ui import data_docs

pytestmark = pytest.mark.slow


def test_validations_are_stored_in_data_docs(conn, tmp_path, monkeypatch):
    monkeypatch.setenv("PLE_GX_DATA_DOCS", "true")
    monkeypatch.setattr(expectations, "GX_PROJECT_DIR", tmp_path / "gx_project")
    url = sqlalchemy_url(conn)
    rows = conn.execute("SELECT count(*) FROM outreach.outreach").fetchone()[0]
    suites = [TableSuite("outreach.outreach", row_count=rows, not_null=["outreach_id"], unique=[["outreach_id"]])]

    passed = expectations.validate(url, suites, name="ctb_phase_test")
    failed = expectations.validate(url, [TableSuite("outreach.outreach", row_count=rows + 1)], name="ctb_phase_test_2")

    assert [r.success for r in passed] == [True, True, True]
    assert [r.success for r in failed] == [False]
    site = expectations.data_docs_dir()
    index = (site / "index.html").read_text()
    assert "ctb_phase_test.0.outreach.outreach" in index and "ctb_phase_test_2.0.outreach.outreach" in index
    assert len(list((site / "validations").rglob("*.html"))) == 2
    for written in [*site.rglob("*.html"), *site.rglob("*.css")]:  # as the console serves them
        served = data_docs.localize(written.read_text(), str(written.relative_to(site)))
        assert data_docs.EXTERNAL_REFERENCE.search(served) is None, written
        for link in re.findall(r"(?:src|href)=\"([^\"]*_vendor/[^\"]*)\"", served):
            assert data_docs.vendored(str((written.parent / link).resolve().relative_to(site.resolve()))), link
    config = (tmp_path / "gx_project" / "gx" / "great_expectations.yml").read_text()
    password_free = psycopg.conninfo.conninfo_to_dict(conn.info.dsn).get("password") is None
    assert "${PLE_GX_CONNECTION}" in config or password_free
    assert "postgresql+psycopg://" not in config
