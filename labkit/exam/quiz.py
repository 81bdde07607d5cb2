"""The quiz that closes each chapter: a few questions of the bank, shown with jupyterquiz.

jupyterquiz renders in the browser from JSON, so an executed page works in the published
HTML with no kernel as well as in Jupyter. Its texts are HTML: :func:`html_text` turns the
bank's Markdown (inline code in backticks) into HTML and escapes everything else.
"""
from __future__ import annotations

import html
import itertools
import math
import posixpath
import random
import re
from collections import Counter
from pathlib import Path

from labkit.exam import bank as bank_module

INLINE_CODE = re.compile(r"`([^`]+)`")
LETTERS = "ABCDEFG"  # options go to F; an ordering question may have seven steps
# How many wrong orders an ordering question offers beside the right one.
WRONG_ORDERS = 3


def html_text(markdown: str) -> str:
    """The bank's Markdown as HTML: escaped, backticks as <code>, blank lines as paragraphs."""
    paragraphs = [p.strip() for p in re.split(r"\n\s*\n", markdown.strip()) if p.strip()]
    rendered = [INLINE_CODE.sub(r"<code>\1</code>", html.escape(p, quote=False)) for p in paragraphs]
    return rendered[0] if len(rendered) == 1 else "".join(f"<p>{p}</p>" for p in rendered)


def lesson_link(question: dict, page: str) -> str:
    """A link from the page at docname ``page`` to the question's lesson, as the built site has it."""
    target = posixpath.relpath(question["lesson"], posixpath.dirname(page))
    return f'<a href="{target}.html">Read the lesson</a>'


def _feedback(why: str, right: bool, question: dict, page: str) -> str:
    """The option's reason; after a right answer the question's point; always the lesson."""
    parts = [html_text(why)] if why else []
    if right:
        parts.append(html_text(question["explanation"]))
    parts.append(lesson_link(question, page))
    return " ".join(parts)


def _stem(question: dict, cases: dict) -> str:
    text = html_text(question["stem"])
    if "case" in question:
        case = cases[question["case"]]
        text = f"<b>Case study: {html.escape(case['title'])}</b>{_as_block(html_text(case['scenario']))}{_as_block(text)}"
    return text


def _as_block(text: str) -> str:
    return text if text.startswith("<p>") else f"<p>{text}</p>"


def _choices(options: list[dict], question: dict, page: str) -> list[dict]:
    return [{"answer": html_text(o["text"]), "correct": o["correct"],
             "feedback": _feedback(o["why"], o["correct"], question, page)} for o in options]


def wrong_orders(question: dict, count: int = WRONG_ORDERS) -> list[tuple[int, ...]]:
    """Wrong orders of the steps (indexes), distinct, the same every time for this question."""
    size = len(question["steps"])
    right = tuple(range(size))
    rng = random.Random(question["id"])
    found: list[tuple[int, ...]] = []
    # Shuffling until a new order turns up never lists all n! orders (5040 for seven steps).
    total = math.factorial(size)
    while len(found) < min(count, total - 1):
        order = list(right)
        rng.shuffle(order)
        if tuple(order) != right and tuple(order) not in found:
            found.append(tuple(order))
    return found


def convert(question: dict, cases: dict | None = None, page: str | None = None) -> list[dict]:
    """One bank question as jupyterquiz questions: one, or one per blank of a code question.

    ``page`` is the docname of the page that shows the quiz (its lesson links are relative
    to it); by default the chapter's quiz page."""
    cases = cases or {}
    page = page or f"{Path(question['lesson']).parent.as_posix()}/quiz"
    stem = _stem(question, cases)
    kind = question["format"]
    if kind in ("single", "multiple"):
        options = _shuffled(question["options"], question["id"])
        return [{"question": stem, "type": "multiple_choice" if kind == "single" else "many_choice",
                 "answers": _choices(options, question, page)}]
    if kind == "order":
        return [_order_question(question, stem, page)]
    converted = []
    code = html.escape(question["code"], quote=False)
    for number, blank in enumerate(question["blanks"], 1):
        label = f"<p>Which goes in <code>___{number}___</code>?</p>" if len(question["blanks"]) > 1 \
            else "<p>Which completes the code?</p>"
        converted.append({"question": _as_block(stem) + label, "type": "multiple_choice", "code": code,
                          "answers": _choices(_shuffled(blank["options"], f"{question['id']}-{number}"),
                                              question, page)})
    return converted


def _shuffled(items: list, key: str) -> list:
    # The bank's authors may list the right option first; the page must not give that away,
    # yet show the same order on every build.
    items = list(items)
    random.Random(key).shuffle(items)
    return items


def scrambled(size: int, rng: random.Random) -> list[int]:
    """The step indexes in a random order that is never the right one, which would give it away."""
    shown = list(range(size))
    rng.shuffle(shown)
    return shown if shown != sorted(shown) else shown[1:] + shown[:1]


def _order_question(question: dict, stem: str, page: str) -> dict:
    """The steps lettered in a scrambled order; the answers are orders of those letters."""
    steps = question["steps"]
    shown = scrambled(len(steps), random.Random(question["id"] + "-steps"))  # shown[k]: step at letter k
    letter = {step: LETTERS[k] for k, step in enumerate(shown)}
    listing = "".join(f"<li><b>{LETTERS[k]}</b>: {html_text(steps[step])}</li>" for k, step in enumerate(shown))
    orders = [tuple(range(len(steps)))] + wrong_orders(question)
    answers = [{"answer": ", ".join(letter[step] for step in order), "correct": n == 0,
                "feedback": _feedback("" if n == 0 else "Not in this order.", n == 0, question, page)}
               for n, order in enumerate(orders)]
    return {"question": f"{_as_block(stem)}<ul>{listing}</ul><p>Which order is right?</p>",
            "type": "multiple_choice", "answers": _shuffled(answers, question["id"] + "-orders")}


def select(questions: list[dict], count: int = 10, seed: int = 0) -> list[dict]:
    """``count`` questions, the same for the same seed, spread over lessons and formats.

    Lessons take turns (in the order the bank first names them); each turn takes the lesson's
    question whose format the quiz has least of so far."""
    rng = random.Random(seed)
    by_lesson: dict[str, list[dict]] = {}
    for question in sorted(questions, key=lambda q: q["id"]):
        by_lesson.setdefault(question["lesson"], []).append(question)
    for pool in by_lesson.values():
        rng.shuffle(pool)
    lessons = sorted(by_lesson, key=lambda name: next(i for i, q in enumerate(questions) if q["lesson"] == name))
    chosen: list[dict] = []
    formats: Counter = Counter()
    for lesson in itertools.cycle(lessons):
        if len(chosen) >= count or not any(by_lesson.values()):
            break
        pool = by_lesson[lesson]
        if pool:
            pick = min(pool, key=lambda q: formats[q["format"]])  # min keeps the first of equals
            pool.remove(pick)
            chosen.append(pick)
            formats[pick["format"]] += 1
    order = {name: i for i, name in enumerate(lessons)}
    return sorted(chosen, key=lambda q: order[q["lesson"]])  # stable: a lesson's picks stay in turn order


def quiz(chapter: int, count: int = 10, seed: int = 0, bank: Path | None = None) -> list[dict]:
    """A chapter's quiz as the jupyterquiz JSON list."""
    folder = bank or bank_module.BANK  # looked up now, so a test or an instructor can point it elsewhere
    questions = [q for q in bank_module.questions(folder) if q["chapter"] == chapter]
    cases = bank_module.cases(folder)
    return [item for q in select(questions, count, seed) for item in convert(q, cases)]


def show(chapter: int, count: int = 10, seed: int = 0, bank: Path | None = None) -> None:
    """Display a chapter's quiz (in a notebook, or on its executed book page)."""
    from IPython.display import Markdown, display
    from jupyterquiz import display_quiz

    items = quiz(chapter, count, seed, bank)
    if not items:
        display(Markdown(f"The questions for chapter {chapter} are still being written."))
        return
    # Answers are already in a seeded order; jupyterquiz's own shuffle would change per load.
    display_quiz(items, shuffle_answers=False)
