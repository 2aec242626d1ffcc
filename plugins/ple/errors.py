"""Errors a retry cannot fix. Tasks fail at once on these instead of paging people N times.

Anything else (a dropped connection, a lock timeout, a serialization failure) is transient and
retried with exponential backoff by the task's retry policy.
"""


class PermanentError(Exception):
    """Retrying will not help: bad input, an unapproved plan, a failed proof."""


class PlanRejected(PermanentError):
    """The plan failed its lint; nothing was written."""


class NotApproved(PermanentError):
    """`apply` without a recorded approval of this exact plan file."""


class ApprovalRejected(NotApproved):
    """A person answered an approval request with "Reject": nothing runs."""


class VerificationFailed(PermanentError):
    """Counts or checksums before and after an action disagree; the action was rolled back."""


class RehearsalFailed(PermanentError):
    """A rehearsal found a problem, was blocked by the lint, or did not cover every step: apply
    would not go through as shown. Its report names each problem; nothing stayed."""


class ExpectationFailed(PermanentError):
    """A Great Expectations suite failed against the live database."""


class BadInput(PermanentError):
    """An input (file, parameter) is unusable as a whole."""


class ThresholdBreached(PermanentError):
    """An audit number broke its threshold or regressed beyond the allowed margin."""

    def __init__(self, message: str, moved: list[str]):
        super().__init__(message)
        self.moved = moved  # one line per number: "<number> from <previous> to <current>; allowed ..."
