"""Practice for the exam: the question bank, the chapter quizzes and the mock exam.

The bank is data, one YAML file per chapter in ``bank/`` (its format: ``schema.json``, read
with :func:`bank.load`). Each quiz page and ``python -m labkit.exam`` draw from it, so a
question is written once.
"""
