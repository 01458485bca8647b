"""Plain-data encoding between a student's kernel and the grader (numpy only, no pickle).

What crosses from the kernel to the grader is JSON text, decoded here into
exact built-in types and fresh numpy arrays; nothing the student's code built
(a subclass of ``str``, an ``ndarray`` subclass, an object with its own
``__eq__``) survives the trip. Encoding::

    None, bool, int, float, str      -> themselves (float NaN/inf as {"$float": "nan"})
    list, tuple, set, frozenset       -> {"$list": [...]} / {"$tuple": [...]} / {"$set": [...]}
    dict with str keys                -> {"$dict": [[key, value], ...]}
    numpy array or scalar             -> {"$array": {"dtype": "<f8", "shape": [...], "data": base64}}
    numpy Generator                   -> {"$rng": bit-generator state}
    a callable                        -> {"$callable": "module:qualname"}
    anything else                     -> {"$opaque": type name, "repr": first 200 characters}

:func:`decode` enforces limits (``MAX_DEPTH`` nesting, ``MAX_ITEMS`` elements,
``MAX_ARRAY_BYTES`` per array) and accepts only the dtypes in ``DTYPES``.
"""
from __future__ import annotations

import base64
import json
import math

import numpy as np

MAX_DEPTH = 16
MAX_ITEMS = 100_000
MAX_ARRAY_BYTES = 64 * 2**20
DTYPES = frozenset(
    np.dtype(name).str for name in
    ("bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
     "float16", "float32", "float64", "complex64", "complex128")
)


class ProtocolError(ValueError):
    """A value from the kernel is malformed, too large or of a type the grader does not accept."""


class Opaque:
    """Stands for a kernel value the grader does not rebuild (a class instance, a module...)."""

    def __init__(self, type_name: str, text: str):
        self.type_name, self.text = type_name, text

    def __repr__(self) -> str:
        return f"<{self.type_name}: {self.text}>"


class Callable:
    """Stands for a function of the student (only its name crosses); it cannot be called."""

    def __init__(self, name: str):
        self.name = name

    def __repr__(self) -> str:
        return f"<function {self.name}>"


def _callable_name(value) -> str:
    module = getattr(value, "__module__", None) or "?"
    qualname = getattr(value, "__qualname__", None) or type(value).__name__
    return f"{module}:{qualname}"[:200]


def encode(value, _depth: int = 0):
    """``value`` as JSON-ready plain data (see the module docstring)."""
    if _depth > MAX_DEPTH:
        raise ProtocolError(f"value nested deeper than {MAX_DEPTH} levels")
    kind = type(value)
    if value is None or kind is bool or kind is str:
        return value
    if kind is int:
        return value if abs(value) < 2**63 else {"$bigint": str(value)}
    if kind is float:
        return value if math.isfinite(value) else {"$float": repr(value)}
    if kind in (list, tuple):
        items = [encode(v, _depth + 1) for v in value]
        return {"$list" if kind is list else "$tuple": items}
    if kind in (set, frozenset):
        items = sorted((encode(v, _depth + 1) for v in value), key=lambda e: json.dumps(e, sort_keys=True))
        return {"$set": items}
    if kind is dict and all(type(k) is str for k in value):
        return {"$dict": [[k, encode(v, _depth + 1)] for k, v in value.items()]}
    if isinstance(value, (np.ndarray, np.generic)) and np.asarray(value).dtype.str in DTYPES:
        arr = np.ascontiguousarray(np.asarray(value))
        payload = {"dtype": arr.dtype.str, "shape": list(arr.shape),
                   "data": base64.b64encode(arr.tobytes()).decode("ascii")}
        return {"$array": payload} if isinstance(value, np.ndarray) else {"$scalar": payload}
    if isinstance(value, np.random.Generator):
        return {"$rng": encode(value.bit_generator.state, _depth + 1)}
    if callable(value) and not isinstance(value, type):
        return {"$callable": _callable_name(value)}
    try:
        text = repr(value)[:200]
    except Exception:
        text = "?"
    return {"$opaque": type(value).__name__[:100], "repr": text}


def dumps(value) -> str:
    return json.dumps(encode(value), allow_nan=False, separators=(",", ":"))


class _Budget:
    def __init__(self):
        self.items = 0

    def spend(self, n: int = 1) -> None:
        self.items += n
        if self.items > MAX_ITEMS:
            raise ProtocolError(f"more than {MAX_ITEMS} values in one result")


def _array(payload) -> np.ndarray:
    if type(payload) is not dict or set(payload) != {"dtype", "shape", "data"}:
        raise ProtocolError("malformed array")
    dtype, shape, data = payload["dtype"], payload["shape"], payload["data"]
    if type(dtype) is not str or dtype not in DTYPES:
        raise ProtocolError(f"array dtype {str(dtype)[:40]!r} is not accepted")
    if type(shape) is not list or len(shape) > 32 or any(type(n) is not int or n < 0 for n in shape):
        raise ProtocolError("malformed array shape")
    if type(data) is not str:
        raise ProtocolError("malformed array data")
    dt = np.dtype(dtype)
    count = math.prod(shape)
    if count * dt.itemsize > MAX_ARRAY_BYTES:
        raise ProtocolError(f"array of {count * dt.itemsize} bytes exceeds {MAX_ARRAY_BYTES}")
    try:
        raw = base64.b64decode(data.encode("ascii"), validate=True)
    except Exception:
        raise ProtocolError("array data is not base64") from None
    if len(raw) != count * dt.itemsize:
        raise ProtocolError("array data does not match its shape and dtype")
    return np.frombuffer(raw, dtype=dt).reshape(shape).copy()


def decode(data, _depth: int = 0, _budget: _Budget | None = None):
    """Rebuild a value from :func:`encode`'s output, as exact built-in types and fresh arrays."""
    budget = _budget or _Budget()
    budget.spend()
    if _depth > MAX_DEPTH:
        raise ProtocolError(f"value nested deeper than {MAX_DEPTH} levels")
    kind = type(data)
    if data is None or kind in (bool, int, str):
        return data
    if kind is float:
        return data
    if kind is not dict or len(data) not in (1, 2):
        raise ProtocolError(f"unexpected {kind.__name__} in a result")
    (tag, body), *rest = data.items()
    if tag in ("$list", "$tuple") and type(body) is list and not rest:
        budget.spend(len(body))
        items = [decode(v, _depth + 1, budget) for v in body]
        return items if tag == "$list" else tuple(items)
    if tag == "$set" and type(body) is list and not rest:
        budget.spend(len(body))
        items = [decode(v, _depth + 1, budget) for v in body]
        try:
            return set(items)
        except TypeError:
            raise ProtocolError("a set holds an unhashable item") from None
    if tag == "$dict" and type(body) is list and not rest:
        out = {}
        for pair in body:
            if type(pair) is not list or len(pair) != 2 or type(pair[0]) is not str:
                raise ProtocolError("malformed dict entry")
            out[pair[0]] = decode(pair[1], _depth + 1, budget)
        return out
    if tag == "$array" and not rest:
        return _array(body)
    if tag == "$scalar" and not rest:
        arr = _array(body)
        if arr.shape != ():
            raise ProtocolError("a numpy scalar must have shape ()")
        return arr[()]
    if tag == "$float" and body in ("nan", "inf", "-inf") and not rest:
        return float(body)
    if tag == "$bigint" and type(body) is str and len(body) < 400 and not rest:
        try:
            return int(body)
        except ValueError:
            raise ProtocolError("malformed integer") from None
    if tag == "$rng" and not rest:
        state = decode(body, _depth + 1, budget)
        rng = np.random.default_rng()
        try:
            rng.bit_generator.state = state
        except Exception:
            raise ProtocolError("malformed random generator state") from None
        return rng
    if tag == "$callable" and type(body) is str and not rest:
        return Callable(body[:200])
    if tag == "$opaque" and type(body) is str and rest and rest[0][0] == "repr" and type(rest[0][1]) is str:
        return Opaque(body[:100], rest[0][1][:200])
    raise ProtocolError(f"unknown tag {str(tag)[:40]!r} in a result")


def loads(text: str):
    """Decode JSON text from the kernel; any problem is a :class:`ProtocolError`."""
    if type(text) is not str:
        raise ProtocolError("a result must be text")
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise ProtocolError(f"result is not JSON: {str(exc)[:100]}") from None
    return decode(data)


def key(name: str, args: tuple, kwargs: dict) -> str:
    """A stable identity for one call ``name(*args, **kwargs)``: the grader finds the kernel's result by it."""
    return json.dumps([name, encode(list(args)), encode(dict(sorted(kwargs.items())))],
                      sort_keys=True, separators=(",", ":"))
