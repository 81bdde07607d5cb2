"""Every lab under labs/ runs on the simulated workspace, its checked outputs reproduce, and
the whole book builds, warning-free, with every lab's executed output on its page.

Each lab runs through the lab runner as CI and the book run it (papermill, CI parameters,
a fresh workspace); then nbval executes the executed notebook again, in a fresh workspace,
and compares the outputs of the cells marked ``# NBVAL_CHECK_OUTPUT``. The book build runs
the same command as ``make book``, into a temporary folder so the developer's own ``_build``
is left alone, and does not execute the labs a third time: its execution cache is filled
from the lab runner's notebooks of this session, and the test checks that the build took
every lab from there (``make book`` itself executes every lab at its full-size defaults).

The lab and book tests share one session's executions (``lab_executions.py``), so they live
in this one module: ``make test`` runs pytest-xdist with ``--dist loadfile``, which gives a
module to one worker, so each lab executes twice per run while the other worker takes the
rest of the suite. The book is built once per session (the ``book`` fixture), for the test
of the build and for the test that opens the built site in headless Chromium
(``tests/browser.py``). Slow; select or skip them with ``-m lab`` / ``-m book``.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

import jupytext
import nbformat
import pytest
from jupyter_cache import get_cache
from nbval.plugin import find_comment_markers

import browser
from lab_executions import run_labs, seed_execution_cache, tracebacks

LABS = run_labs.discover(run_labs.ROOT / "labs")
CHECK_OUTPUT = ("check", True)  # what nbval makes of a "# NBVAL_CHECK_OUTPUT" comment


def checks_output(cell) -> bool:
    return cell.cell_type == "code" and CHECK_OUTPUT in find_comment_markers(cell.source)


@pytest.mark.parametrize("lab", LABS, ids=[lab.id for lab in LABS])
def test_lab_is_testable(lab):
    """Without a parameters cell CI can't size the lab; without a checked cell nbval
    would prove nothing about its output."""
    nb = jupytext.read(lab.path, fmt="md:myst")
    assert any("parameters" in c.metadata.get("tags", []) for c in nb.cells
               if c.cell_type == "code"), "no code cell tagged `parameters`"
    assert any(checks_output(c) for c in nb.cells), "no cell marked # NBVAL_CHECK_OUTPUT"


@pytest.mark.lab
@pytest.mark.parametrize("lab", LABS, ids=[lab.id for lab in LABS])
def test_lab_runs_and_reproduces(lab, lab_executions):
    execution = lab_executions.get(lab)
    record, notebook = execution.record, execution.notebook
    assert record["status"] == "passed", (
        f"{record['error']}\nexecuted notebook: {notebook}\n"
        + (tracebacks(notebook) if notebook.exists() else "")
    )

    executed = nbformat.read(notebook, as_version=4)
    assert any(checks_output(c) and c.outputs for c in executed.cells), \
        "the cells marked # NBVAL_CHECK_OUTPUT print nothing, so nbval compares nothing"
    assert execution.nbval_failure is None, "nbval failed:\n" + execution.nbval_failure


# --- the book ---------------------------------------------------------------------------------
REPO = Path(__file__).resolve().parent.parent
INTRO_LAB_PAGE = Path("labs/00-introduction/course-data.html")
# The notebook pages outside labs/ that the build executes through its cache: the chapter
# quizzes and the mock exam. (The status page runs on every build and is never cached.)
PRACTICE_NOTEBOOKS = sorted([*(path.relative_to(REPO).as_posix() for path in REPO.glob("chapters/*/quiz.md")),
                             "chapters/06-practice/mock-exam.md"])


class CellOutputTags(HTMLParser):
    """Collects the tags that appear inside executed cell outputs of a myst-nb page."""

    VOID = {"img", "br", "hr", "input", "meta", "link", "source", "wbr", "col", "area"}

    def __init__(self):
        super().__init__()
        self.stack: list[bool] = []  # one entry per open element: inside an output?
        self.tags: list[str] = []

    def handle_starttag(self, tag, attrs):
        inside = bool(self.stack) and self.stack[-1]
        if inside:
            self.tags.append(tag)
        classes = (dict(attrs).get("class") or "").split()
        if tag not in self.VOID:
            self.stack.append(inside or "cell_output" in classes)

    def handle_endtag(self, tag):
        if tag not in self.VOID and self.stack:
            self.stack.pop()


def output_tags(html: str) -> list[str]:
    parser = CellOutputTags()
    parser.feed(html)
    return parser.tags


def test_output_tags_only_counts_cell_outputs():
    page = ('<img src="logo.svg"><table></table>'
            '<div class="cell_output docutils container"><div><img src="_images/a.png">'
            '</div></div><p>text</p>')
    assert output_tags(page) == ["div", "img"]


@dataclass
class BookBuild:
    """One build of the whole book per session, shared by the book's tests (``book``)."""

    labs: list[run_labs.Lab]
    failed_labs: list[str]  # ids of labs the runner could not execute: then nothing was built
    cache_path: Path
    seeded: set  # the cache records of the labs, put there before the build
    result: subprocess.CompletedProcess | None  # jupyter-book's, or None if not built
    html: Path

    @property
    def log(self) -> str:
        return self.result.stdout + self.result.stderr if self.result else ""


@pytest.fixture(scope="module")
def book(tmp_path_factory, lab_executions) -> BookBuild:
    """The book built as ``make book`` builds it, with the labs' outputs from this session's
    lab runs (seeded into its execution cache), into a temporary folder."""
    out = tmp_path_factory.mktemp("book")
    cache_path = out / "_build" / ".jupyter_cache"
    labs = run_labs.discover(run_labs.ROOT / "labs")
    failed = [lab.id for lab in labs if lab_executions.get(lab).record["status"] != "passed"]
    if failed:  # a lab missing from the cache would be executed by the build, at full size
        return BookBuild(labs, failed, cache_path, set(), None, out / "_build" / "html")
    for lab in labs:
        execution = lab_executions.get(lab)
        seed_execution_cache(cache_path, lab, execution.notebook, execution.record["seconds"])
    seeded = {record.pk for record in get_cache(str(cache_path)).list_cache_records()}

    jupyter_book = Path(sys.executable).parent / "jupyter-book"
    env = {
        **os.environ,
        "LABKIT_BACKEND": "simulated",
        "LABKIT_SIM_ROOT": str(out / "sim"),
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "DO_NOT_TRACK": "true",
    }
    result = subprocess.run(
        [str(jupyter_book), "build", str(REPO), "--path-output", str(out),
         "--warningiserror", "--nitpick", "--keep-going"],
        env=env, capture_output=True, text=True,
    )
    return BookBuild(labs, [], cache_path, seeded, result, out / "_build" / "html")


@pytest.mark.book
def test_book_builds_without_warnings(book):
    for lab in book.labs:
        assert lab.id not in book.failed_labs, f"lab {lab.id} failed, see its own test"
    cache_path, seeded, result, log = book.cache_path, book.seeded, book.result, book.log
    assert result.returncode == 0, log[-8000:]
    # The build executes the practice notebooks (chapter quizzes, mock exam) itself. A lab
    # the cache missed would have been executed too and cached beside ours, so every seeded
    # record must still be there and every other record be one of the practice notebooks.
    records = get_cache(str(cache_path)).list_cache_records()
    assert seeded <= {record.pk for record in records}, "a lab's seeded cache record was replaced"
    executed = sorted(Path(record.uri).resolve().relative_to(REPO).as_posix()
                      for record in records if record.pk not in seeded)
    assert executed == PRACTICE_NOTEBOOKS, \
        "the build executed a lab itself instead of taking the runner's outputs:\n" + log[-4000:]

    html = book.html
    assert (html / "index.html").is_file()
    lab_page = html / INTRO_LAB_PAGE
    assert lab_page.is_file(), f"{INTRO_LAB_PAGE} was not built"

    # The lab page shows what its cells produced: a plot and a table.
    tags = output_tags(lab_page.read_text(encoding="utf-8"))
    assert "img" in tags, "the intro lab's page has no image output"
    assert "table" in tags, "the intro lab's page has no table output"


# --- the book in a browser (tests/browser.py) ----------------------------------------------------
SCREENSHOTS = REPO / "_build" / "browser"
# A term of one lesson's own, and that lesson: the search must list it.
SEARCH_TERM, SEARCH_FINDS = "datastore", "chapters/01-manage-resources/datastores.html"
LESSON_PAGE = "chapters/01-manage-resources/datastores"
QUIZ_PAGE = "chapters/01-manage-resources/quiz"
# Sphinx 7.4 writes each inline script that an extension adds during the build twice into
# every page (``None`` and ``""`` filenames compare unequal; fixed by sphinx-doc/sphinx PR
# 13402, merged in 2025 after the last 7.x release; jupyter-book 1 needs Sphinx 7).
# sphinx-thebe's inline script declares a ``const``, so its copy throws this on every page;
# the first copy already ran, so nothing is lost. Any other uncaught error fails the test.
KNOWN_SCRIPT_ERRORS = ("Identifier 'THEBE_JS_URL' has already been declared",)


def unexpected(errors: list[str]) -> list[str]:
    return [error for error in errors if not any(known in error for known in KNOWN_SCRIPT_ERRORS)]


@pytest.mark.book
@pytest.mark.browser
def test_book_works_in_a_browser(book):
    """Every page of the table of contents opens in headless Chromium with nothing of the
    site's missing; search, a lab's outputs and a quiz work as a reader uses them.
    Screenshots of a lesson, a lab and a quiz go to _build/browser/."""
    assert book.result is not None and book.result.returncode == 0, \
        "the book did not build: see test_book_builds_without_warnings"
    pages = browser.toc_pages(REPO / "_toc.yml")
    with browser.Site(book.html, SCREENSHOTS) as site:
        views = site.views(pages)
        assert [d for d, v in views.items() if v.status != 200] == [], "pages of the toc not served"
        assert site.failures == [], "requests of the site's that failed:\n" + "\n".join(site.failures)
        errors = unexpected(site.script_errors)
        assert errors == [], "uncaught script errors:\n" + "\n".join(errors)
        broken = [f"{d}: {src}" for d, v in views.items() for src in v.broken_images]
        assert broken == [], "images that did not load:\n" + "\n".join(broken)
        dead = site.dead_links(views)
        assert dead == [], "links to nothing:\n" + "\n".join(dead)

        # Every lab page shows its executed outputs; the intro lab's figure is drawn.
        labs = [d for d in pages if d.startswith("labs/")]
        assert [d for d in labs if views[d].cell_outputs == 0] == [], "lab pages without outputs"
        lab = INTRO_LAB_PAGE.with_suffix("").as_posix()
        assert views[lab].output_images > 0, f"{lab}: no figure in its outputs loaded"

        hits = site.search(SEARCH_TERM)
        assert SEARCH_FINDS in hits, f"searching {SEARCH_TERM!r} found {hits}"

        before, after = site.answer_quiz(QUIZ_PAGE)
        assert after != before and after["text"], f"{QUIZ_PAGE}: the click changed nothing ({after})"
        assert re.search(r"\b(correct|incorrect)\b", after["class"]), after
        site.screenshot("quiz", ".MCButton.correctButton, .MCButton.incorrectButton")

        site.open(f"{LESSON_PAGE}.html")
        site.screenshot("lesson")
        site.open(INTRO_LAB_PAGE.as_posix())
        site.screenshot("lab", ".cell_output img")
        # Nothing failed on the way either: the search, its summaries, the quiz's page.
        assert site.failures == [] and unexpected(site.script_errors) == [], \
            site.failures + unexpected(site.script_errors)
