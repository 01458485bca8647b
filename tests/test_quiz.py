"""Multiple-choice checks: right, wrong with the hint for that choice, malformed answers."""
import pytest

from cnnkit.checks import CheckFailed
from cnnkit.checks.quiz import Question, check_choice

Q = Question("2 + 2?", choices={"a": "3", "b": "4", "c": "5"}, answer="b", why="Counting.",
             hints={"a": "One short.", "c": "One over."})


def test_right_answer_passes_with_the_reasoning(capsys):
    check_choice(Q, " B ")
    assert capsys.readouterr().out == "Passed: 'b': 4. Counting.\n"


@pytest.mark.parametrize("answer, message", [
    ("a", "not 'a' (3). One short."), ("c", "One over."), ("d", "'d' is not one of the choices 'a', 'b', 'c'"),
    (2, "as a string"), (None, "your answer is None"),
])
def test_wrong_answers_get_feedback(answer, message):
    with pytest.raises(CheckFailed, match=message.replace("(", r"\(").replace(")", r"\)")):
        check_choice(Q, answer)


def test_a_string_that_claims_equality_is_not_an_answer():
    class Yes(str):
        def __eq__(self, other):
            return True
        __hash__ = str.__hash__
    with pytest.raises(CheckFailed, match="as a string"):
        check_choice(Q, Yes("a"))


def test_questions_are_checked_when_written():
    with pytest.raises(ValueError, match="not one of the choices"):
        Question("?", choices={"a": "x"}, answer="b", why="")
    with pytest.raises(ValueError, match="hints for choices that do not exist"):
        Question("?", choices={"a": "x"}, answer="a", why="", hints={"z": "?"})


def test_relabelling_moves_answer_and_hints_together(capsys):
    moved = Q.relabelled("cab")   # a -> c, b -> a, c -> b
    assert list(moved.choices) == ["a", "b", "c"] and moved.choices["a"] == "4" and moved.answer == "a"
    assert moved.hints == {"c": "One short.", "b": "One over."}
    check_choice(moved, "a")
    with pytest.raises(CheckFailed, match="One short"):
        check_choice(moved, "c")
    with pytest.raises(ValueError, match="each of the letters abc once"):
        Q.relabelled("aab")
