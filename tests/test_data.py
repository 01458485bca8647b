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
    with pytest.raises(data.DataNotFoundError, match="data_dir '.*nope' does not exist"):
        data.load_cifar10(tmp_path / "nope", download=False)


def test_nonexistent_data_dir_variable_is_refused_not_skipped(fake_cifar, tmp_path, monkeypatch):
    """A mistyped CNNKIT_DATA_DIR must not fall through to Keras' cache (here a valid copy) or a download."""
    root, _ = fake_cifar
    keras_home = tmp_path / "keras-home"
    (keras_home / "datasets").mkdir(parents=True)
    os.symlink(root / "cifar-10-batches-py", keras_home / "datasets" / "cifar-10-batches-py")
    monkeypatch.setenv("KERAS_HOME", str(keras_home))
    monkeypatch.delenv("CNNKIT_DATA_DIR", raising=False)
    assert data.find_cifar10() == keras_home / "datasets" / "cifar-10-batches-py"  # the cache copy is usable
    missing = tmp_path / "typo"
    monkeypatch.setenv("CNNKIT_DATA_DIR", str(missing))
    for call in (lambda: data.load_cifar10(download=True), lambda: data.load_dataset("cifar10"), data.find_cifar10):
        with pytest.raises(data.DataNotFoundError, match=f"CNNKIT_DATA_DIR='{missing}' does not exist"):
            call()


@pytest.mark.parametrize("name, error, message", [
    (5, TypeError, "name must be a dataset name .* got 5"),
    (("offline",), TypeError, "name must be a dataset name"),
    ("mnist", ValueError, "unknown dataset 'mnist'; expected one of cifar10, offline"),
])
def test_load_dataset_names_a_bad_name(name, error, message):
    with pytest.raises(error, match=message):
        data.load_dataset(name)


def test_bad_dataset_variable_is_named(monkeypatch):
    monkeypatch.setenv("CNNKIT_DATASET", "imagenet")
    with pytest.raises(ValueError, match=r"unknown dataset 'imagenet' \(from CNNKIT_DATASET\)"):
        data.load_dataset()


def test_bad_data_dir_and_download_types(tmp_path):
    with pytest.raises(TypeError, match="data_dir must be a path"):
        data.load_cifar10(5, download=False)
    with pytest.raises(TypeError, match="download must be True or False, got 'no'"):
        data.load_cifar10(tmp_path, download="no")


def _oversized_archive(path, claimed_size):
    """A small tar.gz whose header announces a ``claimed_size``-byte data_batch_1 (its data is left out)."""
    import gzip

    info = tarfile.TarInfo("cifar-10-batches-py/data_batch_1")
    info.size = claimed_size
    with gzip.open(path, "wb") as out:
        out.write(info.tobuf(format=tarfile.GNU_FORMAT) + b"\0" * (1 << 20))


def test_archive_member_larger_than_a_batch_is_refused_from_its_header(tmp_path):
    import tracemalloc

    archive = tmp_path / "cifar-10-python.tar.gz"
    _oversized_archive(archive, 2 * 1024**3)
    tracemalloc.start()
    try:
        with pytest.raises(data.CorruptDataError, match=r"data_batch_1 is 2,147,483,648 bytes, more than a CIFAR-10 "
                                                         r"batch can be \(33,554,432 bytes at most"):
            data.load_cifar10(tmp_path, download=False)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20  # the member was never read


def test_folder_file_larger_than_a_batch_is_refused_before_reading(fake_cifar):
    root, _ = fake_cifar
    big = root / "cifar-10-batches-py" / "data_batch_4"
    with open(big, "r+b") as f:
        f.truncate(2 * 1024**3)  # sparse: no disk used
    with pytest.raises(data.CorruptDataError, match=r"data_batch_4 is 2,147,483,648 bytes"):
        data.load_cifar10(root, download=False)


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
    with pytest.raises(ValueError, match=r"val_fraction must be a number in \(0, 1\), got 1.5"):
        data.train_val_split(x, y, 1.5)
    with pytest.raises(ValueError, match="x has 500 samples but y has 3"):
        data.train_val_split(x, y[:3])
    with pytest.raises(ValueError, match=r"n must be an integer in \[1, 500\], got 0"):
        data.stratified_subset(x, y, 0)
    with pytest.raises(TypeError, match=r"n must be an integer, got 12.5"):
        data.stratified_subset(x, y, 12.5)


@pytest.mark.parametrize("counts", [[10] * 10, [30, 5, 12, 1, 52], [3, 97]])
@pytest.mark.parametrize("share", [0.13, 0.25, 0.5, 0.61, 0.97])
def test_subset_has_exactly_n_samples_in_proportion(counts, share):
    y = np.repeat(np.arange(len(counts)), counts)
    x = np.arange(len(y))
    n = max(len(counts), int(share * len(y)))
    xs, ys = data.stratified_subset(x, y, n, seed=1)
    assert len(xs) == len(ys) == n
    assert len(set(xs.tolist())) == n and np.array_equal(y[xs], ys)  # distinct samples, labels kept with them
    got = np.bincount(ys, minlength=len(counts))
    ideal = np.array(counts) * n / len(y)
    assert np.all(np.abs(got - ideal) < 1), (got, ideal)


def test_subset_smaller_than_the_number_of_classes_is_refused():
    y = np.repeat(np.arange(10), 10)
    with pytest.raises(ValueError, match=r"n=5 is fewer than the 10 classes.*10..100"):
        data.stratified_subset(np.arange(100), y, 5)


@pytest.mark.parametrize("counts, fraction", [([10] * 10, 0.15), ([7, 13, 2, 40], 0.1), ([2] * 5, 0.5),
                                              ([50, 50], 0.33)])
def test_split_holds_out_exactly_the_fraction_asked(counts, fraction):
    y = np.repeat(np.arange(len(counts)), counts)
    x = np.arange(len(y))
    (xa, ya), (xb, yb) = data.train_val_split(x, y, fraction, seed=2)
    assert len(xb) == round(fraction * len(y)) and len(xa) + len(xb) == len(y)
    assert set(xa.tolist()).isdisjoint(xb.tolist())
    assert set(ya.tolist()) == set(range(len(counts)))  # every class keeps training samples
    ideal = np.array(counts) * len(xb) / len(y)
    assert np.all(np.abs(np.bincount(yb, minlength=len(counts)) - ideal) < 1)


def test_split_that_would_empty_a_class_or_a_part_is_refused():
    one_each = np.arange(10)
    with pytest.raises(ValueError, match=r"no training sample of 1 class\(es\).*1 sample\(s\).*at least 2"):
        data.train_val_split(one_each[:, None], one_each, 0.1)
    y = np.repeat(np.arange(10), 5)
    with pytest.raises(ValueError, match=r"val_fraction=0.005 of 50 samples rounds to 0"):
        data.train_val_split(np.arange(50), y, 0.005)
    with pytest.raises(ValueError, match=r"fraction=0.999 of 50 samples rounds to 50"):
        data.stratified_indices(y, 0.999)
