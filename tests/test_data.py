"""cnnkit.data: safe CIFAR-10 reading, clear errors, the offline dataset, stratified splits."""
import os
import pickle
import tarfile

import numpy as np
import pytest

from cnnkit import data


def _batch(n, seed, label_offset=0):
    rng = np.random.default_rng(seed)
    return {
        b"batch_label": b"fake",
        b"labels": [int(v) for v in (np.arange(n) + label_offset) % 10],
        b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
        b"filenames": [f"img{i}.png".encode() for i in range(n)],
    }


@pytest.fixture
def fake_cifar(tmp_path):
    """A miniature copy of the official layout: 5 train batches of 20 images, a test batch of 10."""
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    batches = {f"data_batch_{i}": _batch(20, i, i) for i in range(1, 6)}
    batches["test_batch"] = _batch(10, 9)
    for name, content in batches.items():
        (folder / name).write_bytes(pickle.dumps(content, protocol=2))
    (folder / "batches.meta").write_bytes(pickle.dumps({b"label_names": [c.encode() for c in data.CLASS_NAMES]}))
    return tmp_path, batches


def test_reads_folder_and_archive_identically(fake_cifar, tmp_path):
    root, batches = fake_cifar
    (x_train, y_train), (x_test, y_test) = data.load_cifar10(root, download=False)
    assert x_train.shape == (100, 32, 32, 3) and x_train.dtype == np.uint8
    assert y_train.shape == (100,) and y_test.shape == (10,) and x_test.shape == (10, 32, 32, 3)
    # planar RGB rows become NHWC: pixel (0, 1) of image 0, channel 2 is byte 2*1024 + 0*32 + 1
    assert x_train[0, 0, 1, 2] == batches["data_batch_1"][b"data"][0, 2048 + 1]
    archive = tmp_path / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(root / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    other = tmp_path / "only-archive"
    other.mkdir()
    os.replace(archive, other / archive.name)
    (x2, y2), (x3, y3) = data.load_cifar10(other, download=False)
    np.testing.assert_array_equal(x2, x_train)
    np.testing.assert_array_equal(y3, y_test)


def test_environment_variable_is_used(fake_cifar, monkeypatch):
    root, _ = fake_cifar
    monkeypatch.setenv("CNNKIT_DATA_DIR", str(root))
    ds = data.load_dataset("cifar10", download=False)
    assert ds.name == "cifar10" and ds.x_train.shape[0] == 100 and str(root) in ds.source


def test_missing_data_lists_places_and_remedies(tmp_path, monkeypatch):
    monkeypatch.delenv("CNNKIT_DATA_DIR", raising=False)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras-home"))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(data.DataNotFoundError) as info:
        data.load_cifar10(empty, download=False)
    message = str(info.value)
    assert str(empty / "cifar-10-batches-py") in message
    assert str(tmp_path / "keras-home" / "datasets") in message
    assert "cifar-10-python.tar.gz" in message and "network" in message and "offline" in message


def test_nonexistent_data_dir_is_named(tmp_path):
    with pytest.raises(data.DataNotFoundError, match="does not exist"):
        data.load_cifar10(tmp_path / "nope", download=False)


class _Exploit:
    def __reduce__(self):
        return (os.system, ("touch PWNED",))


def test_pickle_that_runs_code_is_refused(fake_cifar, monkeypatch):
    root, _ = fake_cifar
    monkeypatch.chdir(root)
    (root / "cifar-10-batches-py" / "data_batch_3").write_bytes(pickle.dumps({b"data": _Exploit()}))
    with pytest.raises(data.CorruptDataError, match=r"data_batch_3.*refusing to load posix\.system|data_batch_3.*refusing"):
        data.load_cifar10(root, download=False)
    assert not (root / "PWNED").exists()


@pytest.mark.parametrize("mutate, expected", [
    (lambda b: b.update({b"labels": [12] * 20}), "labels must lie in 0..9"),
    (lambda b: b.update({b"data": np.zeros((20, 100), np.uint8)}), r"uint8 of shape \(N, 3072\)"),
    (lambda b: b.pop(b"labels"), "missing 'data' or 'labels'"),
    (lambda b: b.update({b"labels": [1] * 7}), "expected 20 integer labels"),
])
def test_altered_batches_are_named(fake_cifar, mutate, expected):
    root, batches = fake_cifar
    batch = dict(batches["data_batch_2"])
    mutate(batch)
    (root / "cifar-10-batches-py" / "data_batch_2").write_bytes(pickle.dumps(batch))
    with pytest.raises(data.CorruptDataError, match=expected) as info:
        data.load_cifar10(root, download=False)
    assert "data_batch_2" in str(info.value)


def test_truncated_batch_and_archive(fake_cifar, tmp_path):
    root, _ = fake_cifar
    path = root / "cifar-10-batches-py" / "test_batch"
    path.write_bytes(path.read_bytes()[:500])
    with pytest.raises(data.CorruptDataError, match="test_batch.*truncated or altered"):
        data.load_cifar10(root, download=False)
    archive_dir = tmp_path / "arch"
    archive_dir.mkdir()
    archive = archive_dir / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(root / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    archive.write_bytes(archive.read_bytes()[:2000])
    with pytest.raises(data.CorruptDataError, match="cifar-10-python.tar.gz"):
        data.load_cifar10(archive_dir, download=False)


def test_incomplete_folder(fake_cifar):
    root, _ = fake_cifar
    (root / "cifar-10-batches-py" / "data_batch_5").unlink()
    with pytest.raises(data.CorruptDataError, match="lacks data_batch_5"):
        data.load_cifar10(root, download=False)


def test_offline_dataset_is_deterministic_and_balanced():
    ds = data.load_dataset("offline")
    assert ds.name == "offline" and ds.class_names == data.OFFLINE_CLASS_NAMES
    assert ds.x_train.shape == (10000, 32, 32, 3) and ds.x_train.dtype == np.uint8
    assert ds.x_test.shape == (2000, 32, 32, 3)
    assert np.bincount(ds.y_train).tolist() == [1000] * 10
    (a, _), _ = data.make_offline(200, 50, seed=3)
    data.make_offline.cache_clear()
    (b, _), _ = data.make_offline(200, 50, seed=3)
    np.testing.assert_array_equal(a, b)
    (x_tr, y_tr), (x_te, y_te) = ds  # unpacks like Keras' loaders
    assert x_tr is ds.x_train and y_te is ds.y_test


def test_offline_colour_does_not_give_the_class_away():
    """A nearest-centroid classifier on mean colour stays near chance: only shape tells the classes apart."""
    (x, y), (xt, yt) = data.make_offline(2000, 500, seed=1)
    feats, tfeats = x.mean(axis=(1, 2)), xt.mean(axis=(1, 2))
    centroids = np.stack([feats[y == c].mean(axis=0) for c in range(10)])
    pred = np.argmin(((tfeats[:, None] - centroids[None]) ** 2).sum(-1), axis=1)
    assert (pred == yt).mean() < 0.25


def test_dataset_choice(monkeypatch):
    monkeypatch.setenv("CNNKIT_DATASET", "offline")
    assert data.load_dataset().name == "offline"
    with pytest.raises(ValueError, match="unknown dataset 'mnist'; expected one of cifar10, offline"):
        data.load_dataset("mnist")


def test_stratified_split_and_subset():
    y = np.repeat(np.arange(10), 50)
    x = np.arange(500)[:, None]
    (xa, ya), (xb, yb) = data.train_val_split(x, y, 0.2, seed=4)
    assert np.bincount(yb).tolist() == [10] * 10 and len(ya) == 400
    assert set(xa[:, 0]).isdisjoint(xb[:, 0])
    again = data.train_val_split(x, y, 0.2, seed=4)
    np.testing.assert_array_equal(again[1][0], xb)
    xs, ys = data.stratified_subset(x, y, 100, seed=0)
    assert np.bincount(ys).tolist() == [10] * 10
    with pytest.raises(ValueError, match="val_fraction must be in"):
        data.train_val_split(x, y, 1.5)
    with pytest.raises(ValueError, match="x has 500 samples but y has 3"):
        data.train_val_split(x, y[:3])
    with pytest.raises(ValueError, match=r"n must be an int in 1..500"):
        data.stratified_subset(x, y, 0)
