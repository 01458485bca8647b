"""Datasets for the lessons: CIFAR-10 (read safely, never downloaded silently twice) and an offline stand-in.

Shapes and dtypes everywhere: images ``uint8`` of shape (N, 32, 32, 3) (NHWC,
0..255), labels ``int64`` of shape (N,) with values 0..9.

* :func:`load_cifar10` reads the official python layout (a ``cifar-10-batches-py``
  folder or ``cifar-10-python.tar.gz``) from ``data_dir``, ``$CNNKIT_DATA_DIR``
  or Keras' cache, and downloads through Keras only when none of them has it.
  The pickled batches are read with a restricted unpickler that admits nothing
  but the numpy array reconstruction, so a data file cannot run code.
* :func:`make_offline` generates, deterministically, ten classes of synthetic
  32x32 colour pictures (shapes and textures) with CIFAR-10's shapes and dtypes,
  for machines with no network. It is only ever used when asked for:
  ``load_dataset("offline")`` or ``CNNKIT_DATASET=offline``.
* :func:`train_val_split` and :func:`stratified_subset` split and shrink data
  with every class kept in proportion, from a seed.
"""
from __future__ import annotations

import io
import os
import pickle
import tarfile
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from cnnkit._validate import boolean, check_array_bytes, integer, non_negative_int, real

CLASS_NAMES = (
    "airplane", "automobile", "bird", "cat", "deer",
    "dog", "frog", "horse", "ship", "truck",
)
OFFLINE_CLASS_NAMES = (
    "circle", "ring", "square", "diamond", "cross",
    "horizontal stripes", "vertical stripes", "diagonal stripes", "checkerboard", "dots",
)
DATASETS = ("cifar10", "offline")
CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_SHA256 = "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce"
FOLDER = "cifar-10-batches-py"
ARCHIVE = "cifar-10-python.tar.gz"
TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCH = "test_batch"
# An official batch file is about 31.0 MB (10,000 images of 3,072 bytes, their labels and
# file names); a file or archive member larger than this is not a CIFAR-10 batch and is
# refused from its size alone, before a byte of it is read.
MAX_BATCH_BYTES = 32 * 1024**2


class DataNotFoundError(FileNotFoundError):
    """CIFAR-10 was found in none of the places looked at, and could not be downloaded."""


class CorruptDataError(ValueError):
    """A data file exists but is truncated, altered or not CIFAR-10."""


# --------------------------------------------------------------------------- containers


@dataclass(frozen=True, repr=False)
class Dataset:
    """Train and test arrays with their class names and where they came from.

    Unpacks like Keras' loaders: ``(x_train, y_train), (x_test, y_test) = dataset``.
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: tuple[str, ...]
    source: str = field(default="")

    def __iter__(self):
        yield (self.x_train, self.y_train)
        yield (self.x_test, self.y_test)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def describe(self) -> str:
        """One line: which dataset, from where, how many images of which shape."""
        return (
            f"dataset: {self.name} ({self.source}) | train {self.x_train.shape} {self.x_train.dtype}"
            f" | test {self.x_test.shape} | {self.num_classes} classes"
        )

    def __repr__(self) -> str:
        return f"<Dataset {self.describe()}>"


# --------------------------------------------------------------------------- safe unpickling


def _numpy_globals():
    from numpy._core import multiarray

    allowed = {}
    for module in ("numpy.core.multiarray", "numpy._core.multiarray"):
        allowed[(module, "_reconstruct")] = multiarray._reconstruct
        allowed[(module, "scalar")] = multiarray.scalar
    import codecs

    # protocol-2 pickles written by Python 3 spell bytes as _codecs.encode(text, "latin1")
    allowed[("_codecs", "encode")] = codecs.encode
    allowed[("numpy", "ndarray")] = np.ndarray
    allowed[("numpy", "dtype")] = np.dtype
    return allowed


class _ArraysOnlyUnpickler(pickle.Unpickler):
    """An unpickler that admits only what numpy arrays need; any other global is refused."""

    _allowed = None

    def find_class(self, module, name):
        if _ArraysOnlyUnpickler._allowed is None:
            _ArraysOnlyUnpickler._allowed = _numpy_globals()
        try:
            return self._allowed[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"refusing to load {module}.{name}: a CIFAR-10 batch holds only arrays, lists and bytes"
            ) from None


def safe_unpickle(data: bytes):
    """Unpickle ``data`` admitting only dicts, lists, numbers, bytes and numpy arrays."""
    return _ArraysOnlyUnpickler(io.BytesIO(data), encoding="bytes").load()


def _batch_arrays(data: bytes, where: str) -> tuple[np.ndarray, np.ndarray]:
    """Decode one pickled CIFAR-10 batch into (images NHWC uint8 (a view), labels int64), validating it."""
    try:
        batch = safe_unpickle(data)
    except Exception as exc:
        raise CorruptDataError(
            f"{where} is not a readable CIFAR-10 batch ({type(exc).__name__}: {exc}); "
            "the file is truncated or altered: delete it and fetch the official archive again"
        ) from None
    if not isinstance(batch, dict):
        raise CorruptDataError(f"{where}: expected a pickled dict, found {type(batch).__name__}")
    keys = {k.decode() if isinstance(k, bytes) else k: v for k, v in batch.items()}
    if "data" not in keys or "labels" not in keys:
        raise CorruptDataError(f"{where}: missing 'data' or 'labels' (keys found: {sorted(map(str, keys))})")
    flat = keys["data"]
    if not isinstance(flat, np.ndarray) or flat.dtype != np.uint8 or flat.ndim != 2 or flat.shape[1] != 3072:
        shape = getattr(flat, "shape", None)
        dtype = getattr(flat, "dtype", type(flat).__name__)
        raise CorruptDataError(f"{where}: 'data' must be uint8 of shape (N, 3072), found {dtype} {shape}")
    labels = np.asarray(keys["labels"])
    if labels.shape != (flat.shape[0],) or not np.issubdtype(labels.dtype, np.integer):
        raise CorruptDataError(
            f"{where}: expected {flat.shape[0]} integer labels, found {labels.dtype} of shape {labels.shape}"
        )
    if labels.size and (labels.min() < 0 or labels.max() > 9):
        raise CorruptDataError(f"{where}: labels must lie in 0..9, found {labels.min()}..{labels.max()}")
    return flat.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), labels.astype(np.int64)  # a view: the caller copies


def _check_batch_size(size: int, where: str) -> None:
    if size > MAX_BATCH_BYTES:
        raise CorruptDataError(
            f"{where} is {size:,} bytes, more than a CIFAR-10 batch can be ({MAX_BATCH_BYTES:,} bytes at most; "
            "the official ones are about 31.0 MB): the file is not CIFAR-10, delete it and fetch the official archive"
        )


def _read_folder(folder: Path):
    """Yield (batch name, bytes) of a CIFAR-10 folder, one batch at a time (sizes checked first)."""
    names = (*TRAIN_BATCHES, TEST_BATCH)
    missing = [n for n in names if not (folder / n).is_file()]
    if missing:
        raise CorruptDataError(f"{folder} lacks {', '.join(missing)}: it is not a complete CIFAR-10 folder")
    for n in names:
        _check_batch_size((folder / n).stat().st_size, str(folder / n))
    for n in names:
        yield n, (folder / n).read_bytes()


def _read_archive(archive: Path):
    """Yield (batch name, bytes) of a CIFAR-10 tar.gz archive, one batch at a time, in the archive's order."""
    wanted = {f"{FOLDER}/{n}": n for n in (*TRAIN_BATCHES, TEST_BATCH)}
    found: set[str] = set()
    try:
        with tarfile.open(archive, "r:*") as tar:
            for member in tar:
                short = wanted.get(member.name.lstrip("./"))
                if short and member.isfile():
                    _check_batch_size(member.size, f"{archive}:{member.name}")  # from the header, before reading
                    found.add(short)
                    yield short, tar.extractfile(member).read()
    except (tarfile.TarError, EOFError, OSError, ValueError) as exc:
        raise CorruptDataError(
            f"{archive} cannot be read as a tar.gz archive ({type(exc).__name__}: {exc}); "
            "it is truncated or altered: delete it and download it again"
        ) from None
    missing = [n for n in (*TRAIN_BATCHES, TEST_BATCH) if n not in found]
    if missing:
        raise CorruptDataError(f"{archive} lacks {', '.join(f'{FOLDER}/{m}' for m in missing)}")


BATCH_SIZE = 10_000  # images in each official batch file


def _assemble(raw, where: Path) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Decode the batches as they are read, each copied at once into its place in the training array.

    Peak memory: the data set plus one batch. Batches of another size than the
    official 10,000 images are kept and joined at the end instead.
    """
    x_train = None   # allocated with the first batch read, so a file refused at once costs nothing
    labels_of: dict[str, np.ndarray] = {}
    odd: dict[str, np.ndarray] = {}
    test = None
    for name, data in raw:
        label = f"{where}/{name}" if where.is_dir() else f"{where}:{FOLDER}/{name}"
        images, labels = _batch_arrays(data, label)
        del data
        if name == TEST_BATCH:
            test = (np.ascontiguousarray(images), labels)
        elif len(labels) == BATCH_SIZE:
            if x_train is None:
                x_train = np.empty((len(TRAIN_BATCHES) * BATCH_SIZE, 32, 32, 3), dtype=np.uint8)
            start = TRAIN_BATCHES.index(name) * BATCH_SIZE
            x_train[start:start + BATCH_SIZE] = images
            labels_of[name] = labels
        else:
            odd[name], labels_of[name] = np.ascontiguousarray(images), labels
        del images
    y_train = np.concatenate([labels_of[n] for n in TRAIN_BATCHES])
    if odd:   # not the official layout: join the batches in order
        x_train = np.concatenate([odd[n] if n in odd else x_train[i * BATCH_SIZE:(i + 1) * BATCH_SIZE]
                                  for i, n in enumerate(TRAIN_BATCHES)])
    return (x_train, y_train), test


def _candidates(path: Path) -> list[Path]:
    """The places inside ``path`` where the official layout may sit."""
    if path.name == FOLDER:
        return [path]
    if path.name.endswith((".tar.gz", ".tgz", ".tar")):
        return [path]
    return [path / FOLDER, path / ARCHIVE]


def keras_cache_dir() -> Path:
    """Keras' dataset cache: ``$KERAS_HOME/datasets`` or ``~/.keras/datasets``."""
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    return Path(home) / "datasets"


def _keras_cache_candidates() -> list[Path]:
    cache = keras_cache_dir()
    return [cache / "cifar-10-batches-py-target" / FOLDER, cache / FOLDER, cache / ARCHIVE]


def find_cifar10(data_dir: str | os.PathLike | None = None) -> Path | None:
    """Return the first local copy of CIFAR-10 (folder or archive) or None. Nothing is read or downloaded.

    Raises :class:`DataNotFoundError` when ``data_dir`` (or ``$CNNKIT_DATA_DIR``) names a
    folder that does not exist: a mistyped path is reported, not skipped.
    """
    for place in _search_places(data_dir):
        if place.exists():
            return place
    return None


def _given_dir(data_dir) -> Path | None:
    """The folder the caller chose: ``data_dir``, else ``$CNNKIT_DATA_DIR``, else None; it must exist."""
    if data_dir is not None:
        if not isinstance(data_dir, (str, os.PathLike)):
            raise TypeError(f"data_dir must be a path (str or os.PathLike) or None, got {data_dir!r}")
        source = f"data_dir {os.fspath(data_dir)!r}"
        path = Path(data_dir).expanduser()
    elif os.environ.get("CNNKIT_DATA_DIR"):
        source = f"CNNKIT_DATA_DIR={os.environ['CNNKIT_DATA_DIR']!r}"
        path = Path(os.environ["CNNKIT_DATA_DIR"]).expanduser()
    else:
        return None
    if not path.exists():
        raise DataNotFoundError(f"{source} does not exist: point it at the folder that holds {ARCHIVE} or {FOLDER}/")
    return path


def _search_places(data_dir) -> list[Path]:
    given = _given_dir(data_dir)
    places: list[Path] = _candidates(given) if given is not None else []
    return places + _keras_cache_candidates()


def _read_place(place: Path):
    raw = _read_folder(place) if place.is_dir() else _read_archive(place)
    return _assemble(raw, place)


def load_cifar10(data_dir: str | os.PathLike | None = None, *, download: bool = True):
    """Load CIFAR-10 as ``(x_train, y_train), (x_test, y_test)``.

    Shapes: x_train (50000, 32, 32, 3) uint8, y_train (50000,) int64, x_test
    (10000, 32, 32, 3), y_test (10000,). Looks, in order, at

    1. ``data_dir`` (or, when it is None, ``$CNNKIT_DATA_DIR``): a
       ``cifar-10-batches-py`` folder or ``cifar-10-python.tar.gz`` inside it,
       or the folder/archive itself; a path that does not exist raises
       :class:`DataNotFoundError` at once, naming it;
    2. Keras' cache (``~/.keras/datasets``);
    3. a download through ``keras.utils.get_file`` (checked against the
       official SHA-256), unless ``download=False``.

    Raises :class:`DataNotFoundError` listing every place looked at and both
    remedies, or :class:`CorruptDataError` naming a damaged file.
    """
    download = boolean(download, "download")
    looked = _search_places(data_dir)
    for place in looked:
        if place.exists():
            return _read_place(place)
    problem = "downloading was switched off (download=False)"
    if download:
        try:
            import keras

            target = keras.utils.get_file(
                fname="cifar-10-batches-py-target", origin=CIFAR10_URL, extract=True, file_hash=CIFAR10_SHA256
            )
            return _read_place(Path(target) / FOLDER)
        except CorruptDataError:
            raise
        except Exception as exc:  # no network, proxy, disk full, ...
            problem = f"the download from {CIFAR10_URL} failed ({type(exc).__name__}: {exc})"
    listing = "\n".join(f"  - {p}" for p in looked)
    raise DataNotFoundError(
        "CIFAR-10 was not found. Looked at:\n"
        f"{listing}\nand {problem}.\n"
        "Remedies: (1) connect to the network and call load_cifar10() again, which downloads it "
        "into Keras' cache; or (2) download cifar-10-python.tar.gz from "
        "https://www.cs.toronto.edu/~kriz/cifar.html, put it in a folder DIR and pass "
        "data_dir=DIR or set CNNKIT_DATA_DIR=DIR. Without either, use the offline dataset: "
        "load_dataset('offline') or CNNKIT_DATASET=offline."
    )


# --------------------------------------------------------------------------- offline dataset


def _offline_masks(kind: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Boolean foreground masks (N, 32, 32) for the class ids in ``kind``; positions and sizes vary."""
    n = kind.shape[0]
    yy, xx = np.mgrid[0:32, 0:32].astype(np.float32)
    yy, xx = yy[None], xx[None]
    draws = {
        "cy": rng.uniform(10, 22, n), "cx": rng.uniform(10, 22, n), "r": rng.uniform(6, 10, n),
        "width": rng.uniform(1.5, 3.0, n), "period": rng.uniform(5, 9, n), "phase": rng.uniform(0, 2 * np.pi, n),
    }
    masks = np.zeros((n, 32, 32), dtype=bool)
    for k in range(10):
        idx = np.flatnonzero(kind == k)
        p = {name: v[idx].astype(np.float32)[:, None, None] for name, v in draws.items()}
        dy, dx = yy - p["cy"], xx - p["cx"]
        r, width, phase = p["r"], p["width"], p["phase"]
        wave = 2 * np.pi / p["period"]
        if k == 0:
            m = dy**2 + dx**2 < r**2
        elif k == 1:
            d2 = dy**2 + dx**2
            m = (d2 < r**2) & (d2 > (r - 2 * width) ** 2)
        elif k == 2:
            m = np.maximum(np.abs(dy), np.abs(dx)) < r * 0.8
        elif k == 3:
            m = np.abs(dy) + np.abs(dx) < r
        elif k == 4:
            m = ((np.abs(dx) < width) & (np.abs(dy) < r)) | ((np.abs(dy) < width) & (np.abs(dx) < r))
        elif k == 5:
            m = np.sin(wave * yy + phase) > 0
        elif k == 6:
            m = np.sin(wave * xx + phase) > 0
        elif k == 7:
            m = np.sin(wave * (xx + yy) / np.sqrt(2) + phase) > 0
        elif k == 8:
            m = np.sin(wave * xx + phase) * np.sin(wave * yy + phase) > 0
        else:
            cell = np.floor(p["period"] * 1.2)
            m = ((np.mod(xx + phase, cell) - cell / 2) ** 2 + (np.mod(yy + phase, cell) - cell / 2) ** 2) < (cell / 4) ** 2
        masks[idx] = m
    return masks


@lru_cache(maxsize=4)
def make_offline(n_train: int = 10000, n_test: int = 2000, seed: int = 0):
    """Generate the offline dataset: ``(x_train, y_train), (x_test, y_test)``.

    Ten balanced classes (:data:`OFFLINE_CLASS_NAMES`) of 32x32 RGB uint8
    pictures: a shape or texture in one random colour on a background of a
    contrasting random colour, at a random place and size, with pixel noise.
    Colour says nothing about the class; only the spatial pattern does, so a
    small CNN must learn shapes to score well. Deterministic for a given seed.
    """
    for value, name in ((n_train, "n_train"), (n_test, "n_test")):
        integer(value, name, minimum=10)  # one image per class at least
        check_array_bytes((value, 32, 32, 3), np.float32, f"the offline images ({name}={value})")
    rng = np.random.default_rng(non_negative_int(seed, "seed"))
    out = []
    for n in (n_train, n_test):
        labels = np.arange(n) % 10
        rng.shuffle(labels)
        masks = _offline_masks(labels, rng)
        background = rng.uniform(0, 255, (n, 1, 1, 3)).astype(np.float32)
        foreground = np.mod(background + 128 + rng.uniform(-40, 40, (n, 1, 1, 3)).astype(np.float32), 256)
        images = np.where(masks[..., None], foreground, background)
        images += rng.standard_normal(images.shape, dtype=np.float32) * 14
        out.append((np.clip(images, 0, 255).astype(np.uint8), labels.astype(np.int64)))
    for arrays in out:
        for a in arrays:
            a.setflags(write=False)
    return tuple(out)


def load_dataset(name: str | None = None, data_dir: str | os.PathLike | None = None, *, download: bool = True) -> Dataset:
    """Load a dataset by name: ``"cifar10"`` (the default) or ``"offline"``.

    With ``name=None`` the environment variable ``CNNKIT_DATASET`` decides, and
    CIFAR-10 is used when it is unset. The offline dataset is never substituted
    silently: a missing CIFAR-10 raises :class:`DataNotFoundError`.
    """
    if name is not None and not isinstance(name, str):
        raise TypeError(f"name must be a dataset name ({', '.join(DATASETS)}) or None, got {name!r}")
    chosen = (name or os.environ.get("CNNKIT_DATASET") or "cifar10").strip().lower().replace("-", "")
    if chosen not in DATASETS:
        where = "" if name else " (from CNNKIT_DATASET)"
        raise ValueError(f"unknown dataset {name or chosen!r}{where}; expected one of {', '.join(DATASETS)}")
    if chosen == "offline":
        (xtr, ytr), (xte, yte) = make_offline()
        return Dataset("offline", xtr, ytr, xte, yte, OFFLINE_CLASS_NAMES, "generated by cnnkit.data.make_offline")
    source = find_cifar10(data_dir)
    (xtr, ytr), (xte, yte) = load_cifar10(data_dir, download=download)
    where = str(source) if source is not None else f"downloaded to {keras_cache_dir()}"
    return Dataset("cifar10", xtr, ytr, xte, yte, CLASS_NAMES, where)


# --------------------------------------------------------------------------- splits


def _check_xy(x, y):
    x, y = np.asarray(x), np.asarray(y)
    if y.ndim != 1:
        raise ValueError(f"labels must have shape (N,), got {y.shape}")
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"x has {x.shape[0]} samples but y has {y.shape[0]}")
    return x, y


def _stratified_choice(y: np.ndarray, n_chosen: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (rest, chosen) with exactly ``n_chosen`` chosen, shared among the classes in proportion.

    Class c with ``n_c`` of the N samples gets ``floor(n_c * n_chosen / N)`` indices, and
    the indices still missing go one each to the classes with the largest remainders
    (ties broken at random from ``seed``), so the counts add up to ``n_chosen`` exactly.
    """
    rng = np.random.default_rng(seed)
    classes, labels = np.unique(y, return_inverse=True)
    counts = np.bincount(labels, minlength=len(classes))
    quotas, remainders = np.divmod(counts * n_chosen, len(y))
    missing = n_chosen - int(quotas.sum())
    order = np.lexsort((rng.random(len(classes)), -remainders))  # largest remainder first
    quotas[order[:missing]] += 1
    chosen, rest = [], []
    for k in range(len(classes)):
        idx = rng.permutation(np.flatnonzero(labels == k))
        chosen.append(idx[:quotas[k]])
        rest.append(idx[quotas[k]:])
    return rng.permutation(np.concatenate(rest)), rng.permutation(np.concatenate(chosen))


def stratified_indices(y, fraction: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Split indices 0..N-1 into (rest, chosen) with ``fraction`` of every class chosen.

    ``chosen`` holds exactly ``round(fraction * N)`` indices, shared among the classes
    in proportion to their sizes (largest remainder: each class gets
    ``fraction * n_class`` rounded down or up). Both outputs are shuffled with
    ``seed``. Raises ValueError when the fraction rounds to no index or to all of them.
    """
    y = np.asarray(y)
    if y.ndim != 1:
        raise ValueError(f"labels must have shape (N,), got {y.shape}")
    return _stratified_choice(y, _count_of(fraction, len(y), "fraction"), non_negative_int(seed, "seed"))


def _count_of(fraction, n: int, name: str) -> int:
    """``round(fraction * n)``, checking that 0 < fraction < 1 and that both parts keep a sample."""
    fraction = real(fraction, name, low=0.0, high=1.0, low_open=True, high_open=True)
    count = int(round(fraction * n))
    if not 0 < count < n:
        raise ValueError(f"{name}={fraction} of {n} samples rounds to {count}: both parts must keep at least one "
                         f"sample (use a {name} between {0.5 / max(n, 1):.3g} and {1 - 0.5 / max(n, 1):.3g}, "
                         "or more samples)")
    return count


def train_val_split(x, y, val_fraction: float = 0.1, seed: int = 0):
    """Stratified split: ``(x_train, y_train), (x_val, y_val)``, ``val_fraction`` of each class held out.

    The validation split has exactly ``round(val_fraction * N)`` samples (see
    :func:`stratified_indices`). Raises ValueError, naming the class, when a class
    would lose all of its samples to the validation split.
    """
    x, y = _check_xy(x, y)
    n_val = _count_of(val_fraction, len(y), "val_fraction")
    train_idx, val_idx = _stratified_choice(y, n_val, non_negative_int(seed, "seed"))
    classes, counts = np.unique(y, return_counts=True)
    kept = dict(zip(*np.unique(y[train_idx], return_counts=True)))
    lost = [c for c in classes if c not in kept]
    if lost:
        sizes = ", ".join(f"class {c}: {counts[classes == c][0]} sample(s)" for c in lost[:5])
        raise ValueError(f"val_fraction={val_fraction} would leave no training sample of {len(lost)} class(es) "
                         f"({sizes}); every class needs at least 2 samples for a stratified split")
    return (x[train_idx], y[train_idx]), (x[val_idx], y[val_idx])


def stratified_subset(x, y, n: int, seed: int = 0):
    """Return ``(x_sub, y_sub)``: exactly ``n`` samples, every class in proportion, chosen with ``seed``.

    Class c gets ``n * n_c / N`` samples rounded down or up (largest remainder), so
    the counts add up to ``n``. Raises ValueError when ``n`` is not in
    ``classes .. N`` (a subset smaller than the number of classes would lose some).
    """
    x, y = _check_xy(x, y)
    n = integer(n, "n", minimum=1, maximum=len(y))
    seed = non_negative_int(seed, "seed")
    n_classes = len(np.unique(y))
    if n < n_classes:
        raise ValueError(f"n={n} is fewer than the {n_classes} classes: a stratified subset keeps every class, "
                         f"so n must be in {n_classes}..{len(y)} (for a few arbitrary samples, slice x[:n])")
    if n == len(y):
        return x, y
    _, idx = _stratified_choice(y, n, seed)
    return x[idx], y[idx]
