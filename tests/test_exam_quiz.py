"""The chapter quizzes: bank questions in jupyterquiz's format, a fixed selection spread over a
chapter's lessons and formats, and quiz pages whose code runs.

Everything runs on a small bank of its own (``write_sample_bank``), never the book's, which
other people are writing while these tests run.
"""
from __future__ import annotations

import html
import re
from pathlib import Path

import jupytext
import pytest
import yaml
from myst_nb.core.read import is_myst_markdown_notebook

from labkit.exam import bank, quiz

REPO = Path(__file__).resolve().parent.parent
LESSONS = {
    1: ("01-manage-resources", ["workspace", "datastores", "data-assets", "compute", "environments"]),
    2: ("02-experiments-training", ["command-jobs", "mlflow-tracking", "pipelines", "automl", "sweeps"]),
    3: ("03-deploy-operationalize", ["models", "online-endpoints", "batch-endpoints", "monitoring", "mlops"]),
    4: ("04-responsible-ml", ["explanations", "fairness", "privacy-governance"]),
}


def _option(text, correct):
    return {"text": text, "correct": correct, "why": f"Why `{text}` is {'right' if correct else 'wrong'}."}


def sample_questions(chapter: int, lesson: str, prefix: str) -> list[dict]:
    """One question of each format for a lesson; the texts are placeholders, not facts."""
    docname = f"chapters/{LESSONS[chapter][0]}/{lesson}"
    common = {"lesson": docname, "skill": f"{chapter}.1", "explanation": f"The point of {prefix} & <more>."}
    return [
        {**common, "id": f"{prefix}-single", "format": "single", "stem": f"Pick the right one <{prefix}>.",
         "options": [_option("right", True), _option("wrong a", False), _option("wrong b", False)]},
        {**common, "id": f"{prefix}-multiple", "format": "multiple", "stem": "Pick the two right ones.",
         "options": [_option("right 1", True), _option("wrong", False), _option("right 2", True),
                     _option("also wrong", False)]},
        {**common, "id": f"{prefix}-order", "format": "order", "stem": "Put these in order.",
         "steps": ["first step", "second step", "third step", "fourth step"]},
        {**common, "id": f"{prefix}-code", "format": "code", "check": "build", "stem": "Complete the code.",
         "code": "x = ___1___\nif x < 2:\n    y = ___2___\n",
         "blanks": [{"options": [_option("`1`", True), _option("`3`", False)]},
                    {"options": [_option("`'a'`", False), _option("`'b'`", True), _option("`'c'`", False)]}]},
    ]


def write_sample_bank(folder: Path) -> Path:
    """Four chapter files: every lesson with one question per format, and one case per chapter."""
    folder.mkdir(parents=True, exist_ok=True)
    for chapter, (slug, lessons) in LESSONS.items():
        questions = [q for lesson in lessons for q in sample_questions(chapter, lesson, f"c{chapter}-{lesson}")]
        case_questions = sample_questions(chapter, lessons[0], f"c{chapter}-case-q")[:3]
        case = {"id": f"c{chapter}-case-shop", "title": f"A shop, chapter {chapter}",
                "scenario": "A shop sells `things`.\n\nIt wants forecasts.", "questions": case_questions}
        data = {"chapter": chapter, "questions": questions, "cases": [case]}
        (folder / f"chapter-{chapter}.yaml").write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return folder


@pytest.fixture
def sample_bank(tmp_path):
    return write_sample_bank(tmp_path / "bank")


def by_id(folder: Path, question_id: str) -> dict:
    return next(q for q in bank.questions(folder) if q["id"] == question_id)


# --- conversion ------------------------------------------------------------------------------------
def test_markdown_becomes_escaped_html_with_code():
    assert quiz.html_text("Use `a<b>` & <i>") == "Use <code>a&lt;b&gt;</code> &amp; &lt;i&gt;"
    assert quiz.html_text("One.\n\nTwo `x`.") == "<p>One.</p><p>Two <code>x</code>.</p>"


def test_a_single_answer_question_is_multiple_choice_with_its_right_option(sample_bank):
    question = by_id(sample_bank, "c1-compute-single")
    [converted] = quiz.convert(question)
    assert converted["type"] == "multiple_choice"
    assert converted["question"] == "Pick the right one &lt;c1-compute&gt;."
    assert [a["answer"] for a in converted["answers"] if a["correct"]] == ["right"]
    assert sorted(a["answer"] for a in converted["answers"]) == ["right", "wrong a", "wrong b"]
    for answer in converted["answers"]:
        assert f"Why <code>{answer['answer']}</code> is" in answer["feedback"]
        assert '<a href="compute.html">' in answer["feedback"]  # the quiz page sits beside the lesson
    right = next(a for a in converted["answers"] if a["correct"])
    assert "The point of c1-compute &amp; &lt;more&gt;." in right["feedback"]


def test_a_multiple_answer_question_is_many_choice_with_every_right_option(sample_bank):
    [converted] = quiz.convert(by_id(sample_bank, "c2-sweeps-multiple"))
    assert converted["type"] == "many_choice"
    assert sorted(a["answer"] for a in converted["answers"] if a["correct"]) == ["right 1", "right 2"]
    assert len(converted["answers"]) == 4


def test_an_ordering_question_offers_the_right_order_and_distinct_wrong_ones(sample_bank):
    question = by_id(sample_bank, "c3-models-order")
    [converted] = quiz.convert(question)
    assert converted["type"] == "multiple_choice"
    orders = [a["answer"] for a in converted["answers"]]
    assert len(orders) == 1 + quiz.WRONG_ORDERS and len(set(orders)) == len(orders)
    # The listing letters the steps; the right answer's letters spell them in the right order.
    letter_of = dict((step, letter) for letter, step in re.findall(r"<li><b>([A-F])</b>: (.*?)</li>", converted["question"]))
    [right] = [a for a in converted["answers"] if a["correct"]]
    assert right["answer"] == ", ".join(letter_of[step] for step in question["steps"])
    assert question["explanation"].split()[0] in right["feedback"]
    assert quiz.convert(question) == [converted]  # the same permutations, in the same order, every time


def test_wrong_orders_are_deterministic_and_never_the_right_one():
    question = {"id": "c1-x", "steps": ["a", "b", "c"]}
    first = quiz.wrong_orders(question, count=10)
    assert first == quiz.wrong_orders(question, count=10)
    assert len(first) == 5 and (0, 1, 2) not in first and len(set(first)) == 5  # 3! - 1


def test_steps_are_never_listed_in_their_right_order_and_seven_get_letters_to_g():
    import random

    for size in range(2, 8):
        for seed in range(200):
            assert quiz.scrambled(size, random.Random(seed)) != list(range(size))
    seven = {"id": "c1-seven", "lesson": "chapters/01-manage-resources/compute", "format": "order",
             "stem": "Order.", "steps": [f"step {n}" for n in range(7)], "explanation": "E."}
    [converted] = quiz.convert(seven)
    assert "<b>G</b>" in converted["question"] and len(converted["answers"]) == 4


def test_a_code_question_is_one_quiz_question_per_blank(sample_bank):
    question = by_id(sample_bank, "c4-fairness-code")
    converted = quiz.convert(question)
    assert len(converted) == 2
    for number, (item, blank) in enumerate(zip(converted, question["blanks"]), 1):
        assert item["code"] == html.escape(question["code"], quote=False)
        assert "x &lt; 2" in item["code"]
        assert f"<code>___{number}___</code>" in item["question"]
        [right] = [a["answer"] for a in item["answers"] if a["correct"]]
        assert right == quiz.html_text(next(o["text"] for o in blank["options"] if o["correct"]))


def test_a_case_question_carries_its_scenario(sample_bank):
    question = by_id(sample_bank, "c2-case-q-single")
    [converted] = quiz.convert(question, bank.cases(sample_bank))
    assert "Case study: A shop, chapter 2" in converted["question"]
    assert "<p>A shop sells <code>things</code>.</p><p>It wants forecasts.</p>" in converted["question"]


# --- selection -------------------------------------------------------------------------------------
def test_the_selection_is_fixed_for_a_seed_and_spread_over_lessons_and_formats(sample_bank):
    questions = [q for q in bank.questions(sample_bank) if q["chapter"] == 1]
    chosen = quiz.select(questions, count=10, seed=3)
    reloaded = [q for q in bank.questions(sample_bank) if q["chapter"] == 1]
    assert [q["id"] for q in chosen] == [q["id"] for q in quiz.select(reloaded, 10, 3)]
    lessons = [q["lesson"] for q in chosen]
    assert all(lessons.count(lesson) == 2 for lesson in set(lessons)) and len(set(lessons)) == 5
    formats = [q["format"] for q in chosen]
    counts = [formats.count(kind) for kind in ("single", "multiple", "order", "code")]
    assert max(counts) - min(counts) <= 1
    assert lessons == sorted(lessons, key=[q["lesson"] for q in questions].index)  # in the book's order
    others = {tuple(q["id"] for q in quiz.select(questions, 10, seed)) for seed in range(5)}
    assert len(others) > 1


def test_a_small_chapter_gives_all_it_has(sample_bank):
    questions = [q for q in bank.questions(sample_bank) if q["chapter"] == 4]
    assert len(quiz.select(questions, count=100)) == len(questions)


# --- the pages -------------------------------------------------------------------------------------
QUIZ_PAGES = {n: REPO / "chapters" / LESSONS[n][0] / "quiz.md" for n in LESSONS}


@pytest.mark.parametrize("chapter", QUIZ_PAGES)
def test_a_quiz_page_is_a_notebook_with_one_hidden_cell(chapter):
    text = QUIZ_PAGES[chapter].read_text(encoding="utf-8")
    assert is_myst_markdown_notebook(text)
    notebook = jupytext.reads(text, fmt="md:myst")
    assert notebook.cells[0].source.startswith(f"# Chapter {chapter} quiz")
    [cell] = [c for c in notebook.cells if c.cell_type == "code"]
    assert "remove-input" in cell.metadata.get("tags", [])
    assert f"quiz.show({chapter})" in cell.source


@pytest.mark.parametrize("chapter", QUIZ_PAGES)
def test_a_quiz_pages_code_shows_its_chapters_questions(chapter, sample_bank, monkeypatch):
    shown = []
    monkeypatch.setattr(bank, "BANK", sample_bank)
    monkeypatch.setattr("jupyterquiz.dynamic.display.display", shown.append)
    notebook = jupytext.reads(QUIZ_PAGES[chapter].read_text(encoding="utf-8"), fmt="md:myst")
    for cell in notebook.cells:
        if cell.cell_type == "code":
            exec(compile(cell.source, str(QUIZ_PAGES[chapter]), "exec"), {})
    html_part, script = shown
    assert html_part.data.startswith("<div id=")
    assert "Put these in order." in script.data and "Case study: A shop, chapter" in script.data


def test_a_chapter_without_questions_says_so(tmp_path, monkeypatch):
    shown = []
    monkeypatch.setattr("IPython.display.display", shown.append)
    (tmp_path / "chapter-1.yaml").write_text("chapter: 1\nquestions: []\n", encoding="utf-8")
    quiz.show(1, bank=tmp_path)
    [message] = shown
    assert "still being written" in message.data
