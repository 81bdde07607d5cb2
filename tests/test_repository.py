"""The repository holds text sources only: labs are MyST Markdown, never .ipynb."""
import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BUILD_PRODUCTS = {".venv", "_build", ".git"}  # not sources: never committed


def test_git_tracks_no_notebook():
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    # ls-files reads the index, so a staged notebook counts; the pathspec matches in
    # every folder. check=True: a git error must not pass as "no notebooks".
    tracked = subprocess.run(
        ["git", "ls-files", "--", "*.ipynb"], cwd=ROOT, check=True,
        capture_output=True, text=True,
    ).stdout.split()
    assert tracked == [], f"notebooks tracked by git: {tracked}"


def test_no_notebook_file_in_the_tree():
    # .gitignore ignores *.ipynb, so git alone would not notice an untracked one.
    found = []
    for folder, dirs, files in os.walk(ROOT):
        if folder == str(ROOT):
            dirs[:] = [d for d in dirs if d not in BUILD_PRODUCTS]
        found += [str(Path(folder, f).relative_to(ROOT)) for f in files if f.endswith(".ipynb")]
    assert found == [], f"notebooks in the repository: {found}"
