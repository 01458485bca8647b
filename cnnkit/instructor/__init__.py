"""Instructor tools: build exercise notebooks from solutions, release the student bundle, grade submissions.

Nothing here is imported by the lessons. ``python -m cnnkit.exercises`` is the
command line (:mod:`cnnkit.instructor.cli`).
"""
