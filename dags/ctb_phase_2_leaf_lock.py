"""
# ctb_phase_2_leaf_lock

Phase 2 of the CTB plan, as an Airflow DAG: after every Phase 1 phase is frozen, register each
sub-hub's CANONICAL, ERRORS, MATERIALIZED_VIEW and REGISTRY tables, and lock the leaf schemas: a new
table without a CTB path assignment (`ple_ops.ctb_path_assignment`) is refused by an event
trigger ("No new tables allowed without CTB path assignment").

`mode=plan` (default) reports what is missing and writes nothing; `mode=apply` needs Phase 1
complete and the plan approved. Where the role may not create event triggers, the lock is
recorded as audit-only.
"""

from ple.orchestration.reorg_dags import build_leaf_lock_dag

dag = build_leaf_lock_dag(doc_md=__doc__)
