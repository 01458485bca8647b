"""Where and in which precision the capstone trains: bfloat16 where the hardware pays, and tf.distribute strategies.

Precision
---------
A recipe's ``precision`` is ``"auto"``, ``"float32"`` or ``"bfloat16"``. ``"bfloat16"``
means Keras' ``mixed_bfloat16`` policy: weights stay float32, convolutions and matrix
products run in bfloat16 (8 bits of mantissa instead of 23, the same exponent range as
float32, so no loss scaling is needed). :func:`resolve_precision` turns ``"auto"`` into
one of the two from what the machine has (:func:`bf16_hardware`):

* an NVIDIA GPU of compute capability 8.0 or more (Ampere and later): bfloat16;
* a CPU with AMX-BF16 (``amx_bf16`` in /proc/cpuinfo; Intel Sapphire Rapids and later):
  bfloat16, oneDNN runs the convolutions on the tile unit;
* a CPU with AVX512_BF16 but no AMX (AMD Zen 4, Intel Cooper Lake): bfloat16, because it
  measured faster (:data:`AVX512_BF16_SPEEDUP`). ``benchmarks/precision.py`` on an AMD EPYC
  (Zen 4, two cores, shared with other work): the good recipe's model trained 1.24 to 2.59
  times as fast in mixed_bfloat16 as in float32, round by round, in two runs of three
  alternating rounds (15 and 30 steps of 256 images; best rounds 142 against 93 and 373
  against 164 images per second). Presumably because the dot-product
  instruction VDPBF16PS does twice the multiply-adds of a float32 FMA, which outweighs the casts;
* anything else: float32.

Devices
-------
:func:`make_strategy` picks the ``tf.distribute`` strategy a run uses: the default
(one-device) strategy on one device, ``MirroredStrategy`` over all GPUs when there are
several, ``MultiWorkerMirroredStrategy`` when ``TF_CONFIG`` describes a cluster, or a
``MirroredStrategy`` over the devices given explicitly. :func:`split_cpu` makes several
logical CPU devices out of one CPU (only before TensorFlow has initialised its devices),
which is how the multi-device path is exercised on a machine without GPUs.
"""
from __future__ import annotations

import json
import math
import os

from cnnkit._validate import one_of, positive_int
from cnnkit.recipes import OPTIMIZERS, PRECISIONS

__all__ = ["PRECISIONS", "AVX512_BF16_SPEEDUP", "cpu_flags", "bf16_hardware", "resolve_precision",
           "keras_policy", "make_strategy", "split_cpu", "strategy_name", "replica_count", "scaled_learning_rate"]

# Training speed of mixed_bfloat16 relative to float32 (higher is faster) for the good recipe's
# model on a CPU with AVX512_BF16 and no AMX: AMD EPYC (Zen 4), 2 cores, TensorFlow 2.21, batch 256,
# measured by benchmarks/precision.py (the slowest of six alternating rounds in two runs; the best was 2.59).
# Above 1, so "auto" chooses bfloat16 on such CPUs; a value below 1 would keep float32 there.
AVX512_BF16_SPEEDUP = 1.24


def cpu_flags(cpuinfo: str = "/proc/cpuinfo") -> frozenset[str]:
    """The CPU's feature flags (the ``flags`` line of Linux' /proc/cpuinfo); empty where there is none."""
    try:
        with open(cpuinfo, encoding="utf-8") as handle:
            for line in handle:
                if line.startswith(("flags", "Features")):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def _gpu_capabilities() -> list[tuple[int, int]]:
    """Compute capabilities (major, minor) of the GPUs TensorFlow sees (imports TensorFlow).

    Without TensorFlow, under ``KERAS_BACKEND=jax``, the GPUs JAX sees.
    """
    from cnnkit.env import import_tensorflow

    tf = import_tensorflow()
    found = []
    if tf is None:
        try:
            import jax

            gpus = jax.devices("gpu")
        except (ImportError, RuntimeError):  # another backend, or a JAX without a GPU
            return found
        for gpu in gpus:
            capability = str(getattr(gpu, "compute_capability", "") or "")
            if capability:
                found.append(tuple(int(v) for v in capability.split(".")[:2]))
        return found
    for gpu in tf.config.list_physical_devices("GPU"):
        capability = tf.config.experimental.get_device_details(gpu).get("compute_capability")
        if capability:
            found.append(tuple(int(v) for v in capability))
    return found


def bf16_hardware(flags=None, gpu_capabilities=None) -> str | None:
    """What runs bfloat16 fast here: ``"gpu"``, ``"amx"``, ``"avx512_bf16"`` or None.

    ``flags``: CPU flags (default :func:`cpu_flags`); ``gpu_capabilities``: (major, minor)
    pairs (default: asked of TensorFlow). A GPU counts from compute capability 8.0.
    """
    flags = cpu_flags() if flags is None else frozenset(flags)
    if gpu_capabilities is None:
        gpu_capabilities = _gpu_capabilities()
    if any(tuple(c) >= (8, 0) for c in gpu_capabilities):
        return "gpu"
    if "amx_bf16" in flags:
        return "amx"
    if "avx512_bf16" in flags:
        return "avx512_bf16"
    return None


def resolve_precision(precision: str = "auto", *, flags=None, gpu_capabilities=None) -> str:
    """``"float32"`` or ``"bfloat16"``: ``precision`` itself, or for ``"auto"`` what pays on this machine.

    ``"auto"`` gives bfloat16 on a GPU of compute capability >= 8.0 and on a CPU with
    AMX-BF16; on a CPU with AVX512_BF16 alone it gives bfloat16 only if
    :data:`AVX512_BF16_SPEEDUP` > 1 (measured on Zen 4: it is); float32 everywhere else.
    """
    one_of(precision, "precision", PRECISIONS)
    if precision != "auto":
        return precision
    hardware = bf16_hardware(flags, gpu_capabilities)
    if hardware in ("gpu", "amx") or (hardware == "avx512_bf16" and AVX512_BF16_SPEEDUP > 1):
        return "bfloat16"
    return "float32"


def keras_policy(precision: str) -> str:
    """The Keras dtype policy of a resolved precision: ``"float32"`` or ``"mixed_bfloat16"``."""
    one_of(precision, "precision (resolved)", ("float32", "bfloat16"))
    return "mixed_bfloat16" if precision == "bfloat16" else "float32"


# --------------------------------------------------------------------------- devices


def split_cpu(count: int) -> list[str]:
    """Split the first CPU into ``count`` logical devices; return their names (``/device:CPU:i``).

    Must run before TensorFlow initialises its devices (before any op or device listing in
    the process): a RuntimeError says so otherwise. The logical devices share the same
    cores, so they show the multi-device path, not a speed-up.
    """
    from cnnkit.env import import_tensorflow

    count = positive_int(count, "count (logical CPU devices)")
    tf = import_tensorflow()
    cpu = tf.config.list_physical_devices("CPU")[0]
    try:
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * count)
    except RuntimeError as exc:
        raise RuntimeError(f"cannot split the CPU into {count} logical devices: TensorFlow has already "
                           f"initialised its devices ({exc}); split it first thing in the process") from None
    return [d.name for d in tf.config.list_logical_devices("CPU")]


def make_strategy(devices=None):
    """The ``tf.distribute`` strategy of a run.

    * ``devices`` given (names such as ``"/cpu:0"``, ``"/gpu:1"``): ``MirroredStrategy`` over
      them when there are two or more, else the default strategy;
    * ``TF_CONFIG`` set with a cluster of more than one task: ``MultiWorkerMirroredStrategy``
      (every worker runs the same command; see ``docs/devices.md``);
    * two or more GPUs: ``MirroredStrategy`` over all of them;
    * otherwise the default strategy (one device, no replication).
    """
    from cnnkit.env import import_tensorflow

    tf = import_tensorflow()
    if devices is not None:
        if isinstance(devices, str) or not all(isinstance(d, str) and d for d in devices):
            raise ValueError(f"devices must be a list of device names such as ['/cpu:0', '/cpu:1'], got {devices!r}")
        devices = list(devices)
        if len(devices) > 1:
            return tf.distribute.MirroredStrategy(devices)
        if len(devices) == 1:
            return tf.distribute.OneDeviceStrategy(devices[0])
        raise ValueError("devices must name at least one device, got an empty list")
    if _cluster_size() > 1:
        return tf.distribute.MultiWorkerMirroredStrategy()
    if len(tf.config.list_logical_devices("GPU")) > 1:
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def _cluster_size() -> int:
    """The number of tasks ``TF_CONFIG`` lists (0 when unset); a malformed value is refused by name."""
    text = os.environ.get("TF_CONFIG", "").strip()
    if not text:
        return 0
    try:
        cluster = json.loads(text).get("cluster", {})
        return sum(len(tasks) for tasks in cluster.values())
    except (ValueError, AttributeError, TypeError):
        raise ValueError(f"TF_CONFIG must be JSON with a 'cluster' of task lists, got {text[:200]!r}") from None


def strategy_name(strategy) -> str:
    """A short name of the strategy's kind: ``"default"`` for TensorFlow's one-device default, else its class."""
    name = type(strategy).__name__
    return "default" if name.startswith("_Default") else name


def replica_count(strategy) -> int:
    """How many copies of the model the strategy trains in step (1 for the default strategy)."""
    return int(strategy.num_replicas_in_sync)


def scaled_learning_rate(learning_rate: float, optimizer: str, replicas: int) -> float:
    """The peak learning rate for ``replicas`` replicas, each taking the recipe's batch.

    The global batch is ``B * replicas``. SGD (``"nesterov"``) follows the linear scaling
    rule, ``lr * replicas``: k small steps of size lr move the weights about as far as
    one step of size k*lr on a k-times larger batch, as long as the rate is warmed up
    (the recipes warm up). AdamW, whose step is normalised by the gradient's scale,
    follows the square-root rule, ``lr * sqrt(replicas)`` (the gradient noise shrinks by
    sqrt(k)).
    """
    replicas = positive_int(replicas, "replicas")
    one_of(optimizer, "optimizer", OPTIMIZERS)
    factor = replicas if optimizer == "nesterov" else math.sqrt(replicas)
    return float(learning_rate) * factor
