"""The approval fingerprint covers what runs in production and nothing else (issue 24, item 3): an
approval recorded before a change to the demo, the local Airflow, the embedded server or the
fixture stays valid after it."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys

from ple import approval
from ple.config import REPO_ROOT


def test_the_fingerprint_covers_the_shipped_package_and_the_sql_and_no_development_tooling():
    covered = {str(p.relative_to(REPO_ROOT)) for p in approval.code_files()}
    assert "plugins/ple/approval.py" in covered and "plugins/ple/reorg/executor.py" in covered
    assert any(name.startswith("include/sql/") for name in covered)
    assert not [name for name in covered if name.startswith(("devtools/", "include/sql/fixture/"))]
    shipped = {str(p.relative_to(REPO_ROOT)) for p in (REPO_ROOT / "plugins" / "ple").rglob("*.py")}
    assert shipped - covered == {name for name in shipped if "__pycache__" in name}


def test_a_change_to_the_development_tooling_leaves_the_fingerprint_as_it_was(tmp_path):
    """On a copy of the repository: the demo edited, the code part of the fingerprint unchanged;
    an engine module edited, changed."""
    copy = tmp_path / "repo"
    for part in ("plugins", "include", "devtools"):
        shutil.copytree(REPO_ROOT / part, copy / part, ignore=shutil.ignore_patterns("__pycache__"))
    probe = "from ple import approval; print(approval.code_sha256())"

    def code_part() -> str:
        return subprocess.run(
            [sys.executable, "-c", probe],
            cwd=copy,
            env={"PYTHONPATH": str(copy / "plugins")},
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()

    before = code_part()
    with (copy / "devtools" / "ple_dev" / "demo.py").open("a") as demo:
        demo.write("\n# a fix to the demo\n")
    fixture_sql = next((copy / "include" / "sql" / "fixture").rglob("*.sql"))
    fixture_sql.write_text(fixture_sql.read_text() + "\n-- a fix to the fixture\n")
    assert code_part() == before
    with (copy / "plugins" / "ple" / "reorg" / "executor.py").open("a") as engine:
        engine.write("\n# a change to the engine\n")
    assert code_part() != before


def test_the_shipped_package_imports_nothing_from_the_development_tooling():
    """The CLI's development commands load it by name when they run (cli._devtools)."""
    offenders = [
        str(path.relative_to(REPO_ROOT))
        for path in (REPO_ROOT / "plugins").rglob("*.py")
        if re.search(r"^\s*(from|import)\s+ple_dev\b", path.read_text(), re.MULTILINE)
    ]
    assert offenders == []
