"""
# ctb_approve_plan

Records, in the target database (`ple_ops.approval`), that a named person approved the exact
CTB plan file (its SHA-256 is prefilled in the trigger form) together with the engine code that
will carry it out. Editing the plan or the engine voids the approval; `apply` runs of the phase
DAGs refuse without one.
Command-line equivalent: `make approve APPROVER=<name>`. Airflow DAG, manual trigger only.
"""

from ple.orchestration.reorg_dags import build_approval_dag

dag = build_approval_dag(doc_md=__doc__)
