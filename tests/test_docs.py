"""The README stays short and points into docs/, and every link there resolves."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


def local_links(page: Path) -> list[str]:
    return [target for target in LINK.findall(page.read_text()) if "://" not in target]


def test_readme_is_under_200_lines_and_keeps_the_ci_test_command():
    text = README.read_text()
    assert len(text.splitlines()) < 200
    after = text.split("<!-- test-command -->", 1)[1]
    assert re.search(r"^pip install .* && python -m pytest", after, flags=re.M)


def test_every_docs_page_is_linked_from_the_readme_and_every_link_resolves():
    linked = local_links(README)
    pages = sorted(path.relative_to(ROOT).as_posix() for path in (ROOT / "docs").glob("*.md"))
    assert pages and set(pages) <= set(linked)
    for page in [README, *(ROOT / path for path in pages)]:
        for target in local_links(page):
            assert (page.parent / target).exists(), f"{page.name}: broken link {target}"
