"""The solutions are valid nbgrader source notebooks: nbgrader's own tools read them and blank them as cnnkit does."""
from pathlib import Path

import nbformat
import pytest
from nbgrader.nbgraderformat import MetadataValidator
from nbgrader.preprocessors import ClearSolutions

ROOT = Path(__file__).resolve().parent.parent
SOLUTIONS = sorted((ROOT / "solutions").glob("*.ipynb"))


@pytest.mark.parametrize("solution", SOLUTIONS, ids=[p.stem for p in SOLUTIONS])
def test_nbgrader_validates_and_blanks_the_solution_like_the_kit(solution):
    nb = nbformat.read(solution, as_version=4)
    MetadataValidator().validate_nb(nb)  # schema 3, unique grade ids, points on graded cells
    blanked, _ = ClearSolutions(code_stub={"python": "raise NotImplementedError()"},
                                enforce_metadata=True).preprocess(nb, {})
    exercise = nbformat.read(ROOT / "exercises" / solution.name, as_version=4)
    assert [c.source for c in blanked.cells] == [c.source for c in exercise.cells]
    graded = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade")]
    assert graded and all(c.metadata["nbgrader"]["points"] > 0 for c in graded)
