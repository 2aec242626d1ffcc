"""The suite's own shape (issue 24): no test module imports another test module (shared setup
lives in fixtures and helper modules beside the tests)."""

from __future__ import annotations

import ast

from ple.config import REPO_ROOT


def test_no_test_module_imports_another():
    offenders = []
    for path in sorted((REPO_ROOT / "tests").rglob("test_*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = (
                [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else []
            )
            imported = [n for n in names if n.startswith("tests") and n.rsplit(".", 1)[-1].startswith("test_")]
            imported += [
                a.name
                for a in (
                    node.names if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("tests") else []
                )
                if a.name.startswith("test_")
            ]
            offenders += [f"{path.relative_to(REPO_ROOT)} imports {n}" for n in imported]
    assert offenders == []
