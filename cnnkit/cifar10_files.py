"""The official CIFAR-10 python files, read safely: batch layout, a restricted unpickler, folder and archive readers.

Shapes and dtypes: images ``uint8`` of shape (N, 32, 32, 3) (NHWC, 0..255),
labels ``int64`` of shape (N,) with values 0..9. The pickled batches are read
with a restricted unpickler that admits nothing but the numpy array
reconstruction, so a data file cannot run code; a file or archive member larger
than a batch can be is refused from its size alone, before it is read.
"""
from __future__ import annotations

import io
import pickle
import tarfile
from pathlib import Path

import numpy as np

FOLDER = "cifar-10-batches-py"
ARCHIVE = "cifar-10-python.tar.gz"
TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCH = "test_batch"
# An official batch file is about 31.0 MB (10,000 images of 3,072 bytes, their labels and
# file names); a file or archive member larger than this is not a CIFAR-10 batch and is
# refused from its size alone, before a byte of it is read.
MAX_BATCH_BYTES = 32 * 1024**2


class CorruptDataError(ValueError):
    """A data file exists but is truncated, altered or not CIFAR-10."""


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


def read_cifar10(place: Path):
    """Read a ``cifar-10-batches-py`` folder or a tar.gz archive: ``(x_train, y_train), (x_test, y_test)``."""
    raw = _read_folder(place) if place.is_dir() else _read_archive(place)
    return _assemble(raw, place)
