"""CIFAR-10 on this machine: where a copy may be, and loading it (downloaded through Keras only when none is found).

:func:`load_cifar10` looks at ``data_dir``, ``$CNNKIT_DATA_DIR`` and Keras' cache,
in that order, and reads the first copy found with :mod:`cnnkit.cifar10_files`.
"""
from __future__ import annotations

import os
from pathlib import Path

from cnnkit._validate import boolean
from cnnkit.cifar10_files import ARCHIVE, FOLDER, CorruptDataError, read_cifar10

CLASS_NAMES = (
    "airplane", "automobile", "bird", "cat", "deer",
    "dog", "frog", "horse", "ship", "truck",
)
CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_SHA256 = "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce"


class DataNotFoundError(FileNotFoundError):
    """CIFAR-10 was found in none of the places looked at, and could not be downloaded."""


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
            return read_cifar10(place)
    problem = "downloading was switched off (download=False)"
    if download:
        try:
            import keras  # only to download: reading a local copy (every lesson's case) needs no TensorFlow

            target = keras.utils.get_file(
                fname="cifar-10-batches-py-target", origin=CIFAR10_URL, extract=True, file_hash=CIFAR10_SHA256
            )
            return read_cifar10(Path(target) / FOLDER)
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


