"""
# ctb_revert

Undoes one phase of the CTB reorganization, last step first: archives are thawed and moved back,
merged copies that are still exactly what the merge wrote are taken out of their targets (copies
edited since are kept and reported), folded columns the side tables can give back are dropped,
keys the tool added are released (a column it did not create is never dropped), relaxed NOT NULLs
are restored. It ends with a proof against the phase's preflight snapshot.

`render_plan` shows what would happen and writes nothing; with `mode=apply`, `approve` asks for an
approval of subject "revert" for this phase in Required Actions (unless one is recorded:
`python -m ple.cli approve --revert <phase> --approver <name>`), then `apply_revert` runs.
Resumable: run it again after any failure. Airflow DAG, manual trigger only.
"""

from ple.orchestration.revert_dags import build_revert_dag

dag = build_revert_dag(doc_md=__doc__)
