"""Checks judged in the grader's process: plan the calls from the solution, then replay the kernel's results.

A check cell holds one call, ``checks.check_x(answer, ..., 24)``. Grading a
check takes three steps:

1. **Plan** (here, once per exercise and run): the solution notebook's cells are
   executed in this trusted process and the check is called with the
   solution's answers wrapped in :class:`_Planner`, which records every call
   the check makes (answer name, arguments), once on the visible inputs and
   once inside ``hidden_inputs(seed)``.
2. **Probe** (in the student's sandboxed kernel, :mod:`cnnkit.checks.probe`):
   the student's answers are called on exactly those arguments; the plain
   results come back as JSON.
3. **Judge** (here): the check runs again with each student answer replaced by
   a :class:`_Replayer` that returns the kernel's result for the same call. The
   expected values, the comparison and the message are computed here only.

Arguments of a check that are not answers (a constant, a table the notebook
defines) are evaluated in the solution's namespace, never taken from the kernel.
The stand-ins carry ``grading_phase`` ("plan" or "judge"), so that an expensive
check (the capstone's open training task) trains nothing while it is planned.
"""
from __future__ import annotations

import ast
import base64
import contextlib
import io
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cnnkit.checks import AnswerRaised, CheckFailed, NotABlock, hidden_inputs, protocol
from cnnkit.instructor.notebooks import is_answer_cell, is_check_cell, nbgrader_meta

MAX_RESULT_BYTES = 64 * 2**20
MAX_MODEL_BYTES = 64 * 2**20


class PlanError(RuntimeError):
    """The instructor's solution notebook cannot be planned (a malformed check cell, a failing solution)."""


class MissingResult(Exception):
    """The check asked for a call the kernel did not report."""


@dataclass
class CheckPlan:
    index: int                      # position among the notebook's check cells
    grade_id: str
    points: float
    function: object                # the check function (from cnnkit.checks.*)
    arg_nodes: list                 # ast nodes of the call's positional arguments
    kw_nodes: dict                  # name -> ast node
    answers: list[str]              # answer names the check reads
    calls: list[dict] = field(default_factory=list)

    def probe_source(self) -> str:
        plan = {"answers": self.answers, "calls": self.calls}
        blob = base64.b64encode(json.dumps(plan).encode()).decode("ascii")
        return ("import cnnkit.checks.probe as _cnnkit_probe\n"
                f"_cnnkit_probe.collect({self.index}, globals(), {blob!r})")


def answer_names(cells) -> set[str]:
    """Names bound by the answer cells (functions, classes, assignments, imports)."""
    names: set[str] = set()
    for cell in cells:
        if not is_answer_cell(cell):
            continue
        try:
            tree = ast.parse(cell.source)
        except SyntaxError as exc:
            raise PlanError(f"answer cell {nbgrader_meta(cell).get('grade_id')!r} is not valid Python: {exc}") from None
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names.add(node.name)
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                names.add(node.id)
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                names.update((a.asname or a.name).split(".")[0] for a in node.names)
    return names


def parse_check_call(source: str, where: str) -> tuple[str, str, list, dict]:
    """``alias.check_x(args...)`` -> (alias, "check_x", arg nodes, keyword nodes)."""
    try:
        tree = ast.parse(source)
    except SyntaxError as exc:
        raise PlanError(f"{where}: not valid Python: {exc}") from None
    body = tree.body
    if (len(body) != 1 or not isinstance(body[0], ast.Expr) or not isinstance(body[0].value, ast.Call)
            or not isinstance(body[0].value.func, ast.Attribute) or not isinstance(body[0].value.func.value, ast.Name)):
        raise PlanError(f"{where}: a graded check cell must hold exactly one call `checks.check_x(...)`")
    call = body[0].value
    if any(isinstance(a, ast.Starred) for a in call.args) or any(k.arg is None for k in call.keywords):
        raise PlanError(f"{where}: *args and **kwargs are not allowed in a check call")
    return call.func.value.id, call.func.attr, list(call.args), {k.arg: k.value for k in call.keywords}


def _answer_of(node, answers: set[str]) -> str | None:
    if isinstance(node, ast.Name) and node.id in answers:
        return node.id
    if any(isinstance(n, ast.Name) and n.id in answers for n in ast.walk(node)):
        raise PlanError("a check call may pass an answer only as a bare name")
    return None


class _CallKeys:
    """Keys of the calls one run of a check makes: the call's identity plus how often it came before.

    A random generator passed to an answer counts by its presence, not its state
    (a correct answer may draw from it differently); repeated identical calls are
    told apart by their order.
    """

    def __init__(self):
        self.seen: dict[str, int] = {}

    def __call__(self, name: str, args: tuple, kwargs: dict) -> str:
        plain = tuple("$rng" if isinstance(a, np.random.Generator) else a for a in args)
        base = protocol.key(name, plain, kwargs)
        count = self.seen.get(base, 0)
        self.seen[base] = count + 1
        return f"{base}#{count}"


class _Planner:
    """Wraps a solution's function: records each call the check makes, then makes it.

    ``grading_phase`` tells a check that it is being planned: a check whose verdict
    costs much (training a network) records its calls and stops there.
    """

    grading_phase = "plan"

    def __init__(self, name: str, fn, log: list, keys: _CallKeys):
        self.name, self.fn, self.log, self.keys = name, fn, log, keys

    def __call__(self, *args, **kwargs):
        self.log.append({"answer": self.name, "kind": "call", "args": protocol.encode(list(args)),
                         "kwargs": protocol.encode(kwargs), "key": self.keys(self.name, args, kwargs)})
        return self.fn(*args, **kwargs)

    def block_model(self, input_shape, args, kwargs):
        from cnnkit.checks import block_model

        self.log.append({"answer": self.name, "kind": "model", "input_shape": list(input_shape),
                         "args": protocol.encode(list(args)), "kwargs": protocol.encode(kwargs),
                         "key": self.keys(self.name, ("$model", input_shape, *args), kwargs)})
        return block_model(self.fn, input_shape, args, kwargs)


def _run_quietly(fn, *args, **kwargs):
    """Run ``fn`` with stdout captured; return (printed text, exception or None)."""
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out):
            fn(*args, **kwargs)
    except Exception as exc:
        return out.getvalue(), exc
    return out.getvalue(), None


def solution_namespace(solution, where: str) -> dict:
    """Execute the solution's code cells up to its last check cell (check cells excluded) in a fresh namespace."""
    os.environ.setdefault("MPLBACKEND", "Agg")
    cells = solution.cells
    last = max((i for i, c in enumerate(cells) if is_check_cell(c)), default=-1)
    namespace: dict = {"__name__": "__cnnkit_solution__"}
    for i, cell in enumerate(cells[: last + 1]):
        if cell.cell_type != "code" or is_check_cell(cell):
            continue
        code = compile(cell.source, f"<{where} cell {i}>", "exec")
        _, error = _run_quietly(exec, code, namespace)
        if error is not None:
            raise PlanError(f"{where}, cell {i} failed while planning: {type(error).__name__}: {error}")
    if "matplotlib.pyplot" in sys.modules:  # figures the solution drew are not needed here
        sys.modules["matplotlib.pyplot"].close("all")
    return namespace


def plan_exercise(solution, where: str, seed: int) -> tuple[list[CheckPlan], dict, set[str]]:
    """Plan every graded check of ``solution`` for visible inputs and hidden inputs from ``seed``."""
    names = answer_names(solution.cells)
    namespace = solution_namespace(solution, where)
    plans = []
    for cell in (c for c in solution.cells if is_check_cell(c)):
        meta = nbgrader_meta(cell)
        label = f"{where}, check {meta.get('grade_id')!r}"
        alias, func_name, arg_nodes, kw_nodes = parse_check_call(cell.source, label)
        module = namespace.get(alias)
        function = getattr(module, func_name, None)
        if not callable(function) or not getattr(function, "__module__", "").startswith("cnnkit.checks."):
            raise PlanError(f"{label}: {alias}.{func_name} is not a function of cnnkit.checks")
        used = [n for n in (_answer_of(node, names) for node in [*arg_nodes, *kw_nodes.values()]) if n]
        plan = CheckPlan(len(plans), meta["grade_id"], float(meta["points"]), function, arg_nodes, kw_nodes,
                         sorted(set(used)))
        for hidden in (False, True):
            log: list = []
            keys = _CallKeys()
            args, kwargs = _arguments(plan, namespace, names, lambda n: _wrap_solution(n, namespace[n], log, keys))
            with (hidden_inputs(seed) if hidden else contextlib.nullcontext()):
                printed, error = _run_quietly(function, *args, **kwargs)
            if error is not None:
                raise PlanError(f"{label} fails on the solution{' (hidden inputs)' if hidden else ''}: "
                                f"{type(error).__name__}: {error}")
            plan.calls.extend(c for c in log if c["key"] not in {p["key"] for p in plan.calls})
        plans.append(plan)
    return plans, namespace, names


def _wrap_solution(name, value, log, keys):
    return _Planner(name, value, log, keys) if callable(value) and not isinstance(value, type) else value


def _arguments(plan: CheckPlan, namespace: dict, names: set[str], answer):
    def value(node):
        name = _answer_of(node, names)
        return answer(name) if name else eval(compile(ast.Expression(node), "<check argument>", "eval"), namespace)
    return [value(n) for n in plan.arg_nodes], {k: value(n) for k, n in plan.kw_nodes.items()}


# --------------------------------------------------------------------------- judging


class _Replayer:
    """Stands for a student's function: returns what the kernel computed for the same call.

    ``grading_phase`` tells a check that it is judging a submission in the grader.
    """

    grading_phase = "judge"

    def __init__(self, name: str, calls: dict, folder: Path, hits: list, keys: _CallKeys):
        self.name, self.calls, self.folder, self.hits, self.keys = name, calls, folder, hits, keys

    def _entry(self, key: str, shown: str) -> dict:
        entry = self.calls.get(key)
        if type(entry) is not dict:
            raise MissingResult(f"{shown}: the grader has no result from your notebook for this call")
        hits = entry.get("reference_calls")
        if type(hits) is list and hits:
            self.hits.extend(str(h)[:200] for h in hits[:5])
        return entry

    @staticmethod
    def _raise_recorded(entry: dict):
        if "raised" in entry:
            kind, message = str(entry["raised"])[:100], str(entry.get("message", ""))[:2000]
            if kind == "NotImplementedError":
                raise NotImplementedError(message)
            raise AnswerRaised(kind, message)
        if "not_block" in entry:
            raise NotABlock(str(entry["not_block"])[:2000])
        if "unencodable" in entry:
            raise AnswerRaised("UnsupportedResult", str(entry["unencodable"])[:2000])

    def _apply_rng(self, entry: dict, args: tuple) -> None:
        states = entry.get("rng_after")
        rngs = [a for a in args if isinstance(a, np.random.Generator)]
        if type(states) is list and len(states) == len(rngs):
            for rng, state in zip(rngs, states):
                rng.bit_generator.state = protocol.decode(state)

    def __call__(self, *args, **kwargs):
        entry = self._entry(self.keys(self.name, args, kwargs), f"{self.name}(...)")
        self._apply_rng(entry, args)
        self._raise_recorded(entry)
        return protocol.decode(entry.get("value"))

    def block_model(self, input_shape, args, kwargs):
        entry = self._entry(self.keys(self.name, ("$model", input_shape, *args), kwargs), f"{self.name}(x, ...)")
        self._raise_recorded(entry)
        return load_model_file(self.folder, entry.get("model"))


def load_model_file(folder: Path, name) -> object:
    """Load a model the kernel saved: a plain file in ``folder``, Keras' safe mode (no code from the file)."""
    import keras

    if type(name) is not str or "/" in name or not name.endswith(".keras"):
        raise AnswerRaised("UnsupportedResult", "the kernel named no saved model")
    path = folder / name
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    with os.fdopen(fd, "rb") as handle:
        if not os.path.isfile(path) or os.fstat(handle.fileno()).st_size > MAX_MODEL_BYTES:
            raise AnswerRaised("UnsupportedResult", "the saved model is not a plain file or is too large")
    try:
        return keras.saving.load_model(path, compile=False, safe_mode=True)
    except Exception as exc:
        raise AnswerRaised("UnsupportedResult", "your block could not be loaded by the grader with Keras' safe mode "
                           f"(use Keras' built-in layers, no Lambda or custom layers): {type(exc).__name__}: {exc}")


def read_results(folder: Path, index: int) -> dict | None:
    """The kernel's results for check ``index``, or None when there are none (never follows a link)."""
    path = folder / f"check-{index}.json"
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as handle:
        data = handle.read(MAX_RESULT_BYTES + 1)
    if len(data) > MAX_RESULT_BYTES:
        raise protocol.ProtocolError(f"results larger than {MAX_RESULT_BYTES} bytes")
    try:
        results = json.loads(data.decode("utf-8"))
    except (ValueError, RecursionError):
        raise protocol.ProtocolError("results are not JSON") from None
    if type(results) is not dict or type(results.get("answers")) is not dict or type(results.get("calls")) is not dict:
        raise protocol.ProtocolError("results have the wrong structure")
    return results


def judge(plan: CheckPlan, namespace: dict, names: set[str], results: dict, folder: Path,
          seed: int) -> tuple[bool, str]:
    """Run ``plan``'s check on the kernel's results, visible inputs then hidden ones: (passed, message)."""
    hits: list[str] = []
    answers = results["answers"]
    keys = _CallKeys()

    def answer(name):
        info = answers.get(name)
        if type(info) is not dict or info.get("missing"):
            raise MissingResult(f"`{name}` is not defined: its answer cell did not run or does not define it")
        if info.get("callable") is True:
            return _Replayer(name, results["calls"], folder, hits, keys)
        if "unencodable" in info:
            return protocol.Opaque("unsupported", str(info["unencodable"])[:200])
        return protocol.decode(info.get("value"))

    passed_message = "Passed"
    for hidden in (False, True):
        keys.seen.clear()
        try:
            args, kwargs = _arguments(plan, namespace, names, answer)
        except (MissingResult, protocol.ProtocolError) as exc:
            return False, str(exc)
        with (hidden_inputs(seed) if hidden else contextlib.nullcontext()):
            printed, error = _run_quietly(plan.function, *args, **kwargs)
        if hits:
            return False, (f"your answer called {', '.join(dict.fromkeys(hits))}: this exercise asks you to write "
                           "it yourself, so a call into the kit's own implementation or into TensorFlow/Keras/SciPy "
                           "earns nothing here")
        if error is not None:
            if isinstance(error, CheckFailed):
                message = str(error)
            elif isinstance(error, (MissingResult, protocol.ProtocolError)):
                message = str(error)
            else:
                message = f"the check could not use your answer ({type(error).__name__}: {error})"
            return False, (f"on hidden inputs drawn at grading time: {message}" if hidden else message)
        lines = [line for line in printed.splitlines() if line.startswith("Passed")]
        if not hidden and lines:
            passed_message = lines[-1]
    return True, passed_message
