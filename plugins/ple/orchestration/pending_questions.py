"""Phase 1L in Airflow: each pending question of the plan asked in the UI ("Required Actions").

One Human-in-the-loop task per PENDING action of the plan (known when the DAG is parsed, so the
DAG's structure is static; the live counts are read when the task runs). Its options are the
candidate answers (reorg/pending.py: each sub-hub, `archive`, `keep_pending`); its body the
question, the table's live row count and what each answer would do.

- `mode=plan` asks nothing and records nothing: the task reports the question, the answer in
  force and the candidates, and the rest of the run shows what the recorded answers would do.
- `mode=apply` asks every question that has no recorded answer yet (every question with the
  `redecide` Param), records the answer with the authenticated Airflow user who gave it and the
  time, then the approval gate asks for an approval of the plan with the answers (its fingerprint
  includes them), and the executor carries them out. Recording an answer changes no data: an apply
  whose approval is rejected leaves the answers recorded and the tables untouched.
"""

from __future__ import annotations

from typing import Any

from airflow.providers.standard.operators.hitl import HITLOperator

from ple.orchestration.approval_gate import responder
from ple.reorg import pending
from ple.reorg.plan import Action, Plan


class PendingQuestion(HITLOperator):
    """Asks one pending question unless an answer is recorded (and no re-decision is asked for)."""

    template_fields = ()  # the body is built at run time from the live database
    ui_color = "#bfdbfe"

    def __init__(self, *, plan: Plan, question: Action, **kwargs) -> None:
        super().__init__(
            subject=f"Phase 1L: {question.question} ({question.source})",
            options=list(pending.choices(plan, question)),
            multiple=False,
            **kwargs,
        )
        self.table = question.source

    def _question(self):
        from ple.reorg.plan import load

        plan = load()
        return plan, pending.question(plan, self.table)

    def execute(self, context):
        from ple.db import connect, transaction
        from ple.reporting import emit

        plan, question = self._question()
        with connect() as conn, transaction(conn, read_only=True):
            rows = pending.live_rows(conn, [self.table])[self.table]
            past = pending.history(conn, self.table)
        current = past[-1] if past else None
        text = pending.describe(plan, question, rows, current, past)
        emit(text)
        if context["params"].get("mode") != "apply":
            emit(f"mode {context['params'].get('mode')}: not asking, nothing recorded")
            return {"table": self.table, "asked": False, "answer": current.answer if current else None}
        if current and not context["params"].get("redecide"):
            emit(f"answered before: {current.line()}; not asking again (trigger with redecide to ask again)")
            return {"table": self.table, "asked": False, "answer": current.answer}
        self.body = text
        return super().execute(context)

    def execute_complete(self, context, event: dict[str, Any]):
        from ple.db import connect
        from ple.reporting import emit

        response = super().execute_complete(context, event)
        user, who, when = responder(response)
        plan, _question = self._question()
        with connect() as conn:
            answer = pending.record(
                conn,
                plan,
                self.table,
                response["chosen_options"][0],
                who,
                via="airflow-hitl",
                decided_at=when,
                note=f"{context['dag'].dag_id} {context['run_id']}",
                details={"user_id": user.get("id"), "task_id": self.task_id, "run_id": context["run_id"]},
            )
        emit(f"ANSWERED {self.table}: {answer.line()} (answer {answer.answer_id})")
        return {"table": self.table, "asked": True, "answer": answer.answer, "decided_by": who}


def questions(plan: Plan, phase_id: str) -> list[PendingQuestion]:
    """The phase's questions as tasks, one after another (each appears once the previous is answered)."""
    return [
        PendingQuestion(task_id=f"decide__{action.slug}", plan=plan, question=action)
        for action in plan.phase(phase_id).pending
    ]
