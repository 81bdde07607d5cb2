"""The built book as a reader's browser sees it: headless Chromium over a local server.

``Site`` serves a build's ``_build/html`` on 127.0.0.1 (``http.server`` in a thread) and
drives Debian's Chromium (``/usr/bin/chromium``, package ``chromium``; ``.ci/run`` installs
it where missing) with Playwright. Playwright only talks to that executable: nothing is
downloaded at run time (no ``playwright install``), and every request for an address
other than the local server is aborted before it leaves the browser, so the pages are
tested as they work offline, and a CDN the theme names costs no time-out.

While it is open, ``Site`` records every request of the site's own that failed or was
answered 400 or above (pages, images, scripts, styles, the search index, the pages the
search fetches for its summaries), and every uncaught script error. Its methods open the
pages of the table of contents, run a search, answer a quiz question and take screenshots;
the assertions stay in the test (tests/test_labs.py).
"""
from __future__ import annotations

import functools
import http.server
import os
import posixpath
import re
import shutil
import tempfile
import threading
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urljoin, urlsplit

import yaml
from test_toc import toc_entries

CHROMIUM = Path(os.environ.get("LABKIT_CHROMIUM", "/usr/bin/chromium"))
# As root, on a machine whose only network is loopback: no sandbox (root has none), no GPU,
# and none of the background connections Chromium makes at start (refused here, many at once).
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
VIEWPORT = {"width": 1280, "height": 900}
TIMEOUT_MS = 30_000


def toc_pages(toc_file: Path) -> list[str]:
    """The docnames of a jb-book ``_toc.yml``, root first, in reading order (no ``url`` entries)."""
    toc = yaml.safe_load(toc_file.read_text(encoding="utf-8"))
    return [re.sub(r"\.(md|ipynb|rst)$", "", entry) for entry in toc_entries(toc)]


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - the base class's name
        pass


@dataclass
class PageView:
    """What one opened page showed, read from the live DOM once it had loaded."""

    docname: str
    url: str
    status: int
    title: str
    links: list[str]  # every <a href> as the browser resolved it, and the quiz feedback's links
    ids: set[str]  # the element ids (and <a name>s) fragments may point at
    cell_outputs: int  # executed outputs of myst-nb code cells
    output_images: int  # <img> inside a cell output that loaded
    broken_images: list[str] = field(default_factory=list)  # <img> of the site's that did not


# Read in the page: everything the checks need, in one round trip.
READ_PAGE = """() => {
  const internal = (u) => u.startsWith(location.origin + '/');
  const feedbackLinks = [];
  for (const el of document.querySelectorAll('[data-feedback]')) {
    const holder = document.createElement('div');
    holder.innerHTML = el.dataset.feedback;
    for (const a of holder.querySelectorAll('a[href]'))
      feedbackLinks.push(new URL(a.getAttribute('href'), location.href).href);
  }
  const images = [...document.images].filter((img) => internal(img.currentSrc || img.src));
  return {
    title: document.title,
    links: [...document.querySelectorAll('a[href]')].map((a) => a.href).concat(feedbackLinks),
    ids: [...document.querySelectorAll('[id]')].map((el) => el.id)
      .concat([...document.querySelectorAll('a[name]')].map((a) => a.name)),
    cellOutputs: document.querySelectorAll('.cell_output').length,
    outputImages: [...document.querySelectorAll('.cell_output img')]
      .filter((img) => img.complete && img.naturalWidth > 0).length,
    brokenImages: images.filter((img) => img.complete && img.naturalWidth === 0
                                         && !/\\.svg($|[?#])/.test(img.currentSrc || img.src))
      .map((img) => img.currentSrc || img.src),
  };
}"""


class Site:
    """A built site served on 127.0.0.1 and open in headless Chromium (a context manager)."""

    def __init__(self, html: Path, screenshots: Path | None = None):
        if not CHROMIUM.is_file():
            raise RuntimeError(f"no {CHROMIUM}: install Debian's chromium and chromium-driver "
                               "(apt-get install -y chromium chromium-driver; .ci/run does)")
        self.html = html.resolve()
        self.screenshots = screenshots
        self.failures: list[str] = []  # "<page> -> <resource>: <status or error>", the site's own
        self.script_errors: list[str] = []  # "<page>: <uncaught error>"
        self.blocked: set[str] = set()  # other addresses a page asked for, aborted
        self._stack = ExitStack()

    # --- set-up ---------------------------------------------------------------------------
    def __enter__(self) -> Site:
        from playwright.sync_api import sync_playwright

        try:
            handler = functools.partial(_QuietHandler, directory=str(self.html))
            server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
            self._stack.callback(server.server_close)
            threading.Thread(target=server.serve_forever, daemon=True).start()
            self._stack.callback(server.shutdown)
            self.base = f"http://127.0.0.1:{server.server_address[1]}/"

            profile = Path(tempfile.mkdtemp(prefix="labkit-chromium-"))
            self._stack.callback(shutil.rmtree, profile, ignore_errors=True)
            playwright = self._stack.enter_context(sync_playwright())
            # A persistent context, so the profile is the fresh folder made above.
            self.context = playwright.chromium.launch_persistent_context(
                str(profile), executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS,
                viewport=VIEWPORT, service_workers="block")
            self._stack.callback(self.context.close)
            self.context.set_default_timeout(TIMEOUT_MS)
            self.context.route(lambda url: not self._internal(url), self._block)
            self.context.on("response", self._on_response)
            self.context.on("requestfailed", self._on_request_failed)
            self.page = self.context.pages[0] if self.context.pages else self.context.new_page()
            self.page.on("pageerror", lambda error: self.script_errors.append(f"{self._where()}: {error}"))
        except BaseException:
            self._stack.close()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self._stack.close()

    def _internal(self, url: str) -> bool:
        return url.startswith(self.base)

    def _block(self, route) -> None:
        url = route.request.url
        if not url.startswith(("data:", "blob:", "about:")):
            self.blocked.add(url)
        route.abort()

    def _where(self) -> str:
        return self._path(self.page.url)

    def _path(self, url: str) -> str:
        return url[len(self.base):] if self._internal(url) else url

    def _on_response(self, response) -> None:
        if self._internal(response.url) and response.status >= 400:
            self.failures.append(f"{self._where()} -> {self._path(response.url)}: HTTP {response.status}")

    def _on_request_failed(self, request) -> None:
        # ERR_ABORTED: a load the page itself cancelled (or left behind by navigating on); a
        # missing file is a response with its 404, recorded above.
        if self._internal(request.url) and "ERR_ABORTED" not in (request.failure or ""):
            self.failures.append(f"{self._where()} -> {self._path(request.url)}: {request.failure}")

    # --- pages ----------------------------------------------------------------------------
    def url(self, path: str) -> str:
        return urljoin(self.base, path)

    def open(self, path: str):
        """Open a path of the site (``chapters/x.html``, ``search.html?q=...``); the response."""
        return self.page.goto(self.url(path), wait_until="load")

    def settle(self) -> None:
        """Wait until the open page has fetched nothing for half a second, so what its
        scripts fetch after load is answered (and recorded) before the checks read it."""
        self.page.wait_for_load_state("networkidle")

    def view(self, docname: str) -> PageView:
        """Open the page built from ``docname`` and read what it shows."""
        response = self.open(f"{docname}.html")
        seen = self.page.evaluate(READ_PAGE)
        return PageView(docname=docname, url=self.page.url, status=response.status if response else 0,
                        title=seen["title"], links=seen["links"], ids=set(seen["ids"]),
                        cell_outputs=seen["cellOutputs"], output_images=seen["outputImages"],
                        broken_images=[self._path(src) for src in seen["brokenImages"]])

    def views(self, docnames: list[str]) -> dict[str, PageView]:
        """Open each page in turn (the site's failed requests are recorded meanwhile)."""
        views = {docname: self.view(docname) for docname in docnames}
        self.settle()
        return views

    def dead_links(self, views: dict[str, PageView]) -> list[str]:
        """Links of the opened pages to a file of the site that is not there, or to an id
        that an opened page does not have: ``"<page> -> <link>"``."""
        ids_by_path = {urlsplit(view.url).path: view.ids for view in views.values()}
        dead = []
        for view in views.values():
            for link in sorted(set(view.links)):
                if not self._internal(link):
                    continue
                parts = urlsplit(link)
                path = unquote(parts.path)
                target = self.html / posixpath.normpath(path.lstrip("/")) if path.strip("/") else self.html
                if target.is_dir():
                    target = target / "index.html"
                if not target.is_file():
                    dead.append(f"{view.docname} -> {self._path(link)}")
                elif parts.fragment and parts.path in ids_by_path \
                        and unquote(parts.fragment) not in ids_by_path[parts.path]:
                    dead.append(f"{view.docname} -> {self._path(link)} (no such id)")
        return dead

    # --- search, quiz, screenshots --------------------------------------------------------
    def search(self, term: str) -> list[str]:
        """The pages Sphinx's search page lists for ``term``, as paths of the site."""
        self.page.goto(self.url(f"search.html?q={term}"), wait_until="load")
        # searchtools.js retitles its results "Search Results" once it has listed them all.
        self.page.wait_for_function(
            "() => document.querySelector('#search-results h2')?.textContent === 'Search Results'")
        hrefs = self.page.eval_on_selector_all("#search-results ul.search li a", "els => els.map(a => a.href)")
        return [self._path(href).split("?")[0].split("#")[0] for href in hrefs]

    def answer_quiz(self, docname: str) -> tuple[dict, dict]:
        """Click the first answer of the first question of a jupyterquiz page; what the
        question's feedback element was before and after: ``{"class", "text"}`` each."""
        self.open(f"{docname}.html")
        self.settle()
        button = self.page.locator("label.MCButton").first
        button.wait_for(state="visible")
        question = button.get_attribute("id").split("-")[0]  # jupyterquiz: "<question>-<answer>"
        feedback = self.page.locator(f"#fb{question}")
        read = "el => ({class: el.className, text: el.textContent.trim()})"
        before = feedback.evaluate(read)
        button.click()
        self.page.wait_for_function(
            "([el, before]) => el.className !== before", arg=[feedback.element_handle(), before["class"]])
        return before, feedback.evaluate(read)

    def screenshot(self, name: str, selector: str | None = None) -> Path:
        """A screenshot of the open page's viewport (scrolled to ``selector`` if given)."""
        if selector:
            self.page.locator(selector).first.scroll_into_view_if_needed()
        self.screenshots.mkdir(parents=True, exist_ok=True)
        path = self.screenshots / f"{name}.png"
        self.page.screenshot(path=str(path))
        return path
