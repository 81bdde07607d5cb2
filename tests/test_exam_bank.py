"""The question bank (labkit/exam/bank/): every file keeps the format, every question links a
lesson that exists, and every code-completion answer, filled in, runs with the installed SDK
(on a fresh simulated workspace where the question says so)."""
from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import yaml

from labkit.exam import bank

REPO = Path(__file__).resolve().parent.parent
QUESTIONS = bank.questions()
CODE_QUESTIONS = [q for q in QUESTIONS if q["format"] == "code"]


@pytest.mark.parametrize("question", QUESTIONS, ids=[q["id"] for q in QUESTIONS])
def test_a_question_links_a_lesson_that_exists(question):
    assert (REPO / f"{question['lesson']}.md").is_file()


def test_every_chapter_file_names_its_own_chapter():
    for path in sorted(bank.BANK.glob("chapter-*.yaml")):
        assert path.name == f"chapter-{bank.load(path)['chapter']}.yaml"


def test_the_bank_is_large_and_weighted_as_the_exam():
    """At least 160 questions, each chapter's share within its domain's weight in the outline."""
    assert len(QUESTIONS) >= 160
    for chapter, (low, high) in bank.WEIGHTS.items():
        share = 100 * sum(q["chapter"] == chapter for q in QUESTIONS) / len(QUESTIONS)
        assert low <= share <= high, f"chapter {chapter}: {share:.1f} % of the bank, the exam gives {low}-{high} %"


@pytest.mark.parametrize("chapter", sorted(bank.WEIGHTS))
def test_every_chapter_has_every_format_and_a_case_study(chapter):
    mine = [q for q in QUESTIONS if q["chapter"] == chapter]
    assert {q["format"] for q in mine} == {"single", "multiple", "order", "code"}
    assert any("case" in q for q in mine)


@pytest.mark.parametrize("question", CODE_QUESTIONS, ids=[q["id"] for q in CODE_QUESTIONS])
def test_a_completed_snippet_runs(question, request):
    namespace: dict = {}
    if question["check"] == "simulation":
        namespace["ml_client"] = request.getfixturevalue("ml_client")  # a fresh simulated workspace
    exec(compile(textwrap.dedent(question.get("setup", "")), f"{question['id']} setup", "exec"), namespace)
    exec(compile(bank.completed_code(question), question["id"], "exec"), namespace)


# --- the checks themselves -------------------------------------------------------------------------
GOOD = {
    "id": "c1-example", "lesson": "chapters/01-manage-resources/workspace", "skill": "1.1",
    "format": "single", "stem": "Which file does `MLClient.from_config` read?",
    "options": [
        {"text": "`config.json`", "correct": True, "why": "It looks for it in the folder and its parents."},
        {"text": "`workspace.yml`", "correct": False, "why": "No such file is read."},
        {"text": "`.azureml/settings.ini`", "correct": False, "why": "No such file is read."},
    ],
    "explanation": "The studio's download gives the file.",
}


def write_bank(tmp_path, questions, chapter=1):
    (tmp_path / f"chapter-{chapter}.yaml").write_text(yaml.safe_dump({"chapter": chapter, "questions": questions}))
    return tmp_path


def test_a_good_question_loads(tmp_path):
    assert [q["id"] for q in bank.questions(write_bank(tmp_path, [GOOD]))] == ["c1-example"]


@pytest.mark.parametrize("change, complaint", [
    ({"format": "multiple"}, "at least 2 right options"),
    ({"skill": "2.1"}, "is not one of chapter 1's"),
    ({"lesson": "chapters/02-experiments-training/sweeps"}, "not in its chapter"),
    ({"steps": ["a", "b", "c"]}, "should not be valid"),
    ({"explanation": ""}, "should be non-empty"),
    ({"format": "code", "options": None}, "None is not of type 'array'"),
])
def test_a_broken_question_is_refused_with_its_reason(tmp_path, change, complaint):
    with pytest.raises(bank.BankError, match=complaint):
        bank.questions(write_bank(tmp_path, [{**GOOD, **change}]))


def test_a_code_question_needs_its_blanks_in_order(tmp_path):
    question = {key: value for key, value in GOOD.items() if key != "options"}
    blank = {"options": [{"text": "`a`", "correct": True, "why": "w"}, {"text": "`b`", "correct": False, "why": "w"}]}
    question.update(format="code", check="build", code="x = ___2___", blanks=[blank])
    with pytest.raises(bank.BankError, match=r"blanks \[2\]"):
        bank.questions(write_bank(tmp_path, [question]))
    question["code"] = "x = ___1___"
    assert bank.completed_code(bank.questions(write_bank(tmp_path, [question]))[0]) == "x = a"


def test_an_id_is_used_once_in_the_whole_bank(tmp_path):
    write_bank(tmp_path, [GOOD, GOOD])
    with pytest.raises(bank.BankError, match="used twice: c1-example"):
        bank.questions(tmp_path)
