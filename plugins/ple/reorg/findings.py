"""What the lint reports: a finding (code, where, message) and the report that sorts them by
weight. Below the actions and the checks, so an action's own lint (add-PK, merge, relocate) and
the lint that collects them share one type without importing each other."""

from __future__ import annotations

from dataclasses import dataclass, field

from ple.errors import PlanRejected


@dataclass(frozen=True)
class Finding:
    code: str
    where: str
    message: str


@dataclass
class LintReport:
    errors: list[Finding] = field(default_factory=list)
    warnings: list[Finding] = field(default_factory=list)
    document: list[Finding] = field(default_factory=list)
    info: list[Finding] = field(default_factory=list)
    guards: list[Finding] = field(default_factory=list)  # handled by design (blocking ones are errors)
    reconcile: str = ""  # the reconcile table (every action: state, evidence, proposal, decision)

    @property
    def ok(self) -> bool:
        return not self.errors

    def render(self) -> str:
        lines = [self.reconcile] if self.reconcile else []
        for title, findings in (
            ("ERRORS (block apply)", self.errors),
            ("WARNINGS", self.warnings),
            ("GUARDS (handled)", self.guards),
            ("THE DOCUMENT, AND WHAT THIS PLAN DECIDED", self.document),
            ("INFO", self.info),
        ):
            if findings:
                lines.append(f"{title}: {len(findings)}")
                lines += [f"  [{f.code}] {f.where}: {f.message}" for f in findings]
        lines.append("lint: OK" if self.ok else f"lint: FAILED with {len(self.errors)} error(s)")
        return "\n".join(lines)

    def raise_if_failed(self) -> None:
        if not self.ok:
            raise PlanRejected("plan lint failed; nothing was written\n" + self.render())
