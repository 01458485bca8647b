"""What each trick of a capstone recipe is worth, as ``benchmarks/capstone.py --ablate`` measured it.

The benchmark trains a recipe, then the same recipe with one trick removed at a time
(:data:`cnnkit.recipes.ABLATIONS`), and records test accuracy and training time per
variant. :func:`record_path` is where a recorded run is kept inside the package, so that
lesson 09 can show it wherever the kit is installed; :func:`measured` reads it back and
:func:`markdown` turns the rows into a table.

A whole ablation of the good recipe is eight trainings, hours on two cores, so it may be
recorded in parts (``--tricks``): :func:`merge` joins the parts into one report, and
:func:`with_step_times` adds the step-time ratios that ``benchmarks/speed_ratio.py --ablate``
measured in turns (training times of runs made one after the other carry the machine's drift).
"""
from __future__ import annotations

from pathlib import Path

from cnnkit import records
from cnnkit.recipes import get_recipe

__all__ = ["record_path", "measured", "merge", "with_step_times", "markdown"]

_SHARED = ("recipe", "epochs", "dataset", "n_train", "n_test", "fast")  # what the parts of one ablation share
_SAME_MACHINE = ("cpu", "cpu_count", "bf16_hardware", "tensorflow", "keras")
_ROW_KEYS = {"variant", "changes", "test_accuracy", "train_seconds", "precision", "reused",
             "accuracy_ratio", "time_ratio"}


def record_path(recipe="quick") -> Path:
    """``cnnkit/results/ablation_<recipe>.json``: where a recorded ablation of ``recipe`` is kept."""
    return records.path(f"ablation_{get_recipe(recipe).name}")


def measured(recipe="quick") -> dict:
    """The recorded ablation report of ``recipe``: ``rows`` (the full recipe first), ``machine``, ``epochs``...

    Raises ``FileNotFoundError`` naming the command that records one, and ``ValueError``
    when the file is not such a report.
    """
    name = get_recipe(recipe).name
    path = record_path(name)
    report = records.load(f"ablation_{name}", keys=("rows",), command=(
        f"python benchmarks/capstone.py --ablate --recipe {name} --json {path}"))
    rows = report["rows"]
    if not isinstance(rows, list) or not rows or not all(isinstance(r, dict) for r in rows):
        raise ValueError(f"{path} has no list of rows; expected the JSON that benchmarks/capstone.py --ablate writes")
    missing = sorted(_ROW_KEYS - set(rows[0]))
    if missing or rows[0]["variant"] != "full":
        raise ValueError(f"{path}: the first row must be the full recipe with keys {sorted(_ROW_KEYS)}; "
                         f"got variant {rows[0].get('variant')!r}, missing {missing}")
    return report


def merge(parts) -> dict:
    """One ablation report from ``parts``: reports of ``capstone.py --ablate --tricks ...`` on one recipe.

    Every part trains the full recipe too, so the parts must agree on what makes rows
    comparable: the recipe, epochs, dataset and image counts, the CPU and library versions,
    and the full recipe's test accuracy (a seeded run reproduces it). A variant may come from
    one part only. The rows come out in :data:`cnnkit.recipes.ABLATIONS` order, the full
    recipe (from the first part) first; each keeps its ``time_ratio`` to the full run *of its
    own part* and gains ``part``, its part's index in the report's ``parts`` list.
    Raises ``ValueError`` naming the first disagreement.
    """
    from cnnkit.recipes import ABLATIONS

    parts = list(parts)
    if not parts:
        raise ValueError("merge needs at least one ablation report, got none")
    first = parts[0]
    rows = {}
    for index, part in enumerate(parts):
        if not isinstance(part, dict) or not isinstance(part.get("rows"), list) or not part["rows"] \
                or part["rows"][0].get("variant") != "full":
            raise ValueError(f"part {index + 1} is not an ablation report with the full recipe first")
        for key in _SHARED:
            if part.get(key) != first.get(key):
                raise ValueError(f"part {index + 1} has {key} {part.get(key)!r}, part 1 has {first.get(key)!r}: "
                                 "the parts of one ablation must train the same recipe on the same data")
        for key in _SAME_MACHINE:
            if part["machine"].get(key) != first["machine"].get(key):
                raise ValueError(f"part {index + 1} ran with {key} {part['machine'].get(key)!r}, part 1 with "
                                 f"{first['machine'].get(key)!r}: the parts must come from one kind of machine")
        full, reference = part["rows"][0]["test_accuracy"], first["rows"][0]["test_accuracy"]
        if abs(full - reference) > 1e-9:
            raise ValueError(f"part {index + 1}'s full recipe scored {full:.4%}, part 1's {reference:.4%}: "
                             "the same seeded training should reproduce it; record the ablation in one run")
        for row in part["rows"][1 if index else 0:]:
            if row["variant"] in rows:
                raise ValueError(f"variant {row['variant']!r} is in part {rows[row['variant']]['part'] + 1} "
                                 f"and in part {index + 1}; keep it in one")
            rows[row["variant"]] = {**row, "part": index}
    order = ["full", *(f"no {trick}" for trick in ABLATIONS)]
    merged = {key: first[key] for key in _SHARED}
    merged.update(
        rows=sorted(rows.values(), key=lambda r: order.index(r["variant"]) if r["variant"] in order else len(order)),
        machine=first["machine"], finished=max(part["finished"] for part in parts),
        parts=[{"finished": part["finished"], "full_train_seconds": part["rows"][0]["train_seconds"],
                "variants": [row["variant"] for row in part["rows"]]} for part in parts])
    return merged


def with_step_times(report: dict, speed: dict) -> dict:
    """``report`` with ``step_time_ratio`` ({"median", "range"}) on each row that ``speed`` timed.

    ``speed`` is the JSON of ``benchmarks/speed_ratio.py --ablate RECIPE`` for the same recipe:
    each variant's training steps timed in turns against the full recipe's. A row whose
    training was reused from another variant gets that variant's ratio. Raises ``ValueError``
    when ``speed`` times another recipe or another kind of CPU.
    """
    recipe = report["recipe"]["name"]
    if not isinstance(speed, dict) or speed.get("ablate") != recipe or not isinstance(speed.get("models"), dict):
        raise ValueError(f"expected the JSON of speed_ratio.py --ablate {recipe}, got one for "
                         f"{speed.get('ablate') if isinstance(speed, dict) else type(speed).__name__!r}")
    if speed.get("machine", {}).get("cpu") != report["machine"]["cpu"]:
        raise ValueError(f"the step times come from a {speed.get('machine', {}).get('cpu')!r}, the ablation from a "
                         f"{report['machine']['cpu']!r}: time both on one kind of machine")
    rows = []
    for row in report["rows"]:
        timed = speed["models"].get(row["reused"] or row["variant"])
        rows.append({**row, "step_time_ratio": None if timed is None else
                     {"median": timed["ratio_median"], "range": list(timed["ratio_range"])}})
    return {**report, "rows": rows, "step_times": {"rounds": speed.get("rounds"), "finished": speed.get("finished"),
                                                   "seconds_per_turn": speed.get("seconds_per_turn")}}


def markdown(rows, title: str) -> str:
    """The rows of an ablation (the full recipe first) as a Markdown table under ``### title``.

    Time is the training time of each run and its ratio to the full recipe's; when the rows
    carry ``step_time_ratio`` (:func:`with_step_times`) the table gives that instead, the
    step-time ratio measured in turns, which the machine's drift does not distort. Rows of a
    merged report (:func:`merge`) say in their note which run trained them.
    """
    def ratio(value):
        return "-" if value is None else f"{value:.3f}"

    def step(value):
        return "-" if value is None else f"{value['median']:.2f} [{value['range'][0]:.2f}, {value['range'][1]:.2f}]"

    turns = any("step_time_ratio" in row for row in rows)
    runs = len({row.get("part", 0) for row in rows}) > 1
    time_columns = ("step time / full, in turns: median [range] |", "---|") if turns else (
        "train s | time / full |", "---:|---:|")
    lines = [f"### {title}", "",
             f"| variant | changed fields | test accuracy | vs full (points) | accuracy / full | {time_columns[0]} "
             "precision | note |",
             f"|---|---|---:|---:|---:|{time_columns[1]}---|---|"]
    full = rows[0]["test_accuracy"]
    for row in rows:
        changes = ", ".join(f"`{k}={v}`" for k, v in row["changes"].items()) or "-"
        notes = [f"trained once with {row['reused']!r}"] if row["reused"] else []
        if runs:
            notes.append(f"run {row.get('part', 0) + 1}")
        timing = (f"{step(row.get('step_time_ratio'))}" if turns
                  else f"{row['train_seconds']:.1f} | {ratio(row['time_ratio'])}")
        lines.append(f"| {row['variant']} | {changes} | {row['test_accuracy']:.2%} | "
                     f"{100 * (row['test_accuracy'] - full):+.2f} | {ratio(row['accuracy_ratio'])} | {timing} | "
                     f"{row['precision']} | {'; '.join(notes)} |")
    return "\n".join(lines) + "\n"
