"""The grading probe: runs in a student's kernel, calls the answers on the grader's inputs, writes plain results.

When a submission is graded, each check cell of the exercise is replaced by::

    import cnnkit.checks.probe as _cnnkit_probe
    _cnnkit_probe.collect(3, globals(), "<the grader's plan, base64 JSON>")

The plan lists the answers the check reads (by name) and the calls it makes
(answer name, arguments, the key the grader will look the result up by). The
probe computes nothing of the check itself: no expected value exists in the
kernel. It writes ``$CNNKIT_PROBE_OUT/check-3.json`` (plain data, see
:mod:`cnnkit.checks.protocol`); the grader decodes that file and judges it in
its own process.

While a student's function runs, a profiler records calls into the kit's own
implementations and into TensorFlow, Keras, SciPy and the like ("from scratch"
exercises must not use them; a Keras block answer may use Keras). The record
travels with the results. Its limit: the probe runs in the student's kernel, so
a student who rewrites the probe cell before it runs (IPython input
transformers) can hide such calls; the grader's notes say so.
"""
from __future__ import annotations

import base64
import importlib
import json
import os
import sys
import tempfile
import threading
from pathlib import Path

import numpy as np

from cnnkit.checks import NotABlock, block_model, protocol

# calls into these packages from a student's answer are recorded (module-name prefixes)
REFERENCE_PACKAGES = ("cnnkit", "tensorflow", "keras", "scipy", "torch", "jax", "sklearn", "skimage", "cv2")
# a Keras block answer is built with Keras: there only the kit itself is off limits
BLOCK_REFERENCE_PACKAGES = ("cnnkit",)
_ALLOWED_MODULES = {"cnnkit.checks", __name__}
MAX_MESSAGE = 2000
MAX_HITS = 5


class _Tripwire:
    """Record calls into reference packages (by the called function's module) while active."""

    def __init__(self, packages: tuple[str, ...], allowed_code: set):
        self.packages, self.allowed_code = packages, allowed_code
        self.hits: list[str] = []
        self.previous = None

    def _hook(self, frame, event, arg):
        if event != "call" or len(self.hits) >= MAX_HITS:
            return
        module = frame.f_globals.get("__name__", "")
        if not isinstance(module, str) or module in _ALLOWED_MODULES or frame.f_code in self.allowed_code:
            return
        if any(module == p or module.startswith(p + ".") for p in self.packages):
            where = f"{module}.{frame.f_code.co_name}"
            if where not in self.hits:
                self.hits.append(where)

    def __enter__(self):
        self.previous = sys.getprofile()
        threading.setprofile(self._hook)
        sys.setprofile(self._hook)
        return self

    def __exit__(self, *exc):
        hook_kept = sys.getprofile() == self._hook
        sys.setprofile(self.previous)
        threading.setprofile(None)
        if not hook_kept:
            self.hits.append("(the profiler was replaced while the answer ran)")
        return False


def _resolve(value):
    """Turn the plan's stand-ins back into objects: a check module's function named in the plan."""
    if isinstance(value, protocol.Callable):
        module_name, _, qualname = value.name.partition(":")
        if not module_name.startswith("cnnkit.checks.") or "." in qualname or not qualname.isidentifier():
            raise protocol.ProtocolError(f"the plan names a function the probe does not provide: {value.name}")
        return getattr(importlib.import_module(module_name), qualname)
    if isinstance(value, list):
        return [_resolve(v) for v in value]
    if isinstance(value, tuple):
        return tuple(_resolve(v) for v in value)
    if isinstance(value, dict):
        return {k: _resolve(v) for k, v in value.items()}
    return value


def _encoded(value) -> dict:
    try:
        return {"value": protocol.encode(value)}
    except Exception as exc:  # too deep, or an object whose repr fails: say so, do not crash the probe
        return {"unencodable": f"{type(exc).__name__}: {exc}"[:MAX_MESSAGE]}


def _save_model(model, out_dir: Path, index: int, number: int) -> dict:
    name = f"model-{index}-{number}.keras"
    try:
        model.save(out_dir / name)
    except Exception as exc:
        return {"unencodable": f"the model could not be saved ({type(exc).__name__}: {exc})"[:MAX_MESSAGE]}
    return {"model": name}


def _run_call(call: dict, fn, out_dir: Path, index: int, number: int) -> dict:
    args = _resolve(protocol.decode(call["args"]))
    kwargs = _resolve(protocol.decode(call["kwargs"]))
    model_call = call["kind"] == "model"
    packages = BLOCK_REFERENCE_PACKAGES if model_call else REFERENCE_PACKAGES
    allowed = {getattr(a, "__code__", None) for a in list(args) + list(kwargs.values())} - {None}
    entry: dict
    with _Tripwire(packages, allowed) as trip:
        try:
            if model_call:
                result = block_model(fn, tuple(call["input_shape"]), tuple(args), kwargs)
            else:
                result = fn(*args, **kwargs)
            entry = None
        except NotImplementedError as exc:
            entry = {"raised": "NotImplementedError", "message": str(exc)[:MAX_MESSAGE]}
        except NotABlock as exc:
            entry = {"not_block": str(exc)[:MAX_MESSAGE]}
        except Exception as exc:  # the student's bug: it is a result too
            entry = {"raised": type(exc).__name__[:100], "message": str(exc)[:MAX_MESSAGE]}
    if entry is None:
        entry = _save_model(result, out_dir, index, number) if model_call else _encoded(result)
    entry["rng_after"] = [protocol.encode(a.bit_generator.state) for a in args if isinstance(a, np.random.Generator)]
    entry["reference_calls"] = trip.hits
    return entry


def collect(index: int, namespace: dict, plan_b64: str) -> None:
    """Compute the results the grader asks for in ``plan_b64`` and write them as ``check-<index>.json``."""
    out_dir = Path(os.environ.get("CNNKIT_PROBE_OUT", "."))
    plan = json.loads(base64.b64decode(plan_b64))
    answers = {}
    for name in plan["answers"]:
        if name not in namespace:
            answers[name] = {"missing": True}
        elif callable(namespace[name]) and not isinstance(namespace[name], type):
            answers[name] = {"callable": True}
        else:
            answers[name] = _encoded(namespace[name])
    calls = {}
    for number, call in enumerate(plan["calls"]):
        fn = namespace.get(call["answer"])
        if call["key"] in calls or fn is None or not callable(fn):
            continue
        calls[call["key"]] = _run_call(call, fn, out_dir, index, number)
    text = json.dumps({"answers": answers, "calls": calls}, allow_nan=False)
    fd, tmp = tempfile.mkstemp(dir=out_dir, prefix=f".check-{index}.", suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.replace(tmp, out_dir / f"check-{index}.json")
    print(f"results collected for the grader: {len(answers)} answer(s), {len(calls)} call(s)")
