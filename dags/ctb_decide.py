"""
# ctb_decide

The reorganization's decisions for this database, made in the UI: each proposal nobody has
decided yet (a hand copy to set aside, a gone merge target to create, a guard to accept...) is
asked in **Required Actions** with its evidence and lossless options (`mode=apply`), or all of
them at once with the list of what would be accepted (`accept=all_listed`). The answers become a
new version of the decisions in the database (`ple_ops.decision_version`, with who answered
what), exported to the decisions file; a new version voids earlier approvals of the plan.
`mode=plan` lists the open questions and records nothing.
Command-line equivalent: `make decide ACCEPT=proposed`. Airflow DAG, manual trigger only.
"""

from ple.orchestration.decide_dags import build_decide_dag

dag = build_decide_dag(doc_md=__doc__)
