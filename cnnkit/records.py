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

__all__ = ["RESULTS", "path", "load"]

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
