"""A stand-in for a DAG run as run_notes reads it: its conf, its DAG's params and its note."""

from __future__ import annotations

from types import SimpleNamespace

from airflow.sdk.definitions.param import ParamsDict


def dag_run(conf, params):
    return SimpleNamespace(conf=conf, dag=SimpleNamespace(params=ParamsDict(params)), note=None)
