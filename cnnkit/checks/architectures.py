"""Checks for lesson 07 (AlexNet, GoogLeNet, ResNet): Exercise 2's hand count, a residual block, an inception block.

The exercise notebook imports this module as ``checks``; the checks live in
:mod:`cnnkit.checks.exercise2_counts` (Exercise 2, counted by hand) and
:mod:`cnnkit.checks.architecture_blocks` (residual and inception blocks) and
are gathered here, with the question of judgment on zero initialisation.
Every reference value comes from a Keras model (the weights its layers really
hold) or from :mod:`cnnkit.architectures`; a failed check names the likely
mistake.
"""
from __future__ import annotations

from cnnkit.checks.architecture_blocks import (  # noqa: F401  (the exercise's names)
    INCEPTION_3A,
    SMALL_INCEPTION,
    check_inception_block,
    check_inception_savings,
    check_residual_block,
)
from cnnkit.checks.exercise2_counts import (  # noqa: F401
    EXERCISE2,
    HAND_COUNT,
    INPUT_SHAPE,
    check_exercise2_layers,
    check_exercise2_totals,
    describe_exercise2,
    exercise2_model,
)
from cnnkit.checks.quiz import Question, check_choice


# --------------------------------------------------------------------------- question of judgment

ZERO_INIT = Question(
    "Every weight and every bias of a small ReLU CNN (convolutions, then dense layers, a softmax output) is "
    "initialised to exactly 0. What happens when it is trained with SGD on CIFAR-10?",
    choices={
        "a": "It trains normally, only more slowly at first",
        "b": "Only the biases of the output layer ever change: the network learns the class frequencies and "
             "nothing else",
        "c": "The gradients explode at the first step",
        "d": "Each filter learns a different feature, as after a random initialisation",
    },
    answer="b",
    why="With zero weights every hidden pre-activation is 0, so every hidden ReLU outputs 0. A weight's gradient "
        "is its input times the gradient arriving at its unit: the output layer's weights see inputs of 0, and "
        "the hidden units receive the output gradient through zero weights (and ReLU's slope 0 at 0). Only the "
        "output biases get a gradient, softmax minus one-hot, so they learn the class frequencies. A random "
        "initialisation (He, Glorot) breaks this symmetry.",
    hints={
        "a": "Follow one hidden unit: pre-activation 0, output 0, and the gradient reaching it passes through the "
             "next layer's weights, which are 0. Slow training would need some nonzero gradient there.",
        "c": "Zero weights give zero activations and zero gradients: there is nothing to blow up.",
        "d": "All filters of a layer start identical and receive identical (here zero) gradients: nothing can "
             "make them differ.",
    },
).relabelled('bcad')  # the answer letters of the course vary


def check_quiz_zero_init(answer) -> None:
    """What happens to a network whose weights all start at zero."""
    check_choice(ZERO_INIT, answer)
