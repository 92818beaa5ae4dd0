"""The README stays a short front page over docs/: it maps every page there, no link of the README or the docs
leaves the repository or points at nothing, and docs/development.md's module map names exactly the modules the
tree holds (whatever folders they move to)."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
DOCS = sorted((REPO / "docs").glob("*.md"))
PAGES = [README, *DOCS, REPO / "deploy" / "README.md"]
PACKAGES = ("precoro_assets", "precoro_sim")  # precoro_sim: the harness package, once it exists

FENCE = re.compile(r"^(```|~~~).*?^\1[^\n]*$", re.MULTILINE | re.DOTALL)
INLINE_CODE = re.compile(r"`[^`\n]*`")
INLINE_LINK = re.compile(r"\[[^\]\n]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE_LINK = re.compile(r"^\s{0,3}\[[^\]\n]+\]:\s*<?(\S+?)>?(?:\s|$)", re.MULTILINE)


def prose(text: str) -> str:
    """The text a reader sees as markdown, without code blocks and code spans (a `[x](y)` in code is no link)."""
    return INLINE_CODE.sub("", FENCE.sub("", text))


def links(page: Path) -> list[str]:
    text = prose(page.read_text())
    return INLINE_LINK.findall(text) + REFERENCE_LINK.findall(text)


def anchors(page: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens, repeats numbered."""
    seen: dict[str, int] = {}
    for heading in re.findall(r"^#{1,6}\s+(.+?)\s*#*\s*$", FENCE.sub("", page.read_text()), re.MULTILINE):
        slug = re.sub(r"[^\w\- ]", "", heading.replace("`", "").lower()).replace(" ", "-")
        count = seen.get(slug, 0)
        seen[slug] = count + 1
    return {slug if n == 0 else f"{slug}-{n}" for slug, total in seen.items() for n in range(total)}


def test_the_readme_is_at_most_200_lines():
    assert len(README.read_text().splitlines()) <= 200


def test_the_readme_maps_every_page_of_the_docs():
    targets = {(REPO / target.split("#")[0]).resolve() for target in links(README) if not target.startswith("#")}
    assert DOCS and {page.resolve() for page in DOCS} - targets == set()


def test_no_link_leaves_the_repository_and_every_relative_link_finds_its_file_and_heading():
    bad = []
    for page in PAGES:
        if "../shared" in page.read_text():
            bad.append((page.name, "../shared", "names a folder outside the repository"))
        for target in links(page):
            where = (page.relative_to(REPO).as_posix(), target)
            if re.match(r"[a-zA-Z][\w+.-]*:", target):  # a scheme: public web pages only
                if not target.startswith(("https://", "http://")):
                    bad.append((*where, "not a web link"))
                continue
            path, _, anchor = target.partition("#")
            if path.startswith("/"):
                bad.append((*where, "absolute path"))
                continue
            file = (page.parent / path).resolve() if path else page.resolve()
            if not file.is_relative_to(REPO):
                bad.append((*where, "outside the repository"))
            elif not file.exists():
                bad.append((*where, "no such file"))
            elif anchor and file.suffix == ".md" and anchor not in anchors(file):
                bad.append((*where, "no such heading"))
    assert bad == []


def test_the_module_map_in_development_md_lists_exactly_the_modules_of_the_tree():
    text = (REPO / "docs" / "development.md").read_text()
    section = re.search(r"^## Module map\n(.*?)(?=^## |\Z)", text, re.MULTILINE | re.DOTALL)
    assert section, "docs/development.md has no '## Module map' section"
    mapped = re.findall(rf"`((?:{'|'.join(PACKAGES)})/[\w/]+\.py)`", section.group(1))
    tree = {path.relative_to(REPO).as_posix() for package in PACKAGES if (REPO / package).is_dir()
            for path in (REPO / package).rglob("*.py")
            if path.name != "__init__.py" and "__pycache__" not in path.parts}
    assert len(tree) > 20  # the scan finds the package
    assert sorted(path for path in set(mapped) if mapped.count(path) > 1) == []  # one line per module
    assert {"missing from the map": sorted(tree - set(mapped)), "not in the tree": sorted(set(mapped) - tree)} == \
        {"missing from the map": [], "not in the tree": []}
