"""Benchmark records that the lessons show, kept inside the package.

A lesson cannot re-run an experiment of an hour (the ablation of a capstone recipe, a grid
of learning rates with three seeds each), so the script under ``benchmarks/`` that ran it
writes its record here, ``cnnkit/results/<name>.json``, and the lesson reads it back with
:func:`load` wherever the kit is installed (the files ship in the wheel). Each record says
when and on which CPU it was made.
"""
from __future__ import annotations

import json
from pathlib import Path

__all__ = ["RESULTS", "path", "load", "by_rate", "histories", "curves"]

RESULTS = Path(__file__).resolve().parent / "results"


def path(name: str) -> Path:
    """``cnnkit/results/<name>.json``: where the record ``name`` is kept."""
    if not isinstance(name, str) or not name or "/" in name or "\\" in name or name.startswith("."):
        raise ValueError(f"a record name is a plain file stem such as 'optimizer_rates', got {name!r}")
    return RESULTS / f"{name}.json"


def load(name: str, *, command: str, keys=()) -> dict:
    """The record ``name`` as a dict, checked to hold ``keys``.

    Raises ``FileNotFoundError`` naming ``command``, the one that records it, and
    ``ValueError`` when the file is not a JSON object with those keys.
    """
    where = path(name)
    if not where.is_file():
        raise FileNotFoundError(f"no record {name!r} at {where}; make it with `{command}`")
    try:
        record = json.loads(where.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{where} is not a JSON record: {err}") from None
    if not isinstance(record, dict):
        raise ValueError(f"{where} holds a JSON {type(record).__name__}, expected an object; remake it with `{command}`")
    missing = [key for key in keys if key not in record]
    if missing:
        raise ValueError(f"{where} lacks {missing}; remake it with `{command}`")
    return record


def by_rate(record: dict, field: str, *, key: str) -> dict:
    """One field of a record's runs, grouped: ``{run[key]: {learning rate: [run[field] of each seed]}}``.

    ``record["runs"]`` is a list of dicts, each with ``key`` (the setting it ran: an optimiser, a
    network), ``"learning_rate"`` and ``field``, and usually ``"seed"``. Settings keep the order in
    which they first appear among the lowest seed's runs, rates are sorted, and each list follows
    the seeds (a run without one counts as seed 0). Raises ``ValueError`` naming a run that lacks
    ``key``, the rate or ``field``.
    """
    grouped: dict = {}
    for j, run in enumerate(sorted(record.get("runs", []), key=lambda r: r.get("seed", 0))):
        missing = [name for name in (key, "learning_rate", field) if name not in run]
        if missing:
            raise ValueError(f"run {j} of the record lacks {missing}; it has {sorted(run)}")
        grouped.setdefault(run[key], {}).setdefault(float(run["learning_rate"]), []).append(run[field])
    return {setting: dict(sorted(rates.items())) for setting, rates in grouped.items()}


def histories(record: dict, setting, rate: float, *, key: str, fields: dict) -> list[dict]:
    """The runs of one ``setting`` at one ``rate`` as training histories, one dict per seed (in seed order).

    ``fields`` maps a history name to the record's field, e.g. ``{"loss": "train_loss"}``. A field
    that holds a list (a curve, one value per epoch) is taken as it is; a number (the value after
    the last epoch) becomes a one-entry list. So the recorded runs read like those of
    :func:`cnnkit.experiments.compare_seeds`, and :func:`cnnkit.experiments.spread` takes them.
    Raises ``KeyError`` naming the setting or rate the record does not hold.
    """
    grouped = {name: by_rate(record, field, key=key) for name, field in fields.items()}
    columns = {}
    for name, by_setting in grouped.items():
        if setting not in by_setting:
            raise KeyError(f"the record has no runs of {key} {setting!r}; it has {list(by_setting)}")
        if float(rate) not in by_setting[setting]:
            raise KeyError(f"the record has no runs of {key} {setting!r} at rate {rate!r}; "
                           f"it has {list(by_setting[setting])}")
        columns[name] = [list(v) if isinstance(v, list) else [v] for v in by_setting[setting][float(rate)]]
    return [dict(zip(columns, values)) for values in zip(*columns.values())]


def curves(record: dict, key: str, **match) -> dict:
    """The recorded training curves grouped by ``run[key]``: ``{setting: [history of each seed]}``.

    ``record["runs"]`` is a list of dicts, each with ``key``, ``"history"`` (one list per metric,
    one value per epoch) and usually ``"seed"`` and ``"seconds"``. Only the runs whose fields equal
    ``match`` are kept (``experiment="depth"``, say). Each history is the run's own, plus its
    ``"seconds"`` where it has them, so the result reads like that of
    :func:`cnnkit.experiments.compare_seeds`. Settings keep the order in which they first appear
    among the lowest seed's runs; each list follows the seeds. Raises ``ValueError`` naming a run
    that lacks ``key`` or its history, and ``KeyError`` when no run matches.
    """
    grouped: dict = {}
    for j, run in enumerate(sorted(record.get("runs", []), key=lambda r: r.get("seed", 0))):
        if any(run.get(field, object()) != value for field, value in match.items()):
            continue
        missing = [name for name in (key, "history") if name not in run]
        if missing or not isinstance(run.get("history"), dict):
            raise ValueError(f"run {j} of the record lacks {missing or ['a history dict']}; it has {sorted(run)}")
        extra = {"seconds": run["seconds"]} if "seconds" in run else {}
        grouped.setdefault(run[key], []).append({**run["history"], **extra})
    if not grouped:
        raise KeyError(f"the record has no runs with {match}" if match else "the record has no runs")
    return grouped
