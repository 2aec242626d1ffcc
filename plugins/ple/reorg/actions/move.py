"""MOVE: relocate a table to the schema (and name) where it belongs. Metadata only."""

from __future__ import annotations

from ple.reorg.actions.archive import (
    apply,
    check,
    lint,
    preview,
    revert,
    revert_blockers,
    statements,
    transactional,
    verify,
)

__all__ = [
    "apply",
    "check",
    "lint",
    "preview",
    "revert",
    "revert_blockers",
    "statements",
    "transactional",
    "verify",
]
