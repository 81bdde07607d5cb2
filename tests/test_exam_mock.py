"""The mock exam: drawn by domain weight and the same for a seed, scored all or nothing out of
1000, and sat in a terminal through stdin (``python -m labkit.exam``), on a bank of its own."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import jupytext
import pytest

from labkit.exam import bank, mock
from labkit.exam.__main__ import main, sit
from test_exam_quiz import write_sample_bank

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def sample_bank(tmp_path):
    return write_sample_bank(tmp_path / "bank")


def right_answer(item) -> str:
    return "".join(item["answer"])


def wrong_answer(item) -> str:
    """An answer that parses but is wrong."""
    kind = item["question"]["format"]
    if kind == "code":
        return "".join("A" if letter != "A" else "B" for letter in item["answer"])
    if kind == "order":
        return "".join(reversed(item["answer"]))
    if kind == "single":
        return next(letter for letter in mock.LETTERS[:len(item["choices"])] if letter not in item["answer"])
    # multiple: keep the count, swap one right letter for a wrong one
    wrong = next(letter for letter in mock.LETTERS[:len(item["choices"])] if letter not in item["answer"])
    return "".join(item["answer"][1:]) + wrong


# --- drawing ----------------------------------------------------------------------------------------
def test_quotas_follow_the_midpoint_weights_by_largest_remainder():
    assert mock.quotas(50) == {1: 14, 2: 12, 3: 20, 4: 4}
    for count in (1, 7, 13, 50, 61):
        assert sum(mock.quotas(count).values()) == count


def test_the_same_seed_draws_the_same_exam(sample_bank):
    first = mock.draw(7, bank=sample_bank)
    assert first == mock.draw(7, bank=sample_bank)
    assert [i["question"]["id"] for i in first] != [i["question"]["id"] for i in mock.draw(8, bank=sample_bank)]
    assert [i["number"] for i in first] == list(range(1, len(first) + 1))


@pytest.mark.parametrize("seed", range(5))
def test_an_exam_has_each_domains_share_and_keeps_a_case_together(sample_bank, seed):
    exam = mock.draw(seed, count=50, bank=sample_bank)
    domains = [item["question"]["chapter"] for item in exam]
    assert {d: domains.count(d) for d in bank.WEIGHTS} == mock.quotas(50)
    assert len({item["question"]["id"] for item in exam}) == len(exam)
    positions: dict[str, list[int]] = {}
    for position, item in enumerate(exam):
        if "case" in item:
            positions.setdefault(item["case"]["id"], []).append(position)
    for case, where in positions.items():
        assert len(where) == 3, f"case {case} split: only {len(where)} of its questions drawn"
        assert where == list(range(where[0], where[0] + 3)), f"case {case} is not kept together"


def test_practising_one_chapter_draws_from_it_alone(sample_bank):
    exam = mock.draw(1, count=10, bank=sample_bank, chapter=2)
    assert len(exam) == 10 and {item["question"]["chapter"] for item in exam} == {2}


# --- answers and scoring ------------------------------------------------------------------------------
def item_of(sample_bank, kind):
    return next(i for i in mock.draw(3, bank=sample_bank) if i["question"]["format"] == kind and "case" not in i)


@pytest.mark.parametrize("kind, text, complaint", [
    ("single", "AB", "one answer"),
    ("single", "Z", "Z is not one of the options: choose from A to C"),
    ("single", "1", "Answer with letters"),
    ("multiple", "A", "Choose 2 options; you gave 1"),
    ("multiple", "AA", "each letter once"),
    ("order", "ABC", "Put all 4 steps in order"),
    ("code", "A", "one letter per blank, 2 in all"),
    ("code", "AD", "D is not one of the options: choose from A to C"),
])
def test_a_bad_answer_is_refused_with_a_reason(sample_bank, kind, text, complaint):
    with pytest.raises(mock.AnswerError, match=complaint):
        mock.parse(item_of(sample_bank, kind), text)


def test_answers_are_read_in_any_of_their_spellings(sample_bank):
    multiple = item_of(sample_bank, "multiple")
    first, second = multiple["answer"]
    for text in (f"{first},{second}", f"{second}{first}", f" {first.lower()} , {second} "):
        assert mock.parse(multiple, text) == multiple["answer"]
    code = item_of(sample_bank, "code")
    assert mock.parse(code, list(code["answer"])) == mock.parse(code, ",".join(code["answer"])) == code["answer"]


def test_every_format_is_all_or_nothing(sample_bank):
    exam = [item_of(sample_bank, kind) for kind in ("single", "multiple", "order", "code")]
    for number, item in enumerate(exam, 1):
        item["number"] = number
    assert mock.score(exam, {i["number"]: right_answer(i) for i in exam})["right"] == 4
    multiple, order, code = exam[1], exam[2], exam[3]
    half = {2: multiple["answer"][0] + wrong_answer(multiple)[-1],  # one right, one wrong
            3: wrong_answer(order),
            4: code["answer"][0] + ("A" if code["answer"][1] != "A" else "B")}  # first blank right only
    result = mock.score(exam, {1: right_answer(exam[0]), **half})
    assert result["right"] == 1 and [m["number"] for m in result["missed"]] == [2, 3, 4]


def test_the_score_is_out_of_1000_with_700_to_pass(sample_bank):
    exam = mock.draw(5, count=50, bank=sample_bank)
    answers = {item["number"]: right_answer(item) for item in exam[:35]}
    result = mock.score(exam, answers)
    assert (result["right"], result["total"], result["score"], result["passed"]) == (35, 50, 700, True)
    del answers[35]
    result = mock.score(exam, answers)
    assert (result["score"], result["passed"]) == (680, False)
    assert mock.score(exam[:3], {1: right_answer(exam[0])})["score"] == 333  # round(1000 / 3)


def test_the_report_gives_domains_and_a_lesson_for_every_miss(sample_bank):
    exam = mock.draw(2, count=50, bank=sample_bank)
    answers = {item["number"]: right_answer(item) for item in exam if item["question"]["chapter"] != 4}
    answers[exam[0]["number"]] = "ZZ"  # unreadable: scores nothing, and the report says why
    result = mock.score(exam, answers)
    text = mock.report(result)
    assert f"Score: {result['score']} of 1000" in text and "FAIL" not in text and "PASS" in text
    assert "4. Implement responsible machine learning: 0/4 (0%)" in text
    for missed in result["missed"]:
        item = exam[missed["number"] - 1]
        assert f"Question {missed['number']} ({item['question']['id']}, " in text
        assert missed["lesson"] == item["question"]["lesson"] + ".html"
        assert missed["lesson"] in text
    assert "not scored: " in text and text.count("not answered") == 4
    assert "not a plain percentage" in " ".join(text.split()) and f"See {mock.SCORING_PAGE}" in text


def test_an_empty_exam_reports_without_dividing_by_zero():
    result = mock.score([], {})
    assert (result["score"], result["passed"]) == (0, False)
    assert "no questions" in mock.report(result)


# --- the terminal ----------------------------------------------------------------------------------
class Script:
    """Answers typed in turn, and a clock that moves ``step`` seconds per line read."""

    def __init__(self, lines, step=1.0):
        self.lines, self.step, self.now, self.prompts = list(lines), step, 0.0, []

    def read(self, prompt=""):
        self.prompts.append(prompt)
        if not self.lines:
            raise EOFError
        self.now += self.step
        return self.lines.pop(0)

    def clock(self):
        return self.now


def sit_scripted(exam, lines, minutes=100, step=1.0):
    script, written = Script(lines, step), []
    answers = sit(exam, minutes, read=script.read, write=written.append, clock=script.clock)
    return answers, "\n".join(written), script


def test_a_bad_answer_is_asked_again_and_nothing_is_lost(sample_bank):
    exam = mock.draw(4, count=3, bank=sample_bank, chapter=1)
    lines = []
    for item in exam:
        if item["question"]["format"] == "code":
            lines += ["ZZ", item["answer"][0], "?", item["answer"][1]]  # blank 1 kept while blank 2 is re-asked
        else:
            lines += ["Z", "?", right_answer(item)]
    answers, output, _ = sit_scripted(exam, lines)
    assert answers == {item["number"]: item["answer"] for item in exam}
    assert "is not one of the options" in output and "How to answer:" in output
    assert "Question 1 of 3 - 100:00 left" in output


def test_a_skipped_question_comes_back_at_the_end(sample_bank):
    exam = [i for i in mock.draw(4, count=20, bank=sample_bank, chapter=1) if i["question"]["format"] != "code"][:3]
    first, second, third = exam
    answers, output, _ = sit_scripted(exam, ["s", right_answer(second), "s", right_answer(first), "s"])
    assert answers == {second["number"]: second["answer"], first["number"]: first["answer"]}
    assert "Back to the 2 question(s) you skipped." in output
    assert output.index(f"Question {first['number']} of 3") < output.index(f"Question {second['number']} of 3")
    assert output.count(f"Question {first['number']} of 3") == 2 and output.count(f"Question {third['number']} of 3") == 2


def test_quitting_ends_the_exam_and_keeps_what_was_answered(sample_bank):
    exam = [i for i in mock.draw(4, count=20, bank=sample_bank, chapter=3) if i["question"]["format"] != "code"]
    answers, output, script = sit_scripted(exam, [right_answer(exam[0]), "q", "A", "A"])
    assert answers == {exam[0]["number"]: exam[0]["answer"]} and "You ended the exam." in output
    assert script.lines == ["A", "A"]


def test_the_exam_ends_when_time_runs_out(sample_bank):
    exam = [i for i in mock.draw(4, count=20, bank=sample_bank, chapter=2) if i["question"]["format"] != "code"]
    # A minute per answer on a two-minute exam: the first counts, the second comes too late.
    answers, output, _ = sit_scripted(exam, [right_answer(i) for i in exam], minutes=2, step=60)
    assert answers == {exam[0]["number"]: exam[0]["answer"]}
    assert f"Question {exam[1]['number']} of {len(exam)} - 1:00 left" in output and "Time is up" in output
    assert f"Question {exam[2]['number']} of" not in output


def test_the_command_scores_and_reports(sample_bank, monkeypatch):
    monkeypatch.setattr(bank, "BANK", sample_bank)
    script, written = Script(["q"]), []
    assert main(["--seed", "3", "--count", "8", "--minutes", "20"], script.read, written.append, script.clock) == 0
    output = "\n".join(written)
    assert "Mock exam: 8 questions, 20 minutes, seed 3" in output
    assert "Score: 0 of 1000 (0 of 8 right). Pass mark 700: FAIL." in output
    assert output.count("not answered") == 8


def test_python_m_labkit_exam_reads_stdin(sample_bank):
    exam = mock.draw(11, count=4, bank=sample_bank, chapter=4)
    typed = "\n".join(",".join(item["answer"]) if item["question"]["format"] != "code" else "\n".join(item["answer"])
                      for item in exam) + "\n"
    done = subprocess.run([sys.executable, "-m", "labkit.exam", "--seed", "11", "--count", "4", "--chapter", "4"],
                          input=typed, capture_output=True, text=True, cwd=REPO, timeout=120,
                          env={**__import__("os").environ, "LABKIT_EXAM_BANK": str(sample_bank)})
    assert done.returncode == 0, done.stderr
    assert "Score: 1000 of 1000 (4 of 4 right). Pass mark 700: PASS." in done.stdout


# --- the notebook ----------------------------------------------------------------------------------
def test_the_mock_exam_page_draws_shows_and_scores(sample_bank, monkeypatch, capsys):
    monkeypatch.setattr(bank, "BANK", sample_bank)
    shown = []
    monkeypatch.setattr("IPython.display.display", shown.append)
    page = REPO / "chapters" / "06-practice" / "mock-exam.md"
    notebook = jupytext.reads(page.read_text(encoding="utf-8"), fmt="md:myst")
    cells = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert any("parameters" in cell.metadata.get("tags", []) for cell in cells)
    namespace: dict = {}
    for cell in cells:
        exec(compile(cell.source, str(page), "exec"), namespace)
    assert "answers" in namespace and namespace["answers"], "the answers cell holds an example"
    assert any("<b>A</b>." in getattr(item, "data", "") for item in shown)
    assert "Pass mark 700" in capsys.readouterr().out
