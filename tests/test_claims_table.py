"""docs/claims.md: every section of the tutorial is examined, every row has a verdict, every cited place exists.

The tutorial's outline is written down below (its numbered headings and its two exercises). When
the tutorial's text is at hand, ``CNNKIT_TUTORIAL_TEXT=/path/to/text`` also checks that outline
against the headings found in the text.
"""
import os
import re
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
CLAIMS = ROOT / "docs" / "claims.md"

TUTORIAL_SECTIONS = (
    "1.1", "1.2", "1.3", "1.4", "1.5", "1.6", "Exercise 1",
    "2.1", "2.1.1", "2.2", "2.2.1", "2.2.2", "2.3", "2.3.1", "2.4", "2.5", "2.5.1", "2.5.2", "2.6",
    "2.7", "2.7.1", "2.8", "Exercise 2",
    "3.1", "3.2", "3.3", "3.3.1", "3.3.2", "3.4", "3.4.1", "3.5", "3.5.1",
    "4.1", "4.2", "4.3", "4.4", "4.5", "4.6",
)
VERDICTS = ("holds", "holds with a condition", "wrong on the slide", "advice, not a fact", "not shown yet")
COLUMNS = ["section", "the claim (paraphrased)", "where the kit shows it", "verdict"]

# `notebooks/NN_topic.ipynb` § 2.1.1 "optional heading title"
CITATION = re.compile(r'`(notebooks/[^`]+\.ipynb)`(?:\s*§\s*(\d+(?:\.\d+)*)?\s*(?:"((?:[^"\\]|\\.)+)")?)?')
HEADING_NUMBER = re.compile(r"^\s*(\d+(?:\.\d+)+)\s+[A-Z]")
EXERCISE = re.compile(r"^\s*Exercise\s*-\s*(\d+)")


def _cells(line: str) -> list[str]:
    """The cells of one markdown table row (outer pipes stripped)."""
    return [c.strip() for c in line.strip().strip("|").split("|")]


def claim_rows(text: str) -> list[list[str]]:
    """Every row of every table whose header is the claims table's header; raises on a malformed row."""
    rows, in_table = [], False
    for number, line in enumerate(text.splitlines(), 1):
        if not line.startswith("|"):
            in_table = False
            continue
        cells = _cells(line)
        if cells == COLUMNS:
            in_table = True
            continue
        if not in_table or set(line.replace("|", "").strip()) <= set("-: "):
            continue
        if len(cells) != len(COLUMNS):
            raise ValueError(f"docs/claims.md line {number}: expected {len(COLUMNS)} cells, found "
                             f"{len(cells)} (a '|' inside a cell?): {line[:80]!r}")
        rows.append(cells)
    return rows


def verdict_of(cell: str) -> str | None:
    """The verdict a cell starts with (in bold), or None."""
    match = re.match(r"\*\*([^*]+)\*\*", cell)
    return match.group(1) if match and match.group(1) in VERDICTS else None


def headings(notebook: Path) -> list[str]:
    """The markdown headings of a notebook, without their leading #'s."""
    nb = nbformat.read(notebook, as_version=4)
    return [line.lstrip("#").strip() for cell in nb.cells if cell.cell_type == "markdown"
            for line in cell.source.splitlines() if line.startswith("#")]


def outline_of(tutorial_text: str) -> tuple[str, ...]:
    """Numbered headings ("2.1.1") and exercises ("Exercise 1") of the tutorial's text, in order."""
    found = []
    for line in tutorial_text.splitlines():
        if m := HEADING_NUMBER.match(line):
            found.append(m.group(1))
        elif m := EXERCISE.match(line):
            found.append(f"Exercise {m.group(1)}")
    return tuple(found)


@pytest.fixture(scope="module")
def text() -> str:
    return CLAIMS.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def rows(text) -> list[list[str]]:
    return claim_rows(text)


def test_every_tutorial_section_has_a_row(rows):
    covered = {row[0] for row in rows}
    missing = [s for s in TUTORIAL_SECTIONS if s not in covered]
    assert not missing, f"docs/claims.md has no row for tutorial section(s) {missing}"
    unknown = sorted(covered - set(TUTORIAL_SECTIONS))
    assert not unknown, f"docs/claims.md names sections the tutorial does not have: {unknown}"


def test_every_row_has_an_allowed_verdict(rows):
    bad = [(row[0], row[3][:60]) for row in rows if verdict_of(row[3]) is None]
    assert not bad, f"rows whose verdict is not one of {VERDICTS}: {bad}"


def test_verdicts_other_than_holds_explain_themselves(rows):
    """Every verdict but a plain 'holds' says its condition, correct form, or missing experiment."""
    terse = [row[0] for row in rows if verdict_of(row[3]) != "holds"
             and len(row[3]) - len(f"**{verdict_of(row[3])}**") < 40]
    assert not terse, f"rows with a verdict and no explanation: {terse}"


def test_slips_link_to_where_the_correct_form_is_shown(rows):
    unlinked = [(row[0], row[1][:50]) for row in rows
                if verdict_of(row[3]) == "wrong on the slide" and "](" not in row[3]]
    assert not unlinked, f"'wrong on the slide' rows without a link to the known slips: {unlinked}"


def test_every_cited_notebook_and_section_exists(rows):
    problems, cited = [], 0
    cache: dict[str, list[str]] = {}
    for row in rows:
        where = row[2]
        if where == "not shown":
            assert verdict_of(row[3]) != "holds", f"{row[0]}: 'holds' needs a place where the kit shows it"
            continue
        citations = CITATION.findall(where)
        if not citations:
            problems.append(f"{row[0]}: no notebook cited in {where!r} (write 'not shown' when none)")
        for path, number, title in citations:
            cited += 1
            notebook = ROOT / path
            if not notebook.exists():
                problems.append(f"{row[0]}: {path} does not exist")
                continue
            heads = cache.setdefault(path, headings(notebook))
            if number and not any(re.match(rf"{re.escape(number)}(\s|$)", h) for h in heads):
                problems.append(f"{row[0]}: {path} has no heading numbered {number}")
            title = title.replace('\\"', '"')
            if title and not any(title in h for h in heads):
                problems.append(f"{row[0]}: {path} has no heading {title!r}")
    assert cited, "no citations found: has the citation format changed?"
    assert not problems, "\n".join(problems)


def test_links_to_other_files_resolve(text):
    for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text):
        if "://" not in target:
            assert (CLAIMS.parent / target).exists(), f"docs/claims.md links to missing {target}"


def test_ends_with_the_experiments_still_needed(text):
    tail = text.split("\n## Not shown yet\n", 1)
    assert len(tail) == 2, "docs/claims.md lacks its final section '## Not shown yet'"
    items = re.findall(r"(?m)^\d+\. ", tail[1])
    assert items, "'Not shown yet' lists no experiment; expected a numbered, prioritised list"
    assert "\n## " not in tail[1], "'Not shown yet' must be the last section"


def test_authoring_guide_links_the_claims_page():
    assert "](claims.md)" in (ROOT / "docs" / "authoring.md").read_text(encoding="utf-8")


def test_checks_catch_bad_tables():
    """The parsing the tests rely on rejects what it should."""
    header = "| " + " | ".join(COLUMNS) + " |\n|---|---|---|---|\n"
    with pytest.raises(ValueError, match="expected 4 cells"):
        claim_rows(header + "| 1.1 | a | b | c | d |\n")
    assert claim_rows(header + "| 1.1 | a | not shown | **holds** |\n") == [["1.1", "a", "not shown", "**holds**"]]
    assert verdict_of("**probably true**: ...") is None
    assert verdict_of("holds") is None
    assert outline_of("\n1.1 A title\n 2.7.1 Another\nExercise - 2.\n1 Split the data\n") == (
        "1.1", "2.7.1", "Exercise 2")


@pytest.mark.skipif(not os.environ.get("CNNKIT_TUTORIAL_TEXT"), reason="CNNKIT_TUTORIAL_TEXT not set")
def test_outline_matches_the_tutorial_text():
    found = outline_of(Path(os.environ["CNNKIT_TUTORIAL_TEXT"]).read_text(encoding="utf-8"))
    assert sorted(found) == sorted(TUTORIAL_SECTIONS), (
        f"the tutorial's headings {found} differ from the outline the test checks")
