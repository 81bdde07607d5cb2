"""The student edition leaves every solution out and keeps every exercise.

The edition is built as ``make student`` builds it (``scripts/build_student.py``), but with
notebook execution off and into a temporary folder, so no lab runs and the developer's
``_build`` is left alone. Then, for every ``{solution}`` block on a page of the table of
contents, and for the worked-solution code cell that follows it, a passage of its text that
appears in no other source a page can show must be on no page of the edition, nor in any
other file of the site (search index, copied sources, notebooks); and a passage of the
matching exercise must be on the exercise's page. Both passages are found by the same rule
and looked for in the same page text, so the exercise check shows that a solution passage
would be found if the solution were there.
"""
from __future__ import annotations

import html
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from test_toc import toc_entries

REPO = Path(__file__).resolve().parent.parent
BUILD_STUDENT = REPO / "scripts" / "build_student.py"

# A MyST directive fence: ```{name} argument  or  :::{name} argument
FENCE = re.compile(r"^(?P<fence>`{3,}|:{3,})\{(?P<name>[\w-]+)\}(?P<argument>.*)$")
OPTION = re.compile(r"^:[\w-]+:")  # a directive option line, ":label: x"
# What splits prose into passages that render as written: inline markup, roles, math, and
# the characters Sphinx's smart quotes rewrite (quotes, "--", "...").
PROSE_BREAKS = re.compile(r"[`*_\[\]{}()<>$\"'|\\~=#:]|--|\.\.\.")
# Code renders as written (highlighted, HTML-escaped): only quotes are kept out, to be safe.
CODE_BREAKS = re.compile(r"[\"']")
MIN_PASSAGE = 20  # characters; shorter runs are too likely to occur anywhere
TAG = re.compile(r"<[^>]+>")
TEXT_SUFFIXES = {".html", ".js", ".json", ".txt", ".md", ".ipynb", ".xml"}
SOURCE_FOLDERS = ("chapters", "labs", "labkit", "data")
SOURCE_SUFFIXES = {".md", ".py", ".yml", ".yaml", ".json", ".txt", ".toml", ".cfg"}


@dataclass
class Block:
    name: str  # "exercise", "solution" or "code-cell"
    argument: str
    body: list[str]  # the lines inside the fence, options left out
    start: int  # index of the fence line
    end: int  # index of the closing fence line


def blocks(lines: list[str]) -> list[Block]:
    """The top-level directive blocks of a MyST page, in order."""
    found, i = [], 0
    while i < len(lines):
        match = FENCE.match(lines[i])
        if not match:
            i += 1
            continue
        fence = match["fence"]
        end = i + 1
        # A fence closes on a line of at least as many of the same character and nothing else.
        while end < len(lines) and not (
            set(lines[end].strip()) == {fence[0]} and len(lines[end].strip()) >= len(fence)
        ):
            end += 1
        body = lines[i + 1:end]
        while body and OPTION.match(body[0]):
            body = body[1:]
        found.append(Block(match["name"], match["argument"].strip(), body, i, end))
        i = end + 1
    return found


def normalise(text: str) -> str:
    return " ".join(text.split())


def passages(lines: list[str], breaks: re.Pattern) -> list[str]:
    """Runs of a block's text that a page shows exactly as written, longest first."""
    runs = set()
    for line in lines:
        for run in breaks.split(line):
            run = normalise(run).strip(" ,;.!?")
            if len(run) >= MIN_PASSAGE and len(run.split()) >= 3:
                runs.add(run)
    return sorted(runs, key=lambda run: (-len(run), run))


def page_text(path: Path) -> str:
    """What a reader sees of a page: its text without tags or entities, spaces normalised."""
    return normalise(html.unescape(TAG.sub("", path.read_text(encoding="utf-8"))))


def toc_pages() -> list[Path]:
    """The source of every page in the table of contents."""
    toc = yaml.safe_load((REPO / "_toc.yml").read_text(encoding="utf-8"))
    return [path for entry in toc_entries(toc)
            for path in [REPO / f"{entry}.md", REPO / entry] if path.is_file()]


@dataclass
class Solution:
    page: Path  # the .md source
    label: str  # the exercise it solves
    exercise: list[str]
    text: list[str]
    worked_code: list[str]  # the code cell right after it; empty when there is none
    lines: range  # where the two are in the page's source


def solutions() -> list[Solution]:
    found = []
    for page in toc_pages():
        lines = page.read_text(encoding="utf-8").splitlines()
        page_blocks = blocks(lines)
        exercises = {}
        for index, block in enumerate(page_blocks):
            if block.name == "exercise":
                label = next((line.split(":", 2)[2].strip() for line in lines[block.start + 1:block.end]
                              if line.startswith(":label:")), None)
                exercises[label] = block.body
            elif block.name == "solution":
                after = page_blocks[index + 1] if index + 1 < len(page_blocks) else None
                directly_after = after is not None and after.name == "code-cell" and not any(
                    line.strip() for line in lines[block.end + 1:after.start])
                last = after.end if directly_after else block.end
                found.append(Solution(page, block.argument, exercises[block.argument], block.body,
                                      after.body if directly_after else [],
                                      range(block.start, last + 1)))
    return found


def public_text(all_solutions: list[Solution]) -> str:
    """Every source a page can show, less the solutions and their worked code: the pages and
    what they include or print (a lab's YAML and scripts, labkit's READMEs and question bank)."""
    text = []
    hidden = {(s.page, number) for s in all_solutions for number in s.lines}
    sources = [REPO / "intro.md", *(path for folder in SOURCE_FOLDERS
                                    for path in sorted((REPO / folder).rglob("*"))
                                    if path.is_file() and (path.suffix in SOURCE_SUFFIXES
                                                           or path.name == "Dockerfile"))]
    for source in sources:
        lines = source.read_text(encoding="utf-8", errors="replace").splitlines()
        text.extend(line for number, line in enumerate(lines) if (source, number) not in hidden)
    return normalise("\n".join(text))


def distinctive(candidates: list[str], elsewhere: str) -> str | None:
    """The longest passage that appears nowhere else, or None."""
    return next((run for run in candidates if run not in elsewhere), None)


SOLUTIONS = solutions()
ELSEWHERE = public_text(SOLUTIONS)


@pytest.fixture(scope="module")
def student_site(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("student")
    result = subprocess.run(
        [sys.executable, str(BUILD_STUDENT), "--out", str(out), "--execute", "off",
         "--warningiserror", "--nitpick", "--keep-going"],
        capture_output=True, text=True,
    )
    assert result.returncode == 0, (result.stdout + result.stderr)[-8000:]
    return out / "html"


@pytest.fixture(scope="module")
def site_files(student_site) -> dict[Path, str]:
    """Every text file of the site, as a reader sees it (pages) or as it is (the rest)."""
    files = {}
    for path in sorted(student_site.rglob("*")):
        if path.is_file() and path.suffix in TEXT_SUFFIXES:
            files[path] = page_text(path) if path.suffix == ".html" else normalise(
                path.read_text(encoding="utf-8", errors="replace"))
    return files


def test_every_lab_has_solutions_to_leave_out():
    """Every lab has exercises with solutions (DESIGN.md); none found means the parser broke."""
    labs = [page for page in toc_pages() if page.relative_to(REPO).parts[0] == "labs"]
    with_solutions = {solution.page for solution in SOLUTIONS}
    assert labs and [lab for lab in labs if lab not in with_solutions] == []


@pytest.mark.parametrize("solution", SOLUTIONS,
                         ids=[f"{s.page.parent.name}/{s.page.stem}:{s.label}" for s in SOLUTIONS])
def test_solution_is_left_out_and_its_exercise_kept(solution, student_site, site_files):
    page = student_site / solution.page.relative_to(REPO).with_suffix(".html")
    assert page.is_file(), f"{page} was not built"
    shown = site_files[page]

    exercise = distinctive(passages(solution.exercise, PROSE_BREAKS), "")
    assert exercise and exercise in shown, f"the exercise {solution.label} is not on its page: {exercise!r}"

    hidden = [distinctive(passages(solution.text, PROSE_BREAKS), ELSEWHERE)]
    if solution.worked_code:
        hidden.append(distinctive(passages(solution.worked_code, CODE_BREAKS), ELSEWHERE))
    assert all(hidden), f"no passage of solution {solution.label} is distinctive enough to look for"
    for passage in hidden:
        leaks = [path.relative_to(student_site).as_posix() for path, text in site_files.items()
                 if passage in text]
        assert not leaks, f"solution text {passage!r} is in {leaks}"


def test_pages_offer_no_sources(student_site):
    """The sources and the executed notebooks hold the solutions; the edition ships neither."""
    assert not (student_site / "_sources").exists()
    assert not list(student_site.rglob("*.ipynb"))
    lab = (student_site / "labs" / "00-introduction" / "course-data.html").read_text(encoding="utf-8")
    assert "download-source-button" not in lab and "(student edition)" in lab
