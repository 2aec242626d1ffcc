"""MOVE: relocate a table to the schema (and name) where it belongs. Metadata only."""

from __future__ import annotations

from ple.reorg.actions.archive import apply, check, lint, preview, revert, statements, verify

__all__ = ["apply", "check", "lint", "preview", "revert", "statements", "verify"]
