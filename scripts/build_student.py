#!/usr/bin/env python
"""Build the student edition: the book's pages with every exercise's solution left out.

    python scripts/build_student.py [--out DIR] [--execute {cache,off}] [--toc FILE]
                                    [-W] [--nitpick] [--keep-going]

The same sources, ``_config.yml`` and table of contents as ``make book``; a solution is
written once, in its lab, and this build only leaves it out. What differs from the book:

- Every ``{solution}`` block is left out of the pages, and with it the code cell that
  directly follows it in the labs: that hidden cell is the worked solution, which the book
  executes so that CI proves each solution runs. Both are taken out of the document tree
  as each page is read (the ``doctree-read`` handler below), before the HTML, the search
  index or any other output is written from it, so no solution text reaches the site.
- Pages offer no download of their source (``.md``) or executed notebook (``.ipynb``), since
  both hold the solutions: Sphinx's ``html_copy_source`` and the theme's download button are
  off. The launch buttons stay; they open the repository's sources, solutions included.
- Every page title says "(student edition)".
- The site goes to ``<out>/html`` (default ``_build/student/html``). Notebooks are taken from
  the book's execution cache, ``_build/.jupyter_cache``: the cache is keyed on a notebook's
  code cells, which this build does not change, so after ``make book`` no lab runs again.
  ``--execute off`` builds without executing or reading the cache (pages without outputs).

Why not sphinx-exercise's own ``hide_solutions`` option: it drops a ``{solution}`` directive
while the page is parsed (it returns no node at all), which leaves no trace of where the
solution was, so the worked code cell after it could no longer be found and would stay on
the page. Removing both from the document tree, here, needs no second copy of anything.

Exit status 0 when the build succeeded, 1 otherwise.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "_config.yml"
BOOK_CACHE = ROOT / "_build" / ".jupyter_cache"  # where `make book` keeps its executions
EXTENSION = Path(__file__).stem  # this module is also the build's Sphinx extension


# --- the Sphinx extension: what the student edition leaves out ---------------------------

def is_code_cell(node) -> bool:
    from docutils import nodes

    return isinstance(node, nodes.container) and node.get("nb_element") == "cell_code"


def leave_out_solutions(app, doctree) -> None:
    """Remove every solution, and the code cell right after it (its worked code), from a page."""
    from sphinx_exercise.nodes import solution_node

    solutions = list(doctree.findall(solution_node))
    for solution in solutions:
        following = solution.next_node(descend=False, siblings=True)
        if following is not None and is_code_cell(following):
            following.parent.remove(following)
            app.student_edition_left_out["cells"] += 1
        solution.parent.remove(solution)
    app.student_edition_left_out["solutions"] += len(solutions)


def report(app, exception) -> None:
    if exception is None:
        from sphinx.util import logging

        logging.getLogger(__name__).info(
            "student edition: %(solutions)d solutions and %(cells)d worked-solution cells left "
            "out of the pages read", app.student_edition_left_out)


def setup(app) -> dict:
    # Before sphinx-exercise's own doctree-read handler (priority 500), which registers each
    # solution's label: a solution that is gone then leaves no label behind either.
    app.student_edition_left_out = {"solutions": 0, "cells": 0}  # this run's pages only
    app.connect("doctree-read", leave_out_solutions, priority=400)
    app.connect("build-finished", report)
    return {"parallel_read_safe": True, "parallel_write_safe": True}


# --- the build ---------------------------------------------------------------------------

def overrides(toc: Path, execute: str, nitpick: bool) -> dict:
    """Sphinx settings that turn the book's configuration into the student edition's.

    They are merged last, over what Jupyter Book makes of ``_config.yml`` (nested settings
    such as the theme options are updated, not replaced; lists are replaced, hence the full
    extension list)."""
    from jupyter_book.config import get_final_config

    book, _ = get_final_config(user_yaml=CONFIG, cli_config={"latex_individualpages": False},
                               sourcedir=ROOT)
    settings = {
        # What `jupyter-book build` itself passes for a book.
        "external_toc_path": toc.as_posix(),
        "latex_individualpages": False,
        "extensions": [*book["extensions"], EXTENSION],
        "html_title": f"{book['html_title']} (student edition)",
        "html_copy_source": False,
        "html_theme_options": {"use_download_button": False},
        "nb_execution_cache_path": str(BOOK_CACHE),
    }
    if execute == "off":
        settings["nb_execution_mode"] = "off"
    if nitpick:
        settings["nitpicky"] = True
    return settings


def build(out: Path, execute: str = "cache", toc: Path = ROOT / "_toc.yml",
          warningiserror: bool = False, nitpick: bool = False, keep_going: bool = False) -> int:
    from jupyter_book.sphinx import build_sphinx

    # As `make book` runs the labs: on the simulated workspace, quietly.
    os.environ.setdefault("LABKIT_BACKEND", "simulated")
    os.environ.setdefault("LABKIT_SIM_ROOT", str(ROOT / "_build" / "sim-workspaces"))
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("DO_NOT_TRACK", "true")
    sys.path.insert(0, str(Path(__file__).resolve().parent))  # so Sphinx finds EXTENSION

    result = build_sphinx(
        ROOT, out / "html",
        noconfig=True, path_config=str(CONFIG),
        confoverrides=overrides(toc.resolve(), execute, nitpick),
        warningiserror=warningiserror, keep_going=keep_going,
    )
    return 0 if result == 0 else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=str(ROOT / "_build" / "student"),
                        help="output folder; the site goes to OUT/html (default _build/student)")
    parser.add_argument("--execute", choices=["cache", "off"], default="cache",
                        help="cache: the book's executions (default); off: no outputs")
    parser.add_argument("--toc", default=str(ROOT / "_toc.yml"), help="table of contents")
    parser.add_argument("-W", "--warningiserror", action="store_true", help="error on warnings")
    parser.add_argument("-n", "--nitpick", action="store_true", help="warn on every missing reference")
    parser.add_argument("--keep-going", action="store_true", help="with -W, report every warning")
    args = parser.parse_args(argv)
    out = Path(args.out).resolve()
    status = build(out, args.execute, Path(args.toc), args.warningiserror, args.nitpick,
                   args.keep_going)
    if status == 0:
        print(f"The student edition is at {out / 'html' / 'index.html'}")
    return status


if __name__ == "__main__":
    sys.exit(main())
