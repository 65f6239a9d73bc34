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


def test_the_models_page_lists_every_registered_model_with_its_text_modes():
    """docs/models.md fell behind the plugins once (10 of 26 models): every installed model must have a table row
    naming it (`unimodal-t`, `-a`, `-v` names three), and its text-modes cell must say bert-only where it is."""
    from mer_bench.plugins import get_catalog

    modes_by_name = {}
    for line in (ROOT / "docs" / "models.md").read_text().splitlines():
        if line.startswith("| `"):
            cells = line.split("|")
            names = re.findall(r"`([^`]+)`", cells[1])
            prefix = names[0].rsplit("-", 1)[0]
            for name in names:
                modes_by_name[prefix + name if name.startswith("-") else name] = cells[4]
    catalog = get_catalog()
    for name, entry in catalog.models.items():
        assert name in modes_by_name, f"docs/models.md has no row for {name}"
        assert ("features" in modes_by_name[name] or "any" in modes_by_name[name]) == \
            ("features" in entry.value.text_modes), name
