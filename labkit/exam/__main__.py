"""``python -m labkit.exam``: sit the mock exam in a terminal, or practise one chapter.

Input is read line by line from stdin (so a test can script it) and the clock is a
parameter (so a test can make time run out).
"""
from __future__ import annotations

import argparse
import random
import sys
import time

from labkit.exam import mock

HELP = """\
How to answer:
  one answer            its letter, like B
  several answers       their letters, like A,C or ACD (the question says how many)
  steps in order        their letters in the right order, like CABD
  code                  one letter for each blank, asked blank by blank
  s                     skip: the question comes back at the end (skipped again, it stays unanswered)
  q                     end the exam now and score it
  ?                     this help
An unanswered question scores nothing, as on the exam: a guess costs nothing."""


class EndExam(Exception):
    """The learner quit, time ran out or the input ended: score what was answered."""


def show(item: dict, write) -> None:
    question = item["question"]
    if "case" in item:
        write(f"Case study: {item['case']['title']}\n{item['case']['scenario'].strip()}\n")
    write(question["stem"].strip())
    if "code" in question:
        write("\n" + question["code"].rstrip() + "\n")
        for number, choices in enumerate(item["blanks"], 1):
            write(f"Blank ___{number}___:")
            write("\n".join(f"  {mock.LETTERS[k]}. {text}" for k, text in enumerate(choices)))
    else:
        write("\n".join(f"  {mock.LETTERS[k]}. {text}" for k, text in enumerate(item["choices"])))
    write(mock.instruction(item))


def sit(exam: list[dict], minutes: float, read=input, write=print, clock=time.monotonic) -> dict:
    """Ask every question, skipped ones again at the end; the answers given, by number."""
    deadline = clock() + minutes * 60
    answers: dict[int, tuple] = {}

    def ask(prompt: str, parse):
        """Read until the answer parses; help and bad answers ask again, nothing is lost."""
        while True:
            try:
                text = read(prompt).strip()
            except EOFError:
                raise EndExam("The input ended.") from None
            if clock() >= deadline:
                raise EndExam("Time is up: that answer came too late to count.")
            if text == "?":
                write(HELP)
            elif text.lower() in ("s", "q"):
                return text.lower()
            else:
                try:
                    return parse(text)
                except mock.AnswerError as error:
                    write(f"{error} (? for help)")

    def answer(item: dict):
        if item["question"]["format"] != "code":
            return ask("Answer: ", lambda text: mock.parse(item, text))
        letters = []
        for blank in range(len(item["blanks"])):
            got = ask(f"Blank ___{blank + 1}___: ", lambda text, b=blank: mock.parse_blank(item, b, text))
            if got in ("s", "q"):
                return got
            letters.append(got)
        return tuple(letters)

    rounds = [list(exam), []]  # the exam, then the questions skipped in it
    try:
        for round_number, queue in enumerate(rounds):
            if round_number and queue:
                write(f"\nBack to the {len(queue)} question(s) you skipped.")
            for item in queue:
                left = deadline - clock()
                if left <= 0:
                    raise EndExam("Time is up.")
                write(f"\nQuestion {item['number']} of {len(exam)} - {int(left // 60)}:{int(left % 60):02d} left")
                show(item, write)
                given = answer(item)
                if given == "q":
                    raise EndExam("You ended the exam.")
                if given == "s":
                    if round_number == 0:
                        rounds[1].append(item)
                    continue
                answers[item["number"]] = given
    except EndExam as end:
        write(f"\n{end}")
    return answers


def main(argv=None, read=input, write=print, clock=time.monotonic) -> int:
    parser = argparse.ArgumentParser(prog="python -m labkit.exam", description=
                                     "A timed mock exam drawn from the book's question bank, scored out of 1000.")
    parser.add_argument("--seed", type=int, help="the same seed draws the same exam (default: a new one)")
    parser.add_argument("--count", type=int, default=50, help="how many questions (default 50)")
    parser.add_argument("--minutes", type=float, default=100, help="time allowed (default 100)")
    parser.add_argument("--chapter", type=int, choices=[1, 2, 3, 4], help="practise one chapter only")
    args = parser.parse_args(argv)
    seed = args.seed if args.seed is not None else random.randrange(10_000)
    exam = mock.draw(seed, args.count, chapter=args.chapter)
    if not exam:
        write("The question bank has no questions for this exam yet.")
        return 1
    write(f"Mock exam: {len(exam)} questions, {args.minutes:g} minutes, seed {seed} "
          f"(--seed {seed} draws this exam again). Type ? for help.")
    answers = sit(exam, args.minutes, read, write, clock)
    write("\n" + mock.report(mock.score(exam, answers)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
