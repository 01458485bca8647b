"""``python -m cnnkit.exercises``: the instructor's command line (build, release, grade, merge).

The machinery lives in :mod:`cnnkit.instructor`; this module keeps the
command's historical name and re-exports the functions notebooks and scripts use.
"""
from __future__ import annotations

import sys

from cnnkit.instructor.cli import main
from cnnkit.instructor.grade import CheckResult, Grade, Grader, Options, grade_many, shard
from cnnkit.instructor.notebooks import (
    NotANotebookError, build_all, build_exercise, dumps, read_notebook, strip_solution,
)
from cnnkit.instructor.report import format_table

__all__ = ["main", "CheckResult", "Grade", "Grader", "Options", "grade_many", "shard", "NotANotebookError",
           "build_all", "build_exercise", "dumps", "read_notebook", "strip_solution", "format_table"]

if __name__ == "__main__":
    sys.exit(main())
