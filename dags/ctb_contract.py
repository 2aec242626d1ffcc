"""
# ctb_contract

The contract step of the reorganization's expand/contract: the views each phase left at the names
it took away (so that applications reading and writing the old names kept working) are removed
once their grace period (per object, ple_ops.compat_object.grace) has passed with no recorded
use. `render_plan` lists exactly what would go; with `mode=apply`, `approve` asks for an approval
of that list in Required Actions, then `carry_out` drops each object. `mode=revert` makes again
what the contract removed, approved the same way. No data is touched. Airflow DAG, manual trigger only.
"""

from ple.orchestration.contract_dags import build_contract_dag

dag = build_contract_dag(doc_md=__doc__)
