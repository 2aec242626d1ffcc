"""
# CTB reorganization: one phase (Airflow DAGs ctb_phase_1a ... ctb_phase_1l)

Carries out one phase of the CTB structural reorganization plan (`include/plan/ctb_plan.yaml`,
from `ctb_structural_reorganization_plan.md`) on the database of the connection `ctb_postgres`:

preflight (lint against the live catalog, schemas, discriminator and provenance columns, a snapshot
of counts and checksums) -> archive -> merge -> move -> add_pk -> reclassify -> verify (checksums
against the snapshot, per-action proofs, Great Expectations) -> freeze (archives become read-only).

Trigger with `mode=plan` (default: writes nothing, shows the exact SQL and live counts) or
`mode=apply`, which is refused until this exact plan file is approved (DAG `ctb_approve_plan` or
`make approve APPROVER=<name>`). Every step is idempotent: re-running changes nothing.

Phase 1L holds the plan's pending questions: `ctb_phase_1l` asks each one in Required Actions
(which sub-hub owns the table, or archive it; an `apply` run asks only what is not answered yet,
`redecide` asks again), records the answer with who gave it, then asks for the approval of the plan
with the answers and carries them out like any other phase (`python -m ple.cli decide-1l` on the
command line).
"""

from ple.orchestration.reorg_dags import build_phase_dags

for _dag in build_phase_dags(doc_md=__doc__):
    globals()[_dag.dag_id] = _dag
