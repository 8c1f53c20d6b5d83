"""The documentation holds together: a short README, relative links that lead somewhere, every page reachable.

Links are checked the way GitHub renders them: a link is relative to the file it is in, and `page.md#anchor` needs a
heading in page.md whose GitHub anchor is `anchor` (lowercase, punctuation dropped, spaces to hyphens).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
README_MAX_LINES = 250
PAGES = [ROOT / "README.md", ROOT / "CHANGELOG.md", *sorted(DOCS.glob("*.md"))]

FENCE = re.compile(r"^\s*(```|~~~)")
HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
INLINE_CODE = re.compile(r"`[^`\n]*`")
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")  # [text](target "title"), ![alt](target)
REFERENCE = re.compile(r"^\s*\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+\"[^\"]*\")?\s*$")  # [name]: target
EXTERNAL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")  # https:, mailto:, ...


def prose_lines(path: Path) -> list[tuple[int, str]]:
    """(line number, line) for each line outside fenced code blocks."""
    lines, fenced = [], False
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if FENCE.match(line):
            fenced = not fenced
        elif not fenced:
            lines.append((number, line))
    return lines


def github_anchor(heading: str) -> str:
    """The anchor GitHub gives a heading: link text kept, lowercase, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)
    text = re.sub(r"<[^>]+>", "", text).strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> list[str]:
    """Every anchor the headings of a Markdown file produce, repeated headings numbered as GitHub does (-1, -2)."""
    seen: dict[str, int] = {}
    found = []
    for _, line in prose_lines(path):
        match = HEADING.match(line)
        if not match:
            continue
        anchor = github_anchor(match.group(2))
        found.append(anchor if anchor not in seen else f"{anchor}-{seen[anchor]}")
        seen[anchor] = seen.get(anchor, 0) + 1
    return found


def links(path: Path) -> list[tuple[int, str]]:
    """(line number, target) of each link and image in a Markdown file, outside code."""
    found = []
    for number, line in prose_lines(path):
        reference = REFERENCE.match(line)
        if reference:
            found.append((number, reference.group(1)))
            continue
        found += [(number, match.group(1)) for match in LINK.finditer(INLINE_CODE.sub("", line))]
    return found


def shown(path: Path) -> str:
    """A path as a message names it: inside the clone, relative to its root."""
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def broken(path: Path, target: str) -> str | None:
    """Why a link target leads nowhere, or None when it resolves."""
    if EXTERNAL.match(target):
        return None
    file_part, _, anchor = target.partition("#")
    destination = (path.parent / file_part).resolve() if file_part else path
    if not destination.exists():
        return f"{file_part} does not exist (looked for {shown(destination)})"
    if anchor:
        if destination.is_dir() or destination.suffix != ".md":
            return f"#{anchor} points into {file_part}, which is not a Markdown file"
        known = anchors(destination)
        if anchor not in known:
            return f"no heading in {shown(destination)} gives the anchor #{anchor}; its anchors: {', '.join(known)}"
    return None


def test_the_readme_is_short():
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= README_MAX_LINES, (
        f"README.md has {len(lines)} lines; keep it at most {README_MAX_LINES} and move detail to a page in docs/")


@pytest.mark.parametrize("page", PAGES, ids=shown)
def test_every_relative_link_resolves(page: Path):
    problems = [f"{shown(page)}:{number}: ({target}) {why}"
                for number, target in links(page) if (why := broken(page, target))]
    assert not problems, "broken links:\n" + "\n".join(problems)


def test_every_docs_page_is_linked_from_the_index():
    index = DOCS / "index.md"
    linked = {(index.parent / target.partition("#")[0]).resolve() for _, target in links(index) if not EXTERNAL.match(target)}
    missing = [page.name for page in sorted(DOCS.glob("*.md")) if page != index and page.resolve() not in linked]
    assert not missing, f"link each page from docs/index.md: {missing}"


@pytest.mark.parametrize("heading, anchor", [
    ("Tried and not kept", "tried-and-not-kept"),
    ("SST-2: the `treebank` preset", "sst-2-the-treebank-preset"),
    ("The lexicon (`--lexicon`)", "the-lexicon---lexicon"),
    ("Batching, limits and shutdown", "batching-limits-and-shutdown"),
    ("One change at a time (seed 13)", "one-change-at-a-time-seed-13"),
    ("[Linked](page.md) heading", "linked-heading"),
])
def test_anchors_are_made_the_way_github_makes_them(heading: str, anchor: str):
    assert github_anchor(heading) == anchor


def test_the_checks_see_broken_links(tmp_path: Path):
    page = tmp_path / "page.md"
    page.write_text("# A page\n\n## Same heading\n\n## Same heading\n\n"
                    "[ok](#a-page) [ok](#same-heading-1) [gone](missing.md) [bad](#nowhere) "
                    "`[code](ignored.md)` [web](https://example.org)\n\n```\n[fenced](ignored.md)\n```\n", encoding="utf-8")
    assert anchors(page) == ["a-page", "same-heading", "same-heading-1"]
    assert [target for _, target in links(page)] == ["#a-page", "#same-heading-1", "missing.md", "#nowhere", "https://example.org"]
    assert [target for _, target in links(page) if broken(page, target)] == ["missing.md", "#nowhere"]
