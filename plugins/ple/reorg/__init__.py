"""The CTB reorganization engine: plan, lint, actions, executor, ledger."""
