"""The docs' relative links and images point at files that exist.

A new user follows README.md and docs/*.md by their links; a renamed or deleted file
(a screenshot, a model card) otherwise only shows up as a broken link on the page.
Web links (http:, https:, mailto:) and in-page anchors (#...) are not checked.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]

# [text](target) and ![alt](target), with an optional "title" after the target.
_LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


def relative_links(markdown: str) -> list[str]:
    """Targets of the markdown links and images that name a file in the repository."""
    found = []
    for m in _LINK.finditer(markdown):
        target = m.group(1)
        if _SCHEME.match(target) or target.startswith("#"):
            continue
        found.append(target)
    return found


def broken_links(doc: Path) -> list[str]:
    """The relative links of ``doc`` whose file (anchor dropped) does not exist."""
    return [t for t in relative_links(doc.read_text(encoding="utf-8"))
            if not (doc.parent / t.split("#", 1)[0]).exists()]


def test_the_link_parser_finds_links_and_images_and_skips_web_links():
    text = ("see [a](docs/a.md#part), ![pic](img/p.png \"title\"), [web](https://x.org/y), "
            "[anchor](#setup), [mail](mailto:a@b)")
    assert relative_links(text) == ["docs/a.md#part", "img/p.png"]


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(REPO)))
def test_relative_links_point_at_existing_files(doc):
    assert broken_links(doc) == [], f"{doc.relative_to(REPO)} links to missing files"
