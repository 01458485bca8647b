"""What each trick of a capstone recipe is worth, as ``benchmarks/capstone.py --ablate`` measured it.

The benchmark trains a recipe, then the same recipe with one trick removed at a time
(:data:`cnnkit.recipes.ABLATIONS`), and records test accuracy and training time per
variant. :func:`record_path` is where a recorded run is kept inside the package, so that
lesson 09 can show it wherever the kit is installed; :func:`measured` reads it back and
:func:`markdown` turns the rows into a table.
"""
from __future__ import annotations

import json
from pathlib import Path

from cnnkit.recipes import get_recipe

__all__ = ["RESULTS", "record_path", "measured", "markdown"]

RESULTS = Path(__file__).resolve().parent / "results"
_ROW_KEYS = {"variant", "changes", "test_accuracy", "train_seconds", "precision", "reused",
             "accuracy_ratio", "time_ratio"}


def record_path(recipe="quick") -> Path:
    """``cnnkit/results/ablation_<recipe>.json``: where a recorded ablation of ``recipe`` is kept."""
    return RESULTS / f"ablation_{get_recipe(recipe).name}.json"


def measured(recipe="quick") -> dict:
    """The recorded ablation report of ``recipe``: ``rows`` (the full recipe first), ``machine``, ``epochs``...

    Raises ``FileNotFoundError`` naming the command that records one, and ``ValueError``
    when the file is not such a report.
    """
    path = record_path(recipe)
    if not path.is_file():
        raise FileNotFoundError(
            f"no recorded ablation of the {get_recipe(recipe).name!r} recipe at {path}; record one with "
            f"`python benchmarks/capstone.py --ablate --recipe {get_recipe(recipe).name} --json {path}`")
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{path} is not a JSON ablation report: {err}") from None
    rows = report.get("rows") if isinstance(report, dict) else None
    if not isinstance(rows, list) or not rows or not all(isinstance(r, dict) for r in rows):
        raise ValueError(f"{path} has no list of rows; expected the JSON that benchmarks/capstone.py --ablate writes")
    missing = sorted(_ROW_KEYS - set(rows[0]))
    if missing or rows[0]["variant"] != "full":
        raise ValueError(f"{path}: the first row must be the full recipe with keys {sorted(_ROW_KEYS)}; "
                         f"got variant {rows[0].get('variant')!r}, missing {missing}")
    return report


def markdown(rows, title: str) -> str:
    """The rows of an ablation (the full recipe first) as a Markdown table under ``### title``."""
    def ratio(value):
        return "-" if value is None else f"{value:.3f}"

    lines = [f"### {title}", "",
             "| variant | changed fields | test accuracy | vs full (points) | accuracy / full | train s | time / full | precision | note |",
             "|---|---|---:|---:|---:|---:|---:|---|---|"]
    full = rows[0]["test_accuracy"]
    for row in rows:
        changes = ", ".join(f"`{k}={v}`" for k, v in row["changes"].items()) or "-"
        note = f"trained once with {row['reused']!r}" if row["reused"] else ""
        lines.append(f"| {row['variant']} | {changes} | {row['test_accuracy']:.2%} | "
                     f"{100 * (row['test_accuracy'] - full):+.2f} | {ratio(row['accuracy_ratio'])} | "
                     f"{row['train_seconds']:.1f} | {ratio(row['time_ratio'])} | {row['precision']} | {note} |")
    return "\n".join(lines) + "\n"
