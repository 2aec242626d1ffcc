"""Run notes say the mode of every run of a DAG that has one."""

from airflow.sdk import Param

from ple.orchestration.run_notes import note_for
from tests.unit.orchestration.dag_runs import dag_run


def test_the_mode_given_or_the_default():
    params = {"mode": Param("plan", type="string", enum=["plan", "apply"])}
    assert note_for(dag_run({"mode": "apply"}, params)) == "mode: apply (changes data once approved)"
    assert note_for(dag_run({}, params)).startswith("mode: plan (writes nothing")


def test_dags_without_a_mode_get_no_note():
    assert note_for(dag_run({}, {"lock_timeout": Param("2s", type="string")})) is None


def test_an_apply_of_the_revert_dag_is_a_revert_of_its_phase():
    params = {
        "mode": Param("plan", type="string", enum=["plan", "apply"]),
        "phase": Param("1k", type="string"),
    }
    run = dag_run({"mode": "apply", "phase": "1g"}, params)
    run.dag_id = "ctb_revert"
    assert note_for(run) == "mode: revert of phase 1g (undoes an applied phase once approved)"
    run.conf = {"phase": "1g"}
    assert note_for(run).startswith("mode: plan (writes nothing")


def test_a_note_someone_wrote_is_kept():
    from ple.orchestration.run_notes import note

    run = dag_run({"mode": "apply"}, {"mode": Param("plan", type="string", enum=["plan", "apply"])})
    run.note = "hotfix, see ticket 42"
    note(run)
    assert run.note == "hotfix, see ticket 42"
    run.note = None
    note(run)
    assert run.note.startswith("mode: apply")


def test_a_rehearsal_note_says_it_runs_on_the_live_target_unless_a_copy_is_named():
    from ple.orchestration.reorg_dags import PARAMS

    on_target = note_for(dag_run({"mode": "rehearse"}, PARAMS))
    assert "on the live target itself" in on_target and "up to 30 s" in on_target
    assert "scratch copy" not in on_target and "never on the live" not in on_target
    on_copy = note_for(dag_run({"mode": "rehearse", "rehearse_conn_id": "neon_branch"}, PARAMS))
    assert "on connection neon_branch" in on_copy
