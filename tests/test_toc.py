"""The table of contents and the pages agree, and every lab is a notebook the build can run.

With ``only_build_toc_files: true`` a page missing from ``_toc.yml`` is silently left out
of the book, and an entry without a page breaks the build; both are caught here first.
"""
from __future__ import annotations

import re
from pathlib import Path

import jupytext
import nbformat
import pytest
import yaml
from myst_nb.core.read import is_myst_markdown_notebook

REPO = Path(__file__).resolve().parent.parent
TOC = REPO / "_toc.yml"
PAGE_FOLDERS = ("chapters", "labs")
# Source suffixes Jupyter Book accepts for an entry written without one.
PAGE_SUFFIXES = (".md", ".ipynb", ".rst")
# Markdown that is not a page: READMEs are for GitHub (excluded in _config.yml).
NOT_PAGES = {"README.md"}
# Snippets that pages pull in with {include}; they are not pages of their own.
SNIPPETS = {"chapters/07-appendices/which-exam.md"}
# A MyST include directive and its path argument.
INCLUDE = re.compile(r"^(?:```|:::)\{include\}\s+(\S+)", re.MULTILINE)


# --- helpers --------------------------------------------------------------------------

def toc_entries(toc: dict) -> list[str]:
    """Every ``file`` of a jb-book toc (root, parts, chapters, nested sections), in order."""
    entries = [toc["root"]] if "root" in toc else []

    def walk(items):
        for item in items or []:
            if "file" in item:
                entries.append(item["file"])
            walk(item.get("sections"))

    for part in toc.get("parts") or []:
        walk(part.get("chapters"))
    walk(toc.get("chapters"))
    walk(toc.get("sections"))
    return entries


def resolve_entry(root: Path, entry: str) -> Path | None:
    """The source file a toc entry names, with or without its suffix, or None."""
    given = root / entry
    if given.suffix in PAGE_SUFFIXES and given.is_file():
        return given
    for suffix in PAGE_SUFFIXES:
        candidate = root / f"{entry}{suffix}"
        if candidate.is_file():
            return candidate
    return None


def page_files(root: Path) -> list[Path]:
    """Markdown pages under chapters/ and labs/ (not READMEs, not hidden folders)."""
    pages = []
    for folder in PAGE_FOLDERS:
        for path in sorted((root / folder).rglob("*.md")):
            relative = path.relative_to(root)
            if path.name in NOT_PAGES or any(p.startswith((".", "_")) for p in relative.parts):
                continue
            if relative.as_posix() in SNIPPETS:
                continue
            pages.append(path)
    return pages


def toc_problems(root: Path, toc: dict) -> list[str]:
    """Entries without a page, duplicated entries, and pages without an entry."""
    problems = []
    listed = set()
    for entry in toc_entries(toc):
        path = resolve_entry(root, entry)
        if path is None:
            problems.append(f"_toc.yml lists {entry!r}, which does not exist")
            continue
        if path in listed:
            problems.append(f"_toc.yml lists {entry!r} twice")
        listed.add(path)
    for page in page_files(root):
        if page not in listed:
            problems.append(f"{page.relative_to(root)} is not in _toc.yml")
    return problems


def include_problems(root: Path, pages: list[Path]) -> list[str]:
    """Includes whose file does not exist, resolved as myst-parser does.

    A relative path is relative to the including page's folder, a path starting with
    "/" to the book's root.
    """
    problems = []
    for page in pages:
        for target in INCLUDE.findall(page.read_text(encoding="utf-8")):
            base = root if target.startswith("/") else page.parent
            if not (base / target.lstrip("/")).is_file():
                problems.append(f"{page.relative_to(root)} includes {target!r}, which does not exist")
    return problems


def is_lab(path: Path) -> bool:
    """A lab is a Markdown page whose front matter has a ``labkit`` key."""
    text = path.read_text(encoding="utf-8")
    if not text.startswith("---"):
        return False
    front_matter = text.split("---", 2)[1]
    return "labkit" in (yaml.safe_load(front_matter) or {})


def lab_problems(path: Path) -> list[str]:
    """Why the build (myst-nb) or papermill could not treat this lab as a notebook."""
    text = path.read_text(encoding="utf-8")
    problems = []
    if not is_myst_markdown_notebook(text):
        problems.append("myst-nb does not read it as a notebook (jupytext front matter "
                        "with format_name: myst is missing)")
    try:
        notebook = jupytext.reads(text, fmt="md:myst")
        nbformat.validate(notebook)
    except Exception as error:  # any parse or schema error means "not a valid notebook"
        return problems + [f"not a valid Jupytext MyST notebook: {error}"]
    if not notebook.metadata.get("kernelspec", {}).get("name"):
        problems.append("no kernelspec name in the front matter")
    tagged = [cell for cell in notebook.cells
              if "parameters" in cell.get("metadata", {}).get("tags", [])]
    if len(tagged) != 1:
        problems.append(f"needs exactly one cell tagged 'parameters', has {len(tagged)}")
    elif tagged[0].cell_type != "code":
        problems.append("the cell tagged 'parameters' is not a code cell")
    return problems


def lab_files(root: Path) -> list[Path]:
    return [p for p in sorted((root / "labs").rglob("*.md")) if is_lab(p)]


# --- the repository --------------------------------------------------------------------

def test_toc_and_pages_agree():
    toc = yaml.safe_load(TOC.read_text(encoding="utf-8"))
    assert toc.get("format") == "jb-book"
    assert toc_problems(REPO, toc) == []


def test_every_include_resolves():
    pages = page_files(REPO) + [REPO / "intro.md"]
    assert include_problems(REPO, pages) == []


def test_snippets_exist_and_are_included():
    pages = page_files(REPO) + [REPO / "intro.md"]
    included = {(page.parent / target).resolve() for page in pages
                for target in INCLUDE.findall(page.read_text(encoding="utf-8"))
                if not target.startswith("/")}
    for snippet in SNIPPETS:
        assert (REPO / snippet).is_file(), f"{snippet} is listed as a snippet but missing"
        assert (REPO / snippet).resolve() in included, f"no page includes {snippet}"


LABS = lab_files(REPO)


@pytest.mark.skipif(not LABS, reason="no lab pages yet")
@pytest.mark.parametrize("lab", LABS, ids=[str(p.relative_to(REPO)) for p in LABS])
def test_lab_is_a_parameterised_notebook(lab):
    assert lab_problems(lab) == []


# --- the checks themselves can fail ------------------------------------------------------

LAB_HEADER = """---
jupytext:
  text_representation:
    extension: .md
    format_name: myst
kernelspec:
  display_name: Python 3
  language: python
  name: python3
labkit:
  id: L0.0
---
# A lab
"""
PARAMETERS_CELL = """
```{code-cell} ipython3
:tags: [parameters]
backend = "auto"
```
"""


def make_book(tmp_path: Path, toc_files: list[str], pages: dict[str, str]) -> dict:
    for name, text in pages.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text, encoding="utf-8")
    (tmp_path / "intro.md").write_text("# Intro\n", encoding="utf-8")
    return {"format": "jb-book", "root": "intro",
            "parts": [{"caption": "A", "chapters": [{"file": f} for f in toc_files]}]}


def test_toc_check_finds_unlisted_and_missing_pages(tmp_path):
    toc = make_book(tmp_path, ["chapters/01-a/index", "chapters/01-a/gone.md"],
                    {"chapters/01-a/index.md": "# A\n", "chapters/01-a/extra.md": "# B\n",
                     "labs/README.md": "# not a page\n"})
    problems = toc_problems(tmp_path, toc)
    assert problems == ["_toc.yml lists 'chapters/01-a/gone.md', which does not exist",
                        "chapters/01-a/extra.md is not in _toc.yml"]


def test_toc_check_resolves_entries_with_and_without_suffix(tmp_path):
    toc = make_book(tmp_path, ["chapters/a", "chapters/b.md"],
                    {"chapters/a.md": "# A\n", "chapters/b.md": "# B\n"})
    toc["parts"][0]["chapters"][0]["sections"] = [{"file": "labs/c"}]
    (tmp_path / "labs").mkdir()
    (tmp_path / "labs/c.md").write_text("# C\n", encoding="utf-8")
    assert toc_problems(tmp_path, toc) == []


def test_lab_check_accepts_a_good_lab(tmp_path):
    lab = tmp_path / "lab.md"
    lab.write_text(LAB_HEADER + PARAMETERS_CELL, encoding="utf-8")
    assert is_lab(lab)
    assert lab_problems(lab) == []


def test_lab_check_needs_a_parameters_cell(tmp_path):
    lab = tmp_path / "lab.md"
    lab.write_text(LAB_HEADER + PARAMETERS_CELL.replace(":tags: [parameters]\n", ""),
                   encoding="utf-8")
    assert lab_problems(lab) == ["needs exactly one cell tagged 'parameters', has 0"]


def test_lab_check_needs_jupytext_front_matter(tmp_path):
    lab = tmp_path / "lab.md"
    header = LAB_HEADER.replace("    format_name: myst\n", "")
    lab.write_text(header + PARAMETERS_CELL, encoding="utf-8")
    assert is_lab(lab)
    assert any("myst-nb does not read it" in p for p in lab_problems(lab))


def test_include_check_finds_a_missing_snippet(tmp_path):
    (tmp_path / "chapters/01-a").mkdir(parents=True)
    (tmp_path / "chapters/box.md").write_text("a box\n", encoding="utf-8")
    good = tmp_path / "chapters/01-a/index.md"
    good.write_text("# A\n\n```{include} ../box.md\n```\n", encoding="utf-8")
    bad = tmp_path / "chapters/01-a/other.md"
    bad.write_text("# B\n\n```{include} box.md\n```\n", encoding="utf-8")
    assert include_problems(tmp_path, [good, bad]) == [
        "chapters/01-a/other.md includes 'box.md', which does not exist"]


def test_pages_without_labkit_key_are_not_labs(tmp_path):
    page = tmp_path / "status.md"
    page.write_text(LAB_HEADER.replace("labkit:\n  id: L0.0\n", ""), encoding="utf-8")
    assert not is_lab(page)
