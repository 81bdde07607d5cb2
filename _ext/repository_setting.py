"""The book's one repository setting, ``repository.url`` in ``_config.yml``, checked by the build.

Jupyter Book turns that one value into every repository link of the site: sphinx-book-theme
reads it (as the theme option ``repository_url``) for the repository button, the "open an
issue" button and the Binder and JupyterHub launch buttons. A page that needs the address
writes ``{{ repository_url }}`` or ``{{ issues_url }}``: this extension defines those MyST
substitutions from the same setting, so no page, README or script repeats it.

What the build says about the setting, and why:

- **Unset**: empty, or missing (Jupyter Book then fills in its own repository,
  https://github.com/executablebooks/jupyter-book, and every button would quietly point there).
  A *warning*: ``make book`` and the book test build with ``--warningiserror``, so they stop.
  A site whose launch buttons lead nowhere is broken. (With the repository buttons on, an
  empty value already stops Jupyter Book itself, before any extension loads: "To use
  'repository' buttons, you must specify the repository URL".)
- **Still the placeholder** (``repository_url_is_placeholder: true`` under ``sphinx.config``):
  one *info* line naming the setting. It does not fail the build: the project ships with a
  placeholder until its public home is confirmed, and every build, local or CI, runs with
  ``--warningiserror``; a warning would stop all of them for a fact nobody can fix in a pull
  request.
- **Publishing** (the environment variable ``BOOK_EXPECTED_REPOSITORY_URL``, which the publish
  workflow sets to the repository it runs in): any other address is a *warning*, so the
  published site never links to the wrong repository, placeholder or not.
"""
from __future__ import annotations

import os
from pathlib import Path

from sphinx.application import Sphinx
from sphinx.config import Config
from sphinx.util import logging

logger = logging.getLogger(__name__)

SETTING = "repository.url"
CONFIG_FILE = "_config.yml"
PLACEHOLDER_FLAG = "repository_url_is_placeholder"
EXPECTED_ENV = "BOOK_EXPECTED_REPOSITORY_URL"


def jupyter_book_default_url() -> str:
    """The address Jupyter Book uses when ``repository.url`` is missing (its own repository)."""
    import yaml
    import jupyter_book

    defaults = Path(jupyter_book.__file__).with_name("default_config.yml")
    return yaml.safe_load(defaults.read_text(encoding="utf-8"))["repository"]["url"]


def normalise(url: str | None) -> str:
    """An address as a browser would treat it: no trailing slash or ``.git``, any case."""
    url = (url or "").strip().rstrip("/")
    if url.endswith(".git"):
        url = url[: -len(".git")]
    return url.lower()


def repository_setting_problem(url: str | None, is_placeholder: bool,
                               expected: str | None = None) -> tuple[str, str] | None:
    """What the build should say about the setting: ("warning" | "info", message), or None."""
    where = f"{SETTING} in {CONFIG_FILE}"
    if not normalise(url) or normalise(url) == normalise(jupyter_book_default_url()):
        detail = "" if not normalise(url) else (
            f" (it is Jupyter Book's own repository, {url}, which Jupyter Book fills in when "
            "the key is missing)")
        return ("warning",
                f"{where} is not set{detail}. The repository and issue buttons and the Binder "
                "and JupyterHub launch buttons are made from it: set it to the address of the "
                "repository the book is published from, https://github.com/<owner>/<name>.")
    if expected and normalise(url) != normalise(expected):
        return ("warning",
                f"{where} is {url}, but this build publishes the site of {expected} "
                f"({EXPECTED_ENV}): its repository, issue and launch links would point to the "
                f"wrong repository. Set {SETTING} to {expected}"
                + (f" and sphinx.config.{PLACEHOLDER_FLAG} to false." if is_placeholder else "."))
    if is_placeholder:
        if expected:
            return ("info",
                    f"{where} ({url}) is marked as a placeholder but is the repository being "
                    f"published; set sphinx.config.{PLACEHOLDER_FLAG} to false.")
        return ("info",
                f"{where} is still a placeholder ({url}): the repository, issue and launch "
                f"buttons of this build point there. Once the book's repository exists, set "
                f"{SETTING} to its address and sphinx.config.{PLACEHOLDER_FLAG} to false.")
    return None


def substitutions(url: str) -> dict[str, str]:
    """The MyST substitutions pages use instead of writing the address."""
    url = url.strip().rstrip("/")
    return {"repository_url": url, "issues_url": f"{url}/issues"}


def check_repository_setting(app: Sphinx, config: Config) -> None:
    url = (config.html_theme_options or {}).get("repository_url", "")
    problem = repository_setting_problem(url, bool(config[PLACEHOLDER_FLAG]),
                                         os.environ.get(EXPECTED_ENV) or None)
    if problem is not None:
        level, message = problem
        if level == "warning":
            logger.warning(message, type="repository", subtype="url")
        else:
            logger.info(f"[{SETTING}] {message}", color="darkred")
    if normalise(url) and "myst_substitutions" in config:
        # A page's own substitution of the same name wins (setdefault).
        defined = dict(config.myst_substitutions or {})
        for name, value in substitutions(url).items():
            defined.setdefault(name, value)
        config.myst_substitutions = defined


def setup(app: Sphinx) -> dict:
    app.add_config_value(PLACEHOLDER_FLAG, False, "env", types=(bool,),
                         description=f"{SETTING} is not yet the book's real repository")
    # After the other extensions' config-inited handlers (default 500), before myst-parser
    # builds its configuration from myst_substitutions at builder-inited.
    app.connect("config-inited", check_repository_setting, priority=800)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
