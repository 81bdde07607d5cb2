"""The question bank: one YAML file per chapter in ``bank/``, checked against ``schema.json``
and against the rules a schema cannot say (one right answer for a single-answer question,
blanks numbered as the snippet numbers them, ids unique across the bank).

A question is a plain dict as the YAML gives it, plus ``chapter`` and, for a question of a
case study, ``case`` (the case's id); :func:`questions` flattens the cases into the list.
"""
from __future__ import annotations

import json
import os
import re
from functools import lru_cache
from pathlib import Path

import jsonschema
import yaml

# The book's bank, or another folder of chapter files (an instructor's own questions).
BANK = Path(os.environ.get("LABKIT_EXAM_BANK") or Path(__file__).parent / "bank")
SCHEMA = Path(__file__).parent / "schema.json"

# The skills of the study guide's weighted outline, the one the chapters follow (SYLLABUS.md),
# with its repeated lines taken once.
SKILLS = {
    "1.1": "Create and manage workspaces",
    "1.2": "Manage compute and data assets",
    "1.3": "Create and manage environments and jobs",
    "2.1": "Configure and submit training jobs",
    "2.2": "Use scripts, AutoML and tuning techniques",
    "2.3": "Manage experiment results",
    "3.1": "Register and deploy models",
    "3.2": "Create and manage endpoints",
    "3.3": "Enable batch inferencing and manage inference pipelines",
    "3.4": "Monitor and troubleshoot deployed models",
    "4.1": "Explain model predictions",
    "4.2": "Monitor for fairness and bias",
    "4.3": "Enforce compliance and governance policies",
}
# Each domain's share of the exam in the guide's outline, in percent (low, high).
WEIGHTS = {1: (25, 30), 2: (20, 25), 3: (35, 40), 4: (5, 10)}
CHAPTER_TITLES = {
    1: "Manage Azure Machine Learning resources",
    2: "Run experiments and train models",
    3: "Deploy and operationalize machine learning solutions",
    4: "Implement responsible machine learning",
}
BLANK = re.compile(r"___(\d)___")


class BankError(ValueError):
    """A bank file breaks the format; the message names the file and the question."""


def load(path: Path) -> dict:
    """One chapter file, checked; raises :class:`BankError` naming what is wrong."""
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    errors = sorted(_validator().iter_errors(data), key=lambda e: list(e.absolute_path))
    if errors:
        raise BankError("\n".join(f"{path.name}: {'/'.join(map(str, e.absolute_path)) or '.'}: {e.message}"
                                  for e in errors[:20]))
    for question in _chapter_questions(data):
        problem = _rule_broken(question, data["chapter"])
        if problem:
            raise BankError(f"{path.name}: question {question['id']}: {problem}")
    return data


@lru_cache(maxsize=1)
def _validator() -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(json.loads(SCHEMA.read_text(encoding="utf-8")))


def _chapter_questions(data: dict) -> list[dict]:
    found = [{**q, "chapter": data["chapter"]} for q in data["questions"]]
    for case in data.get("cases") or []:
        found += [{**q, "chapter": data["chapter"], "case": case["id"]} for q in case["questions"]]
    return found


def _rule_broken(question: dict, chapter: int) -> str | None:
    if not question["id"].startswith(f"c{chapter}-"):
        return f"its id does not start with c{chapter}-"
    if not question["skill"].startswith(f"{chapter}.") or question["skill"] not in SKILLS:
        return f"skill {question['skill']} is not one of chapter {chapter}'s ({', '.join(s for s in SKILLS if s[0] == str(chapter))})"
    if not question["lesson"].startswith(f"chapters/0{chapter}-"):
        return "its lesson is not in its chapter"
    kind = question["format"]
    if kind in ("single", "multiple"):
        right = sum(o["correct"] for o in question["options"])
        if kind == "single" and right != 1:
            return f"a single-answer question has {right} right options, not 1"
        if kind == "multiple" and not 2 <= right < len(question["options"]):
            return f"a multiple-answer question needs at least 2 right options and a wrong one ({right} of {len(question['options'])})"
    if kind == "order" and len(set(question["steps"])) != len(question["steps"]):
        return "two steps are the same, so the order is ambiguous"
    if kind == "code":
        numbers = [int(n) for n in BLANK.findall(question["code"])]
        if numbers != list(range(1, len(question["blanks"]) + 1)):
            return f"the snippet's blanks {numbers} are not ___1___ to ___{len(question['blanks'])}___ in order"
        for number, blank in enumerate(question["blanks"], 1):
            if sum(o["correct"] for o in blank["options"]) != 1:
                return f"blank {number} needs exactly one right option"
    return None


def questions(bank: Path = BANK) -> list[dict]:
    """Every question of the bank, chapter by chapter, cases' questions after the others."""
    found = []
    for path in sorted(bank.glob("chapter-*.yaml")):
        found += _chapter_questions(load(path))
    ids = [q["id"] for q in found]
    repeated = sorted({i for i in ids if ids.count(i) > 1})
    if repeated:
        raise BankError(f"question ids used twice: {', '.join(repeated)}")
    return found


def cases(bank: Path = BANK) -> dict[str, dict]:
    """The case studies by id: their title and scenario."""
    return {case["id"]: case for path in sorted(bank.glob("chapter-*.yaml"))
            for case in load(path).get("cases") or []}


def completed_code(question: dict) -> str:
    """A code-completion question's snippet with its right option in every blank."""
    answers = [next(o["text"] for o in blank["options"] if o["correct"]) for blank in question["blanks"]]
    return BLANK.sub(lambda m: _code_text(answers[int(m.group(1)) - 1]), question["code"])


def _code_text(option_text: str) -> str:
    """An option as the snippet needs it: the text without the Markdown backticks around it."""
    text = option_text.strip()
    return text[1:-1] if len(text) > 1 and text[0] == text[-1] == "`" else text
