"""
# ctb_reorganization

Every phase of the CTB reorganization plan with actions (1A..1K), in the document's order, as
the same task groups the per-phase DAGs use; 1L (pending human decisions) is reported by
`ctb_phase_1l` and has nothing to apply. Runs to the end under `airflow dags test` (no
scheduler, no triggered DAGs).

`mode=plan` (default) writes nothing; `mode=apply` needs an approval of this exact plan file.
Re-applying a reorganized database records every step as `already_done` and changes nothing.
"""

from ple.orchestration.reorg_dags import build_reorganization_dag

dag = build_reorganization_dag(doc_md=__doc__)
