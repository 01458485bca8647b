"""benchmarks/capstone_jax.py and the kit on a Keras backend without TensorFlow.

JAX is not installed here, so what runs on it is checked on a GPU machine (the records in
benchmarks/results/capstone_jax_h200*.json). Here: the numpy input pipeline against what
cnnkit.pipeline does, the script's refusals, and the kit's behaviour when TensorFlow is absent.
"""
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest

if str(Path(__file__).resolve().parent) not in sys.path:  # also under --import-mode=importlib
    sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchmark_helpers import REPO, benchmark_module, subprocess_env  # noqa: E402


def _images(n=40, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, 8, 8, 3), dtype=np.uint8)


def _stream(x, y, **kw):
    capstone_jax = benchmark_module("capstone_jax")
    settings = dict(batch=16, steps=2, epochs=2, flip=True, translate=2, num_classes=10, seed=3, workers=1)
    settings.update(kw)
    return list(capstone_jax.stream(x, y, np.float32([10, 20, 30]), np.float32([2, 4, 8]), **settings))


def test_every_training_image_is_a_reflected_shift_of_its_image_or_its_mirror_standardised():
    x, y = _images(), np.arange(40) % 10
    batches = _stream(x, y)
    assert len(batches) == 4  # 2 epochs of 2 steps
    padded = np.pad(x, ((0, 0), (2, 2), (2, 2), (0, 0)), mode="reflect")
    tf = pytest.importorskip("tensorflow")  # the kit's tf.data pipeline pads the same way
    np.testing.assert_array_equal(tf.pad(x, [[0, 0], [2, 2], [2, 2], [0, 0]], mode="REFLECT").numpy(), padded)
    for epoch in range(2):
        seen = []
        for z, one_hot in batches[2 * epoch:2 * epoch + 2]:
            assert z.dtype == np.float32 and z.shape == (16, 8, 8, 3) and one_hot.shape == (16, 10)
            pixels = z * np.float32([2, 4, 8]) + np.float32([10, 20, 30])
            np.testing.assert_allclose(pixels, np.round(pixels), atol=1e-3)
            for image, label in zip(np.round(pixels).astype(np.uint8), one_hot):
                matches = [i for i in range(40) if label[i % 10] == 1 and any(
                    np.array_equal(view[dy:dy + 8, dx:dx + 8], image)
                    for view in (padded[i], padded[i][:, ::-1]) for dy in range(5) for dx in range(5))]
                assert matches, "an image that is no shifted view of any training image of its class"
                seen.append(matches[0])
        assert len(set(seen)) == 32  # one epoch: 32 different images, none twice


def test_the_stream_is_seeded_and_the_same_with_any_number_of_threads():
    x, y = _images(), np.arange(40) % 10
    one, three = _stream(x, y), _stream(x, y, workers=3)
    for (z1, y1), (z3, y3) in zip(one, three, strict=True):
        np.testing.assert_array_equal(z1, z3)
        np.testing.assert_array_equal(y1, y3)
    other = _stream(x, y, seed=4)
    assert not np.array_equal(one[0][0], other[0][0])
    flips = _stream(x, y, translate=0, flip=False)
    z = flips[0][0] * np.float32([2, 4, 8]) + np.float32([10, 20, 30])
    order = np.random.default_rng([3, 0]).permutation(40)[:16]
    np.testing.assert_allclose(z, x[order], atol=1e-3)  # no augmentation: the shuffled images themselves


def test_the_script_needs_the_jax_backend_and_names_what_to_run_instead(monkeypatch, capsys):
    capstone_jax = benchmark_module("capstone_jax")
    monkeypatch.delenv("KERAS_BACKEND", raising=False)
    with pytest.raises(SystemExit) as stop:
        capstone_jax.main(["--dataset", "offline", "--fast"])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert "run with KERAS_BACKEND=jax (got 'tensorflow')" in err and "benchmarks/capstone.py" in err


def test_recipe_options_only_the_tf_data_pipeline_has_are_refused_by_name():
    capstone_jax = benchmark_module("capstone_jax")
    from cnnkit.recipes import get_recipe

    with pytest.raises(ValueError, match="uses alternate_flip, which only the tf.data pipeline"):
        capstone_jax.run_recipe(get_recipe("quick").replace(alternate_flip=True), dataset=None)


def test_without_tensorflow_the_kit_imports_under_another_backend_and_refuses_under_its_own():
    code = ("import importlib.abc, sys\n"  # as if TensorFlow were not installed
            "class NoTensorFlow(importlib.abc.MetaPathFinder):\n"
            "    def find_spec(self, name, path, target=None):\n"
            "        if name.split('.')[0] == 'tensorflow':\n"
            "            raise ModuleNotFoundError(f'No module named {name!r}', name=name)\n"
            "sys.meta_path.insert(0, NoTensorFlow())\n"
            "from cnnkit.env import import_tensorflow\n"
            "print(import_tensorflow())\n")
    other = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120,
                           env=subprocess_env(KERAS_BACKEND="jax"))
    assert other.returncode == 0, other.stderr
    assert other.stdout.strip() == "None"
    own = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120,
                         env=subprocess_env(KERAS_BACKEND="tensorflow"))
    assert own.returncode != 0 and "ModuleNotFoundError" in own.stderr


def test_fit_recipe_without_tensorflow_says_what_it_needs(monkeypatch):
    import cnnkit.training as training

    monkeypatch.setattr(training, "tf", None)
    monkeypatch.setenv("KERAS_BACKEND", "jax")
    with pytest.raises(RuntimeError, match=r"fit_recipe needs TensorFlow .*\(KERAS_BACKEND='jax'\).*capstone_jax\.py"):
        training.fit_recipe("quick", data=None)


def test_gpu_capabilities_come_from_jax_when_tensorflow_is_absent(monkeypatch):
    import cnnkit.devices as devices
    import cnnkit.env as env

    monkeypatch.setattr(env, "import_tensorflow", lambda: None)
    gpu = types.SimpleNamespace(compute_capability="9.0")

    def jax_devices(kind):
        assert kind == "gpu"
        return [gpu, types.SimpleNamespace(compute_capability="8.6")]

    monkeypatch.setitem(sys.modules, "jax", types.SimpleNamespace(devices=jax_devices))
    assert devices._gpu_capabilities() == [(9, 0), (8, 6)]
    assert devices.resolve_precision("auto", flags=[]) == "bfloat16"

    def no_gpu(kind):
        raise RuntimeError("Unknown backend: 'gpu' requested, but no platforms that are instances of gpu are present")

    monkeypatch.setitem(sys.modules, "jax", types.SimpleNamespace(devices=no_gpu))
    assert devices._gpu_capabilities() == []
    monkeypatch.setitem(sys.modules, "jax", None)  # another backend, no JAX either
    assert devices._gpu_capabilities() == []
