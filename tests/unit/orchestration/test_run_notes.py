"""Run notes say the mode of every run of a DAG that has one."""

from types import SimpleNamespace

from airflow.sdk import Param
from airflow.sdk.definitions.param import ParamsDict

from ple.orchestration.run_notes import note_for


def _run(conf, params):
    return SimpleNamespace(conf=conf, dag=SimpleNamespace(params=ParamsDict(params)), note=None)


def test_the_mode_given_or_the_default():
    params = {"mode": Param("plan", type="string", enum=["plan", "apply"])}
    assert note_for(_run({"mode": "apply"}, params)) == "mode: apply (changes data once approved)"
    assert note_for(_run({}, params)).startswith("mode: plan (writes nothing")


def test_dags_without_a_mode_get_no_note():
    assert note_for(_run({}, {"lock_timeout": Param("2s", type="string")})) is None
