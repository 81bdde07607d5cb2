"""The published site's plumbing: its GitHub workflows, its one repository setting, its Binder files.

- The workflows in ``.github/workflows/`` validate against the GitHub workflow schema that
  check-jsonschema vendors (the same check as lab 3.5's workflow, ``test_mlops_files``), every
  ``make`` target they run is one the Makefile has (asked of make itself, ``make -n``), every
  repository path they run exists, and each does what it is for: pull requests build with
  the execution cache and test, a tag publishes to Pages, the weekly rebuild starts from
  nothing, the link check runs ``make linkcheck``.
- ``repository.url`` in ``_config.yml`` is the only place the repository's address is
  written; Jupyter Book makes the repository, issue and launch links from it (checked in a
  small real Jupyter Book build), and ``_ext/repository_setting.py`` says when it is unset,
  still the placeholder, or not the repository being published.
- ``.binder/`` gives Binder (repo2docker) the lock, the lock's Python, labkit and jupytext.
"""
from __future__ import annotations

import copy
import html
import importlib.util
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml
from jupyter_book.config import yaml_to_sphinx
from jupytext_config.labconfig import LabConfig
from packaging.specifiers import SpecifierSet
from packaging.version import Version

from test_mlops_files import check_jsonschema  # check-jsonschema with its vendored schemas

REPO = Path(__file__).resolve().parent.parent
WORKFLOW_DIR = REPO / ".github" / "workflows"
WORKFLOWS = sorted(WORKFLOW_DIR.glob("*.yml")) + sorted(WORKFLOW_DIR.glob("*.yaml"))
CONFIG_FILE = REPO / "_config.yml"
CONFIG = yaml.safe_load(CONFIG_FILE.read_text(encoding="utf-8"))
BINDER = REPO / ".binder"
LOCK = REPO / "requirements.lock"
VENV_BIN = Path(sys.executable).parent

# myst-nb keeps its execution cache beside the builder's output folder
# (myst_nb/sphinx_ext.py: Path(app.outdir).parent / ".jupyter_cache"), and `make book` writes
# the site to Jupyter Book's default _build/html: so the cache is _build/.jupyter_cache
# unless _config.yml moves it with execute.cache.
SITE = "_build/html"
EXECUTION_CACHE = "_build/.jupyter_cache"


def load_extension():
    spec = importlib.util.spec_from_file_location("repository_setting",
                                                  REPO / "_ext" / "repository_setting.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


repository_setting = load_extension()
URL = CONFIG["repository"]["url"]
IS_PLACEHOLDER = CONFIG["sphinx"]["config"].get(repository_setting.PLACEHOLDER_FLAG, False)


# --- reading workflows -----------------------------------------------------------------------
def load(path: Path) -> dict:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def triggers(workflow: dict) -> dict:
    """The `on:` block (YAML 1.1, which PyYAML reads, turns the bare key `on` into True)."""
    on = workflow.get("on", workflow.get(True))
    if isinstance(on, str):
        return {on: None}
    if isinstance(on, list):
        return {event: None for event in on}
    return on or {}


def steps(workflow: dict):
    """(job id, job, step) for every step of every job."""
    for job_id, job in workflow["jobs"].items():
        for step in job.get("steps", []):
            yield job_id, job, step


def commands(run: str) -> list[list[str]]:
    """The simple commands of a `run:` script, as words (operators and newlines split them)."""
    result = []
    for line in run.replace("\\\n", " ").splitlines():
        lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        lexer.commenters = "#"
        words = []
        for token in lexer:
            if token and set(token) <= set(";&|()"):
                if words:
                    result.append(words)
                words = []
            else:
                words.append(token)
        if words:
            result.append(words)
    return result


def make_targets(run: str) -> list[str]:
    """The targets of every `make` command of a script (options and VAR=value left out)."""
    targets = []
    for words in commands(run):
        if words and words[0] == "make":
            targets += [w for w in words[1:] if not w.startswith("-") and "=" not in w]
    return targets


REPOSITORY_PATH = re.compile(r"(?<![\w/.$-])(?:\./)?((?:scripts|_ext|\.ci|\.binder|tests|benchmarks)/[\w./-]+)")


def repository_paths(run: str) -> list[str]:
    return REPOSITORY_PATH.findall(run)


def make_problem(target: str) -> str | None:
    """Why `make <target>` would fail to find a rule, asked of make itself (dry run: -n)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAKE")}
    result = subprocess.run(["make", "-n", "--no-print-directory", "-C", str(REPO), target],
                            capture_output=True, text=True, env=env, timeout=60)
    if result.returncode != 0:
        return (result.stderr or result.stdout).strip()
    return None


def workflow_steps_running(workflow: dict, target: str) -> list[int]:
    """Indexes (in job order) of the steps that run `make <target>`."""
    return [i for i, (_, _, step) in enumerate(steps(workflow))
            if target in make_targets(step.get("run", ""))]


def uses(step: dict, action: str) -> bool:
    return str(step.get("uses", "")).split("@")[0] == action


def cache_steps(workflow: dict, path: str) -> list[tuple[int, dict]]:
    """Steps that restore (or save) `path` with actions/cache, /restore or /save."""
    found = []
    for i, (_, _, step) in enumerate(steps(workflow)):
        if any(uses(step, a) for a in ("actions/cache", "actions/cache/restore", "actions/cache/save")):
            paths = str(step.get("with", {}).get("path", "")).split()
            if path in paths:
                found.append((i, step))
    return found


def by_trigger(event: str) -> list[tuple[Path, dict]]:
    return [(path, load(path)) for path in WORKFLOWS if event in triggers(load(path))]


def lock_python() -> Version:
    """The Python the lock was resolved on, from its first line (scripts/lock.sh writes it)."""
    header = LOCK.read_text(encoding="utf-8").splitlines()[0]
    match = re.search(r"Python (\d+\.\d+)(?:\.\d+)?", header)
    assert match, f"no Python version in the lock's header: {header!r}"
    return Version(match.group(1))


# --- the workflows -------------------------------------------------------------------------
def test_the_four_workflows_exist():
    events = {event for path in WORKFLOWS for event in triggers(load(path))}
    assert {"pull_request", "push", "schedule"} <= events
    assert len(WORKFLOWS) >= 4


@pytest.mark.parametrize("path", WORKFLOWS, ids=[p.name for p in WORKFLOWS])
def test_workflow_validates_against_the_github_schema(path):
    result = check_jsonschema("vendor.github-workflows", path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_schema_check_fails_on_a_broken_site_workflow(tmp_path):
    workflow = load(WORKFLOW_DIR / "publish.yml")
    workflow["jobs"]["deploy"]["permissions"]["pages"] = "always"   # read, write or none
    del workflow["jobs"]["build"]["runs-on"]                         # a job needs a runner
    broken = tmp_path / "publish.yml"
    broken.write_text(yaml.safe_dump(workflow))
    assert check_jsonschema("vendor.github-workflows", broken).returncode == 1


WORKFLOW_TARGETS = sorted({(path.name, target) for path in WORKFLOWS
                           for _, _, step in steps(load(path))
                           for target in make_targets(step.get("run", ""))})


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
@pytest.mark.parametrize("workflow, target", WORKFLOW_TARGETS,
                         ids=[f"{w}:make {t}" for w, t in WORKFLOW_TARGETS])
def test_make_target_exists(workflow, target):
    assert make_problem(target) is None, f"{workflow} runs `make {target}`: {make_problem(target)}"


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_check_finds_a_missing_target():
    assert make_targets("make book && make no-such-target WORKERS=2\n") == ["book", "no-such-target"]
    assert make_problem("book") is None
    assert "no-such-target" in make_problem("no-such-target")


def test_repository_paths_exist():
    missing = sorted({(path.name, p) for path in WORKFLOWS for _, _, step in steps(load(path))
                      for p in repository_paths(step.get("run", "")) if not (REPO / p).exists()})
    assert missing == [], f"workflows run paths that do not exist: {missing}"


def test_path_check_finds_scripts():
    run = "bash scripts/lock.sh\n.venv/bin/python scripts/run_labs.py --out /tmp/x && ./.ci/run"
    assert repository_paths(run) == ["scripts/lock.sh", "scripts/run_labs.py", ".ci/run"]


def test_the_execution_cache_is_where_the_book_keeps_it():
    # execute.cache would move jupyter-cache's folder, and the workflows would cache nothing.
    assert not CONFIG.get("execute", {}).get("cache"), "execute.cache moved the execution cache"
    assert CONFIG["execute"]["execute_notebooks"] == "cache", "the book no longer uses the cache"
    assert (Path(SITE).parent / ".jupyter_cache").as_posix() == EXECUTION_CACHE


def test_pull_requests_build_with_the_cache_and_test():
    found = by_trigger("pull_request")
    assert found, "no workflow runs on pull requests"
    for path, workflow in found:
        book, test = workflow_steps_running(workflow, "book"), workflow_steps_running(workflow, "test")
        assert book and test, f"{path.name} does not run both `make book` and `make test`"
        restores = [i for i, step in cache_steps(workflow, EXECUTION_CACHE) if not uses(step, "actions/cache/save")]
        assert restores and min(restores) < min(book), f"{path.name}: no cache restored before `make book`"
        # A pull request restores the caches of its base branch: pushes to main must save one.
        assert "main" in (triggers(workflow).get("push") or {}).get("branches", []), \
            f"{path.name}: main's pushes do not refresh the cache pull requests read"


def test_a_tag_publishes_to_github_pages():
    found = [(p, w) for p, w in by_trigger("push") if (triggers(w)["push"] or {}).get("tags")]
    assert len(found) == 1, "one workflow publishes on a tag"
    path, workflow = found[0]
    assert "pull_request" not in triggers(workflow)
    jobs = workflow["jobs"]
    uploads = [(job_id, step) for job_id, _, step in steps(workflow)
               if uses(step, "actions/upload-pages-artifact")]
    deploys = [job_id for job_id, _, step in steps(workflow) if uses(step, "actions/deploy-pages")]
    assert len(uploads) == 1 and len(deploys) == 1, f"{path.name}: upload-pages-artifact + deploy-pages"
    build_job, upload = uploads[0]
    assert upload["with"]["path"] == SITE, "the artifact is not the site `make book` writes"
    assert workflow_steps_running({"jobs": {build_job: jobs[build_job]}}, "book"), "the site is not built"
    assert workflow_steps_running({"jobs": {build_job: jobs[build_job]}}, "test"), "not tested before publishing"
    deploy = jobs[deploys[0]]
    assert build_job in ([deploy["needs"]] if isinstance(deploy["needs"], str) else deploy["needs"])
    permissions = {**workflow.get("permissions", {}), **deploy.get("permissions", {})}
    assert permissions.get("pages") == "write" and permissions.get("id-token") == "write"
    assert deploy["environment"]["name"] == "github-pages"
    # The build of the published site refuses any repository.url but its own repository's.
    env = {**workflow.get("env", {}), **jobs[build_job].get("env", {})}
    assert env.get(repository_setting.EXPECTED_ENV) == "${{ github.server_url }}/${{ github.repository }}"


def test_the_weekly_rebuild_starts_from_nothing():
    found = [(p, w) for p, w in by_trigger("schedule") if workflow_steps_running(w, "book")]
    assert len(found) == 1, "one scheduled workflow rebuilds the book"
    path, workflow = found[0]
    clean, book = workflow_steps_running(workflow, "clean"), workflow_steps_running(workflow, "book")
    assert clean and min(clean) < min(book), f"{path.name}: `make clean` does not come first"
    restored = [step for _, step in cache_steps(workflow, EXECUTION_CACHE) if not uses(step, "actions/cache/save")]
    assert restored == [], f"{path.name} restores the execution cache it should rebuild"
    assert workflow_steps_running(workflow, "test"), f"{path.name} does not test the rebuilt book"
    if shutil.which("make"):
        dry = subprocess.run(["make", "-n", "-C", str(REPO), "clean"], capture_output=True, text=True)
        assert re.search(r"rm -rf _build\b", dry.stdout), "`make clean` does not remove _build"


def test_the_link_check_runs_on_a_schedule():
    found = [(p, w) for p, w in by_trigger("schedule") if workflow_steps_running(w, "linkcheck")]
    assert len(found) == 1, "one scheduled workflow runs `make linkcheck`"
    if shutil.which("make"):
        dry = subprocess.run(["make", "-n", "-C", str(REPO), "linkcheck"], capture_output=True, text=True)
        builds = [line for line in dry.stdout.splitlines() if "jupyter-book build" in line]
        assert builds and "linkcheck" in builds[-1], dry.stdout


CRON_RANGES = [(0, 59), (0, 23), (1, 31), (1, 12), (0, 6)]


def cron_problems(expression: str) -> list[str]:
    """POSIX cron as GitHub reads it: five fields of *, numbers, ranges, lists and steps."""
    fields = expression.split()
    if len(fields) != 5:
        return [f"{expression!r}: {len(fields)} fields, not 5"]
    problems = []
    for field, (low, high) in zip(fields, CRON_RANGES):
        for part in field.split(","):
            match = re.fullmatch(r"(\*|(\d+)(?:-(\d+))?)(?:/(\d+))?", part)
            if not match:
                problems.append(f"{expression!r}: {part!r} is not a cron field")
                continue
            numbers = [int(n) for n in match.groups()[1:3] if n is not None]
            if any(not low <= n <= high for n in numbers):
                problems.append(f"{expression!r}: {part!r} outside {low}-{high}")
    return problems


def test_schedules_are_valid_cron():
    schedules = [entry["cron"] for _, w in by_trigger("schedule") for entry in triggers(w)["schedule"]]
    assert len(schedules) >= 2
    for expression in schedules:
        assert cron_problems(expression) == []


def test_cron_check_finds_bad_schedules():
    assert cron_problems("0 4 * * 1") == []
    assert cron_problems("0 4 * *") != []
    assert cron_problems("61 4 * * 1") != []
    assert cron_problems("0 4 * * mon-fri") != []


def test_jobs_that_test_have_chromium_and_the_locks_python():
    """The browser test drives Debian's /usr/bin/chromium; Ubuntu runners' `chromium` is a
    snap stub, so these jobs run in a Debian container with the Python the lock is for."""
    jobs = [(path.name, job_id, job) for path in WORKFLOWS for job_id, job in load(path)["jobs"].items()
            if workflow_steps_running({"jobs": {job_id: job}}, "test")]
    assert jobs
    for name, job_id, job in jobs:
        image = job.get("container", {})
        image = image.get("image") if isinstance(image, dict) else image
        match = re.fullmatch(r"python:(\d+\.\d+)-(bookworm|trixie)", str(image))
        assert match, f"{name}/{job_id}: not a Debian Python image: {image!r}"
        assert Version(match.group(1)) == lock_python(), f"{name}/{job_id}: Python {match.group(1)}"
        installs = [words for step in job["steps"] for words in commands(step.get("run", ""))
                    if words[:2] == ["apt-get", "install"]]
        packages = {w for words in installs for w in words[2:] if not w.startswith("-")}
        assert {"chromium", "chromium-driver"} <= packages, f"{name}/{job_id} installs {packages}"


# --- the repository setting ----------------------------------------------------------------
SKIP_DIRS = {".git", ".venv", "_build", "__pycache__", ".pytest_cache", "node_modules", ".ipynb_checkpoints"}


def files_naming(needle: str) -> dict[str, int]:
    """Text files of the repository that contain `needle` (any case), with their counts."""
    found = {}
    for folder, dirs, files in os.walk(REPO):
        dirs[:] = [d for d in dirs if d not in SKIP_DIRS and not d.endswith(".egg-info")]
        for name in files:
            path = Path(folder, name)
            if path.stat().st_size > 5_000_000:
                continue
            try:
                text = path.read_text(encoding="utf-8")
            except (UnicodeDecodeError, OSError):
                continue
            count = text.lower().count(needle.lower())
            if count:
                found[path.relative_to(REPO).as_posix()] = count
    return found


def test_the_repository_address_is_written_once():
    owner_and_name = urlsplit(URL).path.strip("/")
    assert owner_and_name.count("/") == 1, f"repository.url is not a repository address: {URL}"
    assert files_naming(owner_and_name) == {"_config.yml": 1}


def test_the_links_are_made_from_the_setting():
    sphinx_config, overrides, add_paths = yaml_to_sphinx(copy.deepcopy(CONFIG))
    options = sphinx_config["html_theme_options"]
    assert options["repository_url"] == URL
    assert options.get("use_repository_button") and options.get("use_issues_button")
    assert options["launch_buttons"].get("binderhub_url"), "no Binder button (nor .ipynb download)"
    assert "jupyterhub_url" in options["launch_buttons"], "the JupyterHub setting is gone"
    # Colab opens only .ipynb sources; the labs are .md (see the comment in _config.yml).
    assert not options["launch_buttons"].get("colab_url")
    assert "repository_setting" in sphinx_config["extensions"]
    assert "_ext" in add_paths and (REPO / "_ext" / "repository_setting.py").is_file()
    assert overrides[repository_setting.PLACEHOLDER_FLAG] is IS_PLACEHOLDER


def test_an_empty_address_stops_jupyter_book_itself():
    config = copy.deepcopy(CONFIG)
    config["repository"]["url"] = ""
    with pytest.raises(ValueError, match="repository URL"):
        yaml_to_sphinx(config)


def test_what_the_build_says_about_the_setting():
    problem = repository_setting.repository_setting_problem
    default = repository_setting.jupyter_book_default_url()
    assert "executablebooks/jupyter-book" in default
    url = "https://github.com/an-owner/a-book"

    level, message = problem("", False)
    assert level == "warning" and "repository.url in _config.yml is not set" in message
    level, message = problem(default, False)
    assert level == "warning" and "Jupyter Book's own repository" in message
    level, message = problem(url, True)
    assert level == "info" and "still a placeholder" in message and url in message
    assert problem(url, False) is None
    # Publishing: the repository the workflow runs in decides.
    assert problem(url.upper() + ".git", False, expected=url + "/") is None
    level, message = problem(url, False, expected="https://github.com/someone/else")
    assert level == "warning" and "https://github.com/someone/else" in message
    level, message = problem(url, True, expected="https://github.com/someone/else")
    assert level == "warning" and "repository_url_is_placeholder" in message
    level, _ = problem(url, True, expected=url)
    assert level == "info"


def test_the_shipped_setting_does_not_fail_the_build():
    result = repository_setting.repository_setting_problem(URL, IS_PLACEHOLDER)
    assert result is None or result[0] == "info"   # `make book` builds with --warningiserror
    assert (result is not None) == IS_PLACEHOLDER


LESSON = "# A lesson\n\nThe sources are at {{ repository_url }}, problems go to {{ issues_url }}.\n"
LAB = """---
jupytext:
  text_representation:
    extension: .md
    format_name: myst
kernelspec:
  display_name: Python 3
  language: python
  name: python3
---
# A lab

```{code-cell} ipython3
print("hello")
```
"""


def small_book(root: Path, **changes) -> Path:
    """A three-page book with the real _config.yml's repository, buttons and extension."""
    root.mkdir(parents=True, exist_ok=True)
    sphinx = CONFIG["sphinx"]
    config = {
        "title": "A small book",
        "only_build_toc_files": True,
        "execute": {"execute_notebooks": "off"},
        "parse": CONFIG["parse"],
        "repository": dict(CONFIG["repository"]),
        "html": dict(CONFIG["html"]),
        "launch_buttons": dict(CONFIG["launch_buttons"]),
        "sphinx": {
            "local_extensions": {name: str(REPO / folder) for name, folder in sphinx["local_extensions"].items()},
            "config": {repository_setting.PLACEHOLDER_FLAG: IS_PLACEHOLDER},
        },
    }
    for key, value in changes.items():
        config[key] = value
    (root / "_config.yml").write_text(yaml.safe_dump(config), encoding="utf-8")
    (root / "_toc.yml").write_text(yaml.safe_dump(
        {"format": "jb-book", "root": "intro", "chapters": [{"file": "lesson"}, {"file": "lab"}]}))
    (root / "intro.md").write_text("# A small book\n", encoding="utf-8")
    (root / "lesson.md").write_text(LESSON, encoding="utf-8")
    (root / "lab.md").write_text(LAB, encoding="utf-8")
    return root


def build(root: Path, **env) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if k != repository_setting.EXPECTED_ENV}
    environment.update(env)
    return subprocess.run([str(VENV_BIN / "jupyter-book"), "build", str(root), "--warningiserror",
                           "--keep-going"], capture_output=True, text=True, env=environment, timeout=600)


def hrefs(page: Path) -> list[str]:
    return [html.unescape(h) for h in re.findall(r'href="([^"]+)"', page.read_text(encoding="utf-8"))]


def test_a_book_build_makes_every_link_from_the_setting(tmp_path):
    book = small_book(tmp_path / "book")
    result = build(book)
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-6000:]
    assert ("[repository.url]" in log and "still a placeholder" in log) == IS_PLACEHOLDER, log[-3000:]

    site = book / SITE
    owner, name = urlsplit(URL).path.strip("/").split("/")
    branch = CONFIG["repository"]["branch"]
    binder = CONFIG["launch_buttons"]["binderhub_url"].rstrip("/")
    links = hrefs(site / "lab.html")
    assert URL in links, "no repository button"
    assert any(h.startswith(f"{URL}/issues/new") for h in links), "no issue button"
    assert f"{binder}/v2/gh/{owner}/{name}/{branch}?urlpath=lab/tree/lab.md" in links, \
        [h for h in links if "binder" in h]
    # The download button's executed notebook.
    assert "_sources/lab.ipynb" in links and (site / "_sources" / "lab.ipynb").is_file()
    # The substitutions, made from the same setting.
    lesson = (site / "lesson.html").read_text(encoding="utf-8")
    assert "The sources are at" in lesson and URL in lesson and f"{URL}/issues" in lesson
    assert "{{" not in lesson


def test_a_book_build_without_the_setting_says_so_and_fails(tmp_path):
    # The key missing: Jupyter Book fills in its own repository. (With the repository buttons
    # on, Jupyter Book refuses the missing key itself; see the test above.)
    repository = {k: v for k, v in CONFIG["repository"].items() if k != "url"}
    html_options = {**CONFIG["html"], "use_repository_button": False, "use_issues_button": False}
    book = small_book(tmp_path / "book", repository=repository, html=html_options)
    result = build(book)
    log = result.stdout + result.stderr
    assert result.returncode != 0
    assert "repository.url in _config.yml is not set" in log, log[-3000:]


def test_a_publishing_build_refuses_another_repository(tmp_path):
    book = small_book(tmp_path / "book")
    result = build(book, **{repository_setting.EXPECTED_ENV: "https://github.com/someone/else"})
    log = result.stdout + result.stderr
    assert result.returncode != 0
    assert "but this build publishes the site of https://github.com/someone/else" in log, log[-3000:]


# --- Binder --------------------------------------------------------------------------------
# repo2docker: "If one of these folders exists, only configuration files in that folder are
# considered" (binder/ or .binder/, never both), and runtime.txt is ignored beside an
# environment.yml (https://repo2docker.readthedocs.io, "Using source repositories",
# "Configuration files").
REPO2DOCKER_FILES = {"environment.yml", "requirements.txt", "runtime.txt", "postBuild", "apt.txt",
                     "Pipfile", "Pipfile.lock", "setup.py", "Project.toml", "install.R", "start",
                     "Dockerfile", "default.nix", "DESCRIPTION", "REQUIRE"}


def test_binder_reads_only_the_binder_folder():
    assert BINDER.is_dir() and not (REPO / "binder").exists(), "one of binder/ and .binder/"
    assert {p.name for p in BINDER.iterdir()} == {"requirements.txt", "runtime.txt", "postBuild"}
    ignored = sorted(name for name in REPO2DOCKER_FILES - {"setup.py"} if (REPO / name).exists())
    assert ignored == [], f"repo2docker ignores these beside .binder/: {ignored}"


def requirement_lines(path: Path) -> list[str]:
    """A requirements file's lines without comments (pip: `#` at the start or after a space)."""
    lines = [re.sub(r"(^|\s)#.*", "", line).strip() for line in path.read_text(encoding="utf-8").splitlines()]
    return [line for line in lines if line]


def test_binder_installs_exactly_the_lock():
    lines = requirement_lines(BINDER / "requirements.txt")
    assert len(lines) == 1 and lines[0].startswith("-r "), lines
    # pip reads a nested -r relative to the file that names it (pip's req_file.py).
    target = (BINDER / lines[0][3:].strip()).resolve()
    assert target == LOCK.resolve()


def test_the_lock_has_what_binder_needs():
    pins = {}
    for line in requirement_lines(LOCK):
        assert not line.startswith(("-e", "-r", "-c", ".", "/")) and "@ file:" not in line, \
            f"a local requirement in the lock: {line}"
        name, _, version = line.partition("==")
        assert version, f"not an exact pin: {line}"
        pins[name.lower().replace("_", "-")] = version
    # jupytext opens the .md labs as notebooks; ipykernel is the labs' python3 kernel.
    assert {"jupytext", "ipykernel"} <= set(pins)


def test_binder_runs_the_locks_python():
    runtime = (BINDER / "runtime.txt").read_text(encoding="utf-8").strip()
    assert runtime.startswith("python-"), runtime
    version = Version(".".join(runtime.split("-", 1)[1].split(".")[:2]))   # as repo2docker reads it
    assert version == lock_python()
    requires = load_pyproject()["project"]["requires-python"]
    assert SpecifierSet(requires).contains(version), f"{version} is outside requires-python {requires}"


def load_pyproject() -> dict:
    import tomllib
    return tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))


def git_mode(path: Path) -> str | None:
    if shutil.which("git") is None:
        return None
    result = subprocess.run(["git", "ls-files", "-s", "--", str(path.relative_to(REPO))],
                            cwd=REPO, capture_output=True, text=True)
    return result.stdout.split()[0] if result.returncode == 0 and result.stdout else None


def test_postbuild_installs_labkit_and_opens_md_as_notebooks(tmp_path):
    post_build = BINDER / "postBuild"
    text = post_build.read_text(encoding="utf-8")
    assert text.startswith("#!/bin/bash\n")
    assert re.search(r"^set -e", text, re.MULTILINE), "errors must stop the Binder build"
    assert os.access(post_build, os.X_OK) and git_mode(post_build) in (None, "100755")
    installs = [w for w in commands(text) if w[:2] == ["pip", "install"]]
    assert any("-e" in w and w[w.index("-e") + 1] == "." and "--no-deps" in w for w in installs), installs
    viewers = [w for w in commands(text) if w[:2] == ["jupytext-config", "set-default-viewer"]]
    assert len(viewers) == 1 and "markdown" in viewers[0]
    assert set(viewers[0][2:]) <= set(LabConfig.DOCTYPES)
    # The command does what the script relies on (into a settings file of the test's own).
    settings = tmp_path / "default_setting_overrides.json"
    subprocess.run([str(VENV_BIN / "jupytext-config"), "--settings-file", str(settings), *viewers[0][1:]],
                   check=True, capture_output=True)
    written = json.loads(settings.read_text())["@jupyterlab/docmanager-extension:plugin"]["defaultViewers"]
    assert written["markdown"] == "Jupytext Notebook"
