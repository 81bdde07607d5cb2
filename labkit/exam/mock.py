"""The mock exam: drawn from the bank by domain weight, answered by letters, scored out of 1000.

An exam is a list of items, one per question, numbered from 1: the bank question, its
choices in the order shown (lettered A-F, steps to G) and the right answer as a tuple of letters.
Every question is worth one point, all or nothing: the exact set of a multiple-answer
question, the exact order of an ordering question, every blank of a code question.
"""
from __future__ import annotations

import html
import random
import re
import textwrap
from pathlib import Path

from labkit.exam import bank as bank_module
from labkit.exam.quiz import LETTERS, html_text, scrambled

SCALE = 1000
PASS_MARK = 700
SCORING_PAGE = "https://learn.microsoft.com/en-us/credentials/certifications/exam-scoring-reports"
SCALED_SCORE_NOTE = (
    "This mock score is the share of questions you got right, times 1000. Microsoft reports the "
    "real exam on a scaled score from 1 to 1000 with 700 to pass, which is not a plain "
    "percentage (700 need not be 70% of the points), and gives a point for each right part "
    "of a multi-part question, where this mock gives all or nothing."
)


class AnswerError(ValueError):
    """An answer that cannot be scored as given; the message says what to type instead."""


def quotas(count: int) -> dict[int, int]:
    """Questions per domain: each domain's midpoint weight, rounded by largest remainder."""
    middles = {domain: (low + high) / 2 for domain, (low, high) in bank_module.WEIGHTS.items()}
    shares = {domain: count * middle / sum(middles.values()) for domain, middle in middles.items()}
    taken = {domain: int(share) for domain, share in shares.items()}
    by_remainder = sorted(shares, key=lambda d: (-(shares[d] - taken[d]), d))
    for domain in by_remainder[:count - sum(taken.values())]:
        taken[domain] += 1
    return taken


def _units(questions: list[dict]) -> list[list[dict]]:
    """The questions as draw units: a case study's questions form one unit, in their order."""
    units: list[list[dict]] = []
    by_case: dict[str, list[dict]] = {}
    for question in questions:
        if "case" not in question:
            units.append([question])
        elif question["case"] in by_case:
            by_case[question["case"]].append(question)
        else:
            by_case[question["case"]] = [question]
            units.append(by_case[question["case"]])
    return units


def draw(seed, count: int = 50, bank: Path | None = None, chapter: int | None = None) -> list[dict]:
    """An exam of about ``count`` questions; the same seed (and bank) gives the same exam.

    Each domain gets its share (``quotas``); with ``chapter``, all come from that chapter. A
    domain takes at most one case study, whole, and only if it fits the domain's share, so a
    share can end a question or two short when only cases are left."""
    folder = bank or bank_module.BANK  # looked up now, so a test or an instructor can point it elsewhere
    questions = bank_module.questions(folder)
    cases = bank_module.cases(folder)
    rng = random.Random(seed)
    targets = {chapter: count} if chapter else quotas(count)
    chosen: list[list[dict]] = []
    for domain, target in sorted(targets.items()):
        pool = _units([q for q in questions if q["chapter"] == domain])
        rng.shuffle(pool)
        left, took_case = target, False
        for unit in pool:
            is_case = "case" in unit[0]
            if len(unit) <= left and not (is_case and took_case):
                chosen.append(unit)
                left -= len(unit)
                took_case = took_case or is_case
    rng.shuffle(chosen)
    return [_item(number, question, cases, rng)
            for number, question in enumerate((q for unit in chosen for q in unit), 1)]


def _item(number: int, question: dict, cases: dict, rng: random.Random) -> dict:
    item = {"number": number, "question": question}
    if "case" in question:
        item["case"] = cases[question["case"]]
    kind = question["format"]
    if kind in ("single", "multiple"):
        item["choices"], right = _shuffled_options(question["options"], rng)
        item["answer"] = tuple(right)
        item["pick"] = len(right)
    elif kind == "order":
        shown = scrambled(len(question["steps"]), rng)  # shown[k] is the step printed at letter k
        item["choices"] = [question["steps"][step] for step in shown]
        item["answer"] = tuple(LETTERS[shown.index(step)] for step in range(len(shown)))
    else:
        item["blanks"], answer = [], []
        for blank in question["blanks"]:
            choices, [right] = _shuffled_options(blank["options"], rng)
            item["blanks"].append(choices)
            answer.append(right)
        item["answer"] = tuple(answer)
    return item


def _shuffled_options(options: list[dict], rng: random.Random) -> tuple[list[str], list[str]]:
    """The options' texts in a shuffled order, and the letters of the right ones there."""
    options = list(options)
    rng.shuffle(options)
    return [o["text"] for o in options], [LETTERS[k] for k, o in enumerate(options) if o["correct"]]


# --- answers -------------------------------------------------------------------------------------
def _letters(text: str, size: int) -> list[str]:
    cleaned = re.sub(r"[\s,]+", "", str(text)).upper()
    if not re.fullmatch(r"[A-Z]+", cleaned):
        raise AnswerError("Answer with letters, like B, A,C or ACD.")
    for letter in cleaned:
        if letter not in LETTERS[:size]:
            raise AnswerError(f"{letter} is not one of the options: choose from A to {LETTERS[size - 1]}.")
    return list(cleaned)


def parse_blank(item: dict, blank: int, text: str) -> str:
    """One blank's answer (``blank`` counts from 0): exactly one letter of its options."""
    letters = _letters(text, len(item["blanks"][blank]))
    if len(letters) != 1:
        raise AnswerError(f"Give one letter for blank ___{blank + 1}___.")
    return letters[0]


def parse(item: dict, answer) -> tuple[str, ...]:
    """A learner's answer as the item's right answer is written, or :class:`AnswerError`.

    ``answer`` is text (``"B"``, ``"A,C"``, ``"ACD"``) or, for a code question, also a list
    with one letter per blank."""
    kind = item["question"]["format"]
    if kind == "code":
        parts = list(answer) if isinstance(answer, (list, tuple)) else re.sub(r"[\s,]+", "", str(answer))
        if len(parts) != len(item["blanks"]):
            raise AnswerError(f"Give one letter per blank, {len(item['blanks'])} in all, in the blanks' order.")
        return tuple(parse_blank(item, k, part) for k, part in enumerate(parts))
    if isinstance(answer, (list, tuple)):
        answer = "".join(map(str, answer))
    letters = _letters(answer, len(item["choices"]))
    if len(set(letters)) != len(letters):
        raise AnswerError("Give each letter once.")
    if kind == "single" and len(letters) != 1:
        raise AnswerError("This question has one answer: give one letter.")
    if kind == "multiple":
        if len(letters) != item["pick"]:
            raise AnswerError(f"Choose {item['pick']} options; you gave {len(letters)}.")
        return tuple(sorted(letters))
    if kind == "order" and len(letters) != len(item["choices"]):
        raise AnswerError(f"Put all {len(item['choices'])} steps in order: give each of their letters once.")
    return tuple(letters)


# --- scoring and the report ----------------------------------------------------------------------
def lesson_path(question: dict) -> str:
    """The URL path of the question's lesson in the built book."""
    return f"{question['lesson']}.html"


def score(exam: list[dict], answers: dict) -> dict:
    """Score ``answers`` (question number -> answer); an unanswered question scores nothing.

    An answer that cannot be read scores nothing and the report says why, so a notebook's
    answers cell never stops the page."""
    given = {int(number): answer for number, answer in answers.items()}
    result = {"right": 0, "total": len(exam), "domains": {}, "missed": []}
    for item in exam:
        question = item["question"]
        domain = result["domains"].setdefault(question["chapter"], [0, 0])
        domain[1] += 1
        why = "not answered"
        if item["number"] in given:
            try:
                why = None if parse(item, given[item["number"]]) == item["answer"] else "wrong"
            except AnswerError as error:
                why = f"not scored: {error}"
        if why is None:
            result["right"] += 1
            domain[0] += 1
        else:
            result["missed"].append({"number": item["number"], "id": question["id"],
                                     "lesson": lesson_path(question), "why": why})
    result["score"] = round(SCALE * result["right"] / result["total"]) if result["total"] else 0
    result["passed"] = result["total"] > 0 and result["score"] >= PASS_MARK
    return result


def report(result: dict) -> str:
    """The result as text: score, pass or fail, each domain, and a lesson for every miss."""
    if not result["total"]:
        return "The exam had no questions: the bank has none for it yet."
    lines = [f"Score: {result['score']} of {SCALE} ({result['right']} of {result['total']} right). "
             f"Pass mark {PASS_MARK}: {'PASS' if result['passed'] else 'FAIL'}.", "", "By domain:"]
    for domain, (right, total) in sorted(result["domains"].items()):
        lines.append(f"  {domain}. {bank_module.CHAPTER_TITLES[domain]}: {right}/{total} ({round(100 * right / total)}%)")
    if result["missed"]:
        lines += ["", "To review:"]
        lines += [f"  Question {m['number']} ({m['id']}, {m['why']}): {m['lesson']}" for m in result["missed"]]
    return "\n".join(lines + ["", textwrap.fill(SCALED_SCORE_NOTE, 92), f"See {SCORING_PAGE}"])


# --- showing an exam -------------------------------------------------------------------------------
def instruction(item: dict) -> str:
    """What the learner is to answer, in words."""
    kind = item["question"]["format"]
    if kind == "single":
        return "Choose one."
    if kind == "multiple":
        return f"Choose {item['pick']}."
    if kind == "order":
        return "Put the steps in order: give their letters in order."
    return "Choose the option for each blank: one letter per blank, in order."


def exam_html(exam: list[dict]) -> str:
    """The exam as HTML with lettered options, for a notebook or a book page."""
    parts = []
    for item in exam:
        question = item["question"]
        block = [f"<h4>Question {item['number']}</h4>"]
        if "case" in item:
            block.append(f"<p><b>Case study: {html_text(item['case']['title'])}</b></p>"
                         f"<blockquote>{html_text(item['case']['scenario'])}</blockquote>")
        block.append(f"<p>{html_text(question['stem'])}</p>")
        if "code" in question:
            block.append(f"<pre><code>{html.escape(question['code'], quote=False)}</code></pre>")
            for number, choices in enumerate(item["blanks"], 1):
                block.append(f"<p>Blank <code>___{number}___</code>:</p>" + _lettered(choices))
        else:
            block.append(_lettered(item["choices"]))
        block.append(f"<p><i>{instruction(item)}</i></p>")
        parts.append("".join(block))
    return "".join(parts)


def _lettered(choices: list[str]) -> str:
    rows = "".join(f"<li><b>{LETTERS[k]}</b>. {html_text(text)}</li>" for k, text in enumerate(choices))
    return f'<ul style="list-style: none">{rows}</ul>'
