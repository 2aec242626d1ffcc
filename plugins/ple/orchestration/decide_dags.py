"""`ctb_decide`: the reorganization's decisions made in the Airflow UI, one Required Action each.

1. `open_questions` reads the decisions in force and reconcile's and the guards' proposals
   (reorg/decisions.py), and lists each proposal nobody has decided yet, with its evidence.
   `mode=plan` stops there: the log shows every open question and its proposal; nothing is asked
   or recorded.
2. `mode=apply` asks them (Airflow's HITLOperator, mapped over the questions at run time):
   `accept=one_by_one` asks one question per proposal with its evidence and lossless options
   (accept the proposal; for an action, skip it: leave the table as it stands; leave undecided);
   `accept=all_listed` asks once, listing every proposal it would accept.
3. `record` writes the answers as a new version of the decisions in the database
   (`ple_ops.decision_version`, with who answered which question and when: the authenticated
   Airflow user), exported to the decisions file. A new version voids every approval of the
   plan given before it: the next apply asks again.
"""

from __future__ import annotations

import json
from typing import Any

from airflow.providers.standard.operators.hitl import HITLOperator
from airflow.sdk import DAG, Param, get_current_context, task

from ple.orchestration.approval_gate import responder, wrap
from ple.orchestration.common import dag_arguments, mode_param

ONE_BY_ONE = "one_by_one"
ALL_LISTED = "all_listed"
ACCEPT_ALL = "Accept every proposal listed"
DECIDE_LATER = "Accept none of them"


def question_body(question: dict) -> str:
    proposal = json.dumps(question["proposal"], indent=1, default=str)
    return "\n".join(
        [
            f"**{question['section']}: `{question['key']}`** ({question['state']})",
            "",
            "Evidence, read from the live database:",
            "",
            "```",
            wrap(question["evidence"] or "(none recorded)"),
            "```",
            "Proposed (lossless: no row or value is dropped):",
            "",
            "```json",
            wrap(proposal),
            "```",
            "A new version of the decisions voids approvals given before it.",
        ]
    )


def all_body(questions: list[dict]) -> str:
    lines = [f"**Accept these {len(questions)} proposals**, each exactly as listed:", ""]
    for q in questions:
        lines.append(f"- {q['section']} `{q['key']}` ({q['state']}): `{json.dumps(q['proposal'], default=str)}`")
    return wrap("\n".join(lines))


class DecisionQuestion(HITLOperator):
    """One open decision (or, with accept=all_listed, all of them at once) asked in the UI."""

    template_fields = ()
    ui_color = "#bfdbfe"

    def __init__(self, *, item: dict, **kwargs) -> None:
        if item["kind"] == "all":
            subject, body, options = (
                "Decide: accept every proposal listed",
                all_body(item["questions"]),
                [
                    ACCEPT_ALL,
                    DECIDE_LATER,
                ],
            )
        else:
            question = item["question"]
            subject, body, options = f"Decide: {question['key']}", question_body(question), question["options"]
        super().__init__(subject=subject, body=body, options=options, multiple=False, **kwargs)
        self.item = item

    def execute_complete(self, context, event: dict[str, Any]):
        from ple.reporting import emit

        answer = super().execute_complete(context, event)
        _user, who, when = responder(answer)
        chosen = answer["chosen_options"][0]
        emit(f"{self.subject}: {chosen!r} by {who} at {when.isoformat()}")
        questions = self.item["questions"] if self.item["kind"] == "all" else [self.item["question"]]
        if self.item["kind"] == "all":
            from ple.reorg import decisions

            chosen = decisions.ACCEPT if chosen == ACCEPT_ALL else decisions.LATER
        return [{"question": q, "answer": chosen, "by": who, "at": when.isoformat()} for q in questions]


def build_decide_dag(doc_md: str) -> DAG:
    with DAG(
        schedule=None,
        **dag_arguments(
            "ctb_decide",
            doc_md,
            ("ctb", "manual"),
            {
                "mode": mode_param(
                    "ask each open decision in Required Actions and record the answers as a new version of the "
                    "decisions (voids earlier approvals); plan lists the open questions and asks nothing"
                ),
                "accept": Param(
                    ONE_BY_ONE,
                    type="string",
                    enum=[ONE_BY_ONE, ALL_LISTED],
                    title="How to ask",
                    description="one_by_one: one question per proposal, with its evidence; all_listed: one "
                    "question listing every proposal, accepted together or not at all",
                ),
            },
        ),
    ) as dag:

        @task
        def open_questions() -> list[dict]:
            from ple.db import connect, transaction
            from ple.reorg import decisions, proposals
            from ple.reorg.plan import load
            from ple.reporting import emit

            context = get_current_context()
            with connect() as conn, transaction(conn, read_only=True):
                current = decisions.for_connection(conn)
                questions = decisions.open_questions(current, proposals.propose(conn, load(), current))
            emit(
                f"{len(questions)} open decision(s) (decisions in force: {current.source if current.exists else 'none'}):\n"
                + "\n".join(f"  {q['section']} {q['key']} ({q['state']}): proposed {q['proposal']}" for q in questions)
            )
            if context["params"]["mode"] != "apply" or not questions:
                emit("nothing asked, nothing recorded" if questions else "nothing to decide")
                return []
            if context["params"]["accept"] == ALL_LISTED:
                return [{"kind": "all", "questions": questions}]
            return [{"kind": "one", "question": q} for q in questions]

        @task(trigger_rule="none_failed")
        def record(answered: list[list[dict]]) -> dict:
            from ple.db import connect, transaction
            from ple.reorg import decisions
            from ple.reorg.plan import load
            from ple.reporting import emit

            answers = [a for group in (answered or []) for a in group]
            decided = [a for a in answers if a["answer"] != decisions.LATER]
            if not decided:
                emit("no decision taken: nothing recorded")
                return {"version": None}
            with connect() as conn, transaction(conn):
                current = decisions.for_connection(conn)
                raw = decisions.answered(current, load(), decided)
                by = ", ".join(sorted({a["by"] for a in decided}))
                version, path = decisions.record(
                    conn,
                    raw,
                    by,
                    via="airflow-hitl",
                    note=f"ctb_decide {get_current_context()['run_id']}",
                    answers={
                        a["question"]["key"]: {"answer": a["answer"], "by": a["by"], "at": a["at"]} for a in answers
                    },
                )
            emit(
                f"recorded decisions version {version} (exported to {path}): "
                + "; ".join(f"{a['question']['key']}: {a['answer']} by {a['by']}" for a in answers)
                + ". Approvals of earlier decisions no longer hold: the next apply asks again"
            )
            return {"version": version}

        asked = DecisionQuestion.partial(task_id="decide").expand(item=open_questions())
        record(asked.output)
    return dag
