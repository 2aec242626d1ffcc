"""DAG integrity: every DAG file parses with no database and no connection lookup, and carries
an owner, retries, tags from the vocabulary and documentation."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from ple.config import TAGS
from tests.airflow_dags_test import dag_file
from tests.helpers import REPO

CONTRACT_DAG_IDS = {
    *(f"ctb_phase_1{letter}" for letter in "abcdefghijkl"),
    "ctb_phase_2c_data_quality",
    "ctb_phase_2_leaf_lock",
    "ctb_reorganization",
    "ctb_nightly_audit",
    "ctb_contract",
    "dol_staging_import",
}
# Contract DAGs whose issue is still open; shrinks to empty as they land.
PENDING_DAG_IDS: set[str] = set()


def _parse(airflow_env, folder=REPO / "dags", **env) -> dict:
    env = dict(airflow_env, AIRFLOW_CONN_CTB_POSTGRES="postgresql://nobody@192.0.2.1:1/none", **env)
    result = subprocess.run(
        [sys.executable, str(REPO / "tests" / "dags" / "parse_dags.py"), str(folder)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def parsed(airflow_env):
    return _parse(airflow_env)


def test_a_task_process_builds_only_its_own_phase_dag(airflow_env):
    """Airflow sets the parsing context to the DAG whose task it runs: ctb_phases.py then builds
    that phase's DAG, not all twelve, and nothing for another DAG's task."""
    phases = REPO / "dags" / "ctb_phases.py"
    assert set(_parse(airflow_env, phases, _AIRFLOW_PARSING_CONTEXT_DAG_ID="ctb_phase_1c")["dags"]) == {"ctb_phase_1c"}
    assert _parse(airflow_env, phases, _AIRFLOW_PARSING_CONTEXT_DAG_ID="ctb_reorganization")["dags"] == {}


def test_the_suites_dags_test_parses_each_dags_own_file(parsed):
    """tests/airflow_dags_test.py gives `airflow dags test` a folder with just the DAG's file,
    found by name: every DAG is where that rule looks (else a run parses the whole folder)."""
    for dag_id, dag in parsed["dags"].items():
        assert dag_file(REPO / "dags", dag_id) == Path(dag["fileloc"]), dag_id


def test_no_import_errors(parsed):
    assert parsed["import_errors"] == {}


def test_no_database_or_connection_touched_while_parsing(parsed):
    assert parsed["touched"] == []


def test_contract_dag_ids_present(parsed):
    built = set(parsed["dags"])
    missing = CONTRACT_DAG_IDS - built
    assert not missing or missing <= PENDING_DAG_IDS, missing


# A question that follows a failure already alerted, and whose "no" is the failure itself: never
# retried (a retry would ask again), never alerted twice (orchestration/audit_dags.py).
NOT_RETRIED = {("ctb_nightly_audit", "accept_baseline")}


def test_every_task_has_owner_retries_and_an_alert(parsed):
    for dag_id, dag in parsed["dags"].items():
        for task_id, task in dag["tasks"].items():
            assert task["owner"] == "ple-data-platform", (dag_id, task_id)
            if (dag_id, task_id) in NOT_RETRIED:
                continue
            assert task["retries"] >= 1, (dag_id, task_id)
            assert task["has_failure_callback"], (dag_id, task_id)


def test_tags_from_the_vocabulary_and_docs(parsed):
    for dag_id, dag in parsed["dags"].items():
        assert dag["tags"], dag_id
        assert set(dag["tags"]) <= TAGS, dag_id
        assert len(dag["doc_md"]) > 80, dag_id


REORGANIZATION_PARAMS = {
    "mode",
    "lock_timeout",
    "statement_timeout",
    "lock_retries",
    "large_table_rows",
    "backfill_batch_pages",
    "rehearse_conn_id",
    "rehearse_budget_seconds",
}
EXPECTED_PARAMS = {
    "ctb_phase_1a": REORGANIZATION_PARAMS,
    "ctb_reorganization": REORGANIZATION_PARAMS,
    "ctb_approve_plan": {"plan_sha256", "note", "standing"},
    "ctb_revoke_approval": {"approval_id", "reason"},
    "ctb_decide": {"mode", "accept"},
    "ctb_revert": {"phase", "mode", "lock_timeout", "lock_retries"},
    "ctb_contract": {"mode", "lock_timeout"},
    "ctb_phase_2_leaf_lock": {"mode"},
    "ctb_phase_2c_data_quality": {"mode", "lock_timeout", "artifacts_dir", "steps"},
    "ctb_nightly_audit": {"regression_margin_pct", "regression_margin_rows", "lock_timeout", "offer_baseline"},
    "dol_staging_import": {
        "landing_dir",
        "urls",
        "add_columns",
        "guard_setting",
        "guard_value",
        "fetch_efast2",
        "years",
        "datasets",
        "base_url",
        "archive_dir",
    },
}


def test_every_mode_and_option_is_a_typed_param(parsed):
    for dag_id, names in EXPECTED_PARAMS.items():
        params = parsed["dags"][dag_id]["params"]
        assert set(params) == names, dag_id
        assert all(schema.get("type") for schema in params.values()), dag_id
    for dag_id in (
        "ctb_phase_1a",
        "ctb_reorganization",
        "ctb_phase_2c_data_quality",
        "ctb_phase_2_leaf_lock",
        "ctb_revert",
    ):
        rehearse = ["rehearse"] if dag_id in ("ctb_phase_1a", "ctb_reorganization") else []
        assert parsed["dags"][dag_id]["params"]["mode"]["enum"] == ["plan", "apply", *rehearse]
        assert parsed["dags"][dag_id]["params"]["mode"].get("default", "plan") == "plan"


def test_every_trigger_form_can_be_submitted_with_its_defaults(parsed):
    """The UI form counts an empty string as a missing required value and keeps Trigger disabled:
    an option that may stay empty is nullable with a null default; every default validates."""
    import jsonschema

    for dag_id, dag in parsed["dags"].items():
        for name, schema in dag["params"].items():
            default = schema.get("default")
            assert default != "", (dag_id, name, "declare it nullable: type ['null', 'string'], default None")
            if default is None:
                assert "null" in schema["type"], (dag_id, name)
            checked = {k: v for k, v in schema.items() if k not in ("default", "title", "description")}
            jsonschema.validate(default, checked)


def test_every_param_is_described_and_a_constrained_one_says_its_format(parsed):
    """A refused value is reported by the param's key (Airflow: "Invalid input for param
    lock_timeout: ... does not match '^[0-9]+(ms|s|min)$'"): the field under that key says what
    it is, and a pattern's description says the format in words with an example that passes."""
    import re

    for dag_id, dag in parsed["dags"].items():
        for name, schema in dag["params"].items():
            assert schema.get("description"), (dag_id, name)
            if "pattern" in schema and schema["pattern"].endswith("(ms|s|min)$"):
                assert "e.g. 500ms, 2s, 1min" in schema["description"], (dag_id, name)
                assert all(re.match(schema["pattern"], example) for example in ("500ms", "2s", "1min"))


def test_the_revert_form_defaults_to_the_last_applied_phase_not_a_phase_never_applied(parsed):
    """Nothing reads the database while DAG files are parsed: the default is a choice the run
    resolves from the ledger (tests/integration/orchestration/test_revert_last_applied.py)."""
    phase = parsed["dags"]["ctb_revert"]["params"]["phase"]
    assert phase["default"] == "last applied" == phase["enum"][0]
    assert "applied most recently" in phase["description"]
