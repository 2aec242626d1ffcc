"""The front door: the README fits on a screen (about 250 lines), opens with the two commands, and
every relative link in it and in docs/ resolves."""

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


def _pages():
    return [
        REPO / "README.md",
        REPO / "CHANGELOG.md",
        *sorted((REPO / "docs").glob("*.md")),
        REPO / "bench" / "README.md",
    ]


def test_the_readme_fits_on_a_screen_and_opens_with_the_two_commands():
    lines = (REPO / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 250
    opening = "\n".join(lines[:6])
    assert "make demo" in opening and "make test" in opening


def test_every_relative_link_resolves():
    broken = []
    for page in _pages():
        for link in LINK.findall(page.read_text(encoding="utf-8")):
            if link.startswith(("http://", "https://", "mailto:")):
                continue
            if not (page.parent / link).resolve().exists():
                broken.append(f"{page.relative_to(REPO)} -> {link}")
    assert broken == []
