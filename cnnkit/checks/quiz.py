"""Questions of judgment: multiple-choice checks whose feedback explains the reasoning.

A question is data; a topic module of :mod:`cnnkit.checks` defines its own and a
check function per question::

    PADDING = Question(
        "Which padding keeps a 32x32 input at 32x32 under a 5x5 kernel, stride 1?",
        choices={"a": "padding 0", "b": "padding 2", "c": "padding 5"},
        answer="b",
        why="The output is (n + 2p - f) / s + 1 = 32 exactly when 2p = f - 1 = 4.",
        hints={"a": "Without padding a 5-wide kernel fits 32 - 5 + 1 = 28 times."},
    )

    def check_quiz_padding(answer):
        check_choice(PADDING, answer)

In the exercise the student sets ``quiz_padding = "b"`` and runs the check. A
wrong choice gets the hint written for that choice (what that choice overlooks);
the right one gets the full reasoning. The grade ids of these checks start with
``quiz_``.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from cnnkit.checks import fail, passed, unanswered


@dataclass(frozen=True)
class Question:
    prompt: str
    choices: dict
    answer: str
    why: str
    hints: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.answer not in self.choices:
            raise ValueError(f"answer {self.answer!r} is not one of the choices {sorted(self.choices)}")
        unknown = set(self.hints) - set(self.choices)
        if unknown:
            raise ValueError(f"hints for choices that do not exist: {sorted(unknown)}")

    def relabelled(self, letters: str) -> "Question":
        """The same question with its choices listed under new letters.

        ``letters[i]`` is the new letter of the i-th choice as written; choices are
        then listed in alphabetical order. Questions are written with the right
        answer wherever it reads best, then relabelled so that the answer letters of
        a notebook do not follow a pattern a student could guess.
        """
        old = list(self.choices)
        if sorted(letters) != sorted(old) or len(letters) != len(old):
            raise ValueError(f"relabelling {letters!r} must use each of the letters {''.join(sorted(old))} once")
        new = dict(zip(old, letters))
        choices = {new[k]: self.choices[k] for k in sorted(old, key=lambda k: new[k])}
        return Question(self.prompt, choices, new[self.answer], self.why,
                        {new[k]: v for k, v in self.hints.items()})


def check_choice(question: Question, answer) -> None:
    """Pass when ``answer`` names the right choice (a letter, any case, surrounding spaces ignored)."""
    unanswered(answer, "your answer")
    letters = ", ".join(repr(k) for k in question.choices)
    if type(answer) is not str:
        fail(f"answer with one of the letters {letters} as a string, e.g. {next(iter(question.choices))!r}; "
             f"got {answer!r}")
    choice = answer.strip().lower()
    if choice not in question.choices:
        fail(f"{answer!r} is not one of the choices {letters}")
    if choice != question.answer:
        hint = question.hints.get(choice, "Reread the question: that choice leaves something out.")
        fail(f"not {choice!r} ({question.choices[choice]}). {hint}")
    passed(f"{choice!r}: {question.choices[choice]}. {question.why}")
