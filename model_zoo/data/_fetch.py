"""Locate a raw data file: a local mirror if one is set, otherwise the official source.

Resolution order for the mirror: the ``mirror`` argument, then the environment variable
``GAPBENCH_DATA_MIRROR``. With a mirror, the file is read from ``<mirror>/<folder>/<name>``
and never downloaded (a missing file is an error, so offline runs stay offline). Without one,
the file is downloaded once from its official URL into ``<cache>/raw/<folder>/`` (atomically).

Integrity is checked at two levels:

1. The file itself: a mirror copy must match the sha256 recorded here (computed from the
   project's mirror). An official download is checked against the checksum its publisher gives
   where the official bytes are stable (Fashion-MNIST's published md5). The FSDD GitHub archive
   is generated on request and the mirror copies were re-packed (their bytes differ from the
   official files), so those downloads have no file checksum.
2. The content every loader parses (decompressed idx payloads, wav members, newsgroup documents)
   is hashed with :class:`ContentDigest` and compared with the digest of the mirror's content,
   whatever the source. This is what makes an official download verifiable even when its file
   bytes are not stable, and it is stricter than counting files (the FSDD loader also checks
   the number of wav files per speaker and digit).
3. The prepared arrays themselves (:func:`array_sha256`), where a task records them: this is
   what verifies a copy that was re-encoded on its way (Fashion-MNIST from the Hugging Face
   Hub arrives as PNG images in parquet files, not as idx files).

Source selection (:func:`resolve_source`): the mirror whenever one is set; otherwise the
``source`` argument or env ``GAPBENCH_DATA_SOURCE``: ``"url"`` (default: the publisher's own
download) or ``"hub"`` (the publisher's copy on the Hugging Face Hub, loaded with ``datasets``;
only tasks whose publisher put it there have one).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from model_zoo import paths

MIRROR_ENV = paths.MIRROR_ENV
SOURCE_ENV = "GAPBENCH_DATA_SOURCE"
SOURCES = ("url", "hub")
_CHUNK = 1 << 20


class ChecksumError(ValueError):
    """A raw file or its parsed content does not match the recorded checksum."""


@dataclass(frozen=True)
class RawFile:
    """One raw file of a data set, where to find it and how to verify it."""

    folder: str  # folder inside the mirror, e.g. "fashion-mnist"
    name: str  # file name inside that folder
    mirror_sha256: str  # sha256 of the mirror copy
    url: str  # official source
    download_name: str  # file name under <cache>/raw/<folder>/ for an official download
    official_checksum: tuple[str, str] | None = None  # (hashlib algorithm, hex) of the official file


def resolve_mirror(mirror: str | os.PathLike[str] | None) -> Path | None:
    """The mirror folder to use: ``mirror`` if given, else ``$GAPBENCH_DATA_MIRROR``, else None."""
    if mirror is not None:
        return Path(mirror).expanduser().resolve()
    return paths.data_mirror()


def resolve_source(source: str | None) -> str:
    """The download source when no mirror is set: ``source``, else ``$GAPBENCH_DATA_SOURCE``, else "url"."""
    value = source if source is not None else (os.environ.get(SOURCE_ENV) or "url")
    if value not in SOURCES:
        where = "source argument" if source is not None else f"${SOURCE_ENV}"
        raise ValueError(f"unknown data source {value!r} (from the {where}); expected one of {', '.join(SOURCES)}")
    return value


def require_url_source(task: str, source: str | None, mirror: str | os.PathLike[str] | None) -> None:
    """Raise ValueError (one line) if a task without a Hub copy is asked for source "hub" (no mirror set)."""
    if resolve_mirror(mirror) is None and resolve_source(source) == "hub":
        raise ValueError(
            f"task {task!r} has no copy on the Hugging Face Hub from its publisher (data source 'hub'); "
            f"use source 'url' (its official download) or set ${MIRROR_ENV} to a local mirror"
        )


def file_digest(path: Path, algorithm: str = "sha256") -> str:
    """Hex digest of a file's bytes, read in chunks."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify_file(path: Path, algorithm: str, expected: str) -> None:
    """Raise :class:`ChecksumError` naming ``path`` if its digest differs from ``expected``."""
    actual = file_digest(path, algorithm)
    if actual != expected:
        raise ChecksumError(
            f"{algorithm} mismatch for {path}: expected {expected}, got {actual}. "
            "The file is corrupted or not the expected version; delete it (if downloaded) "
            f"or replace the mirror copy (${MIRROR_ENV})."
        )


class ContentDigest:
    """sha256 over named byte strings, independent of how they were packed or compressed.

    Each item contributes ``len(name) | name | len(data) | data`` (lengths as 8-byte big-endian
    integers), so that items cannot run into one another. Callers feed items in a fixed
    (sorted) order.
    """

    def __init__(self) -> None:
        self._hash = hashlib.sha256()
        self.count = 0

    def update(self, name: str, data: bytes | memoryview | np.ndarray) -> None:
        """Add one item; ``data`` is any C-contiguous bytes-like object (hashed without a copy)."""
        view = memoryview(data).cast("B") if not isinstance(data, bytes) else data
        encoded = name.encode("utf-8")
        self._hash.update(len(encoded).to_bytes(8, "big") + encoded)
        self._hash.update(len(view).to_bytes(8, "big"))
        self._hash.update(view)
        self.count += 1

    def hexdigest(self) -> str:
        return self._hash.hexdigest()


def array_sha256(array: np.ndarray) -> str:
    """sha256 of an array's dtype, shape and C-order bytes (a ContentDigest of one item)."""
    array = np.ascontiguousarray(array)
    digest = ContentDigest()
    digest.update(f"{array.dtype.str}{list(array.shape)}", array.reshape(-1).view(np.uint8))
    return digest.hexdigest()


def verify_arrays(what: str, source: str, arrays: dict[str, np.ndarray], expected: dict[str, str]) -> None:
    """Raise :class:`ChecksumError` (one line) if an array named in ``expected`` has another digest."""
    for name, want in expected.items():
        got = array_sha256(arrays[name]) if name in arrays else "<missing>"
        if got != want:
            raise ChecksumError(
                f"{what} from {source}: array {name!r} has sha256 {got}, expected {want}. The data differ "
                f"from the version this project was built on; use the project's data mirror (set ${MIRROR_ENV})."
            )


def verify_content(what: str, source: Path, actual: str, expected: str) -> None:
    """Raise :class:`ChecksumError` if the digest of ``source``'s parsed content differs."""
    if actual != expected:
        raise ChecksumError(
            f"content sha256 mismatch for {what} read from {source}: expected {expected}, "
            f"got {actual}. The data differ from the version this project was built on; "
            f"use the project's data mirror (set ${MIRROR_ENV})."
        )


def fetch(
    raw: RawFile,
    *,
    mirror: str | os.PathLike[str] | None = None,
    cache_dir: Path | None = None,
) -> Path:
    """Return a verified local path of ``raw``: from the mirror, or downloaded into the cache.

    Raises FileNotFoundError (naming the path looked for) when a mirror is set but lacks the
    file, ChecksumError on a checksum mismatch, and ConnectionError when a download fails.
    """
    root = resolve_mirror(mirror)
    if root is not None:
        path = root / raw.folder / raw.name
        if not path.is_file():
            raise FileNotFoundError(
                f"raw data file not found: {path}. Point the mirror argument or ${MIRROR_ENV} "
                f"at a folder holding {raw.folder}/{raw.name} (the project's mirror is "
                f"../shared/data), or unset it to download from {raw.url}."
            )
        verify_file(path, "sha256", raw.mirror_sha256)
        return path

    dest = paths.raw_download_dir(cache_dir) / raw.folder / raw.download_name
    if not dest.is_file():
        download(raw.url, dest)
    if raw.official_checksum is not None:
        verify_file(dest, *raw.official_checksum)
    return dest


def download(url: str, dest: Path, *, timeout: float = 60.0) -> None:
    """Download ``url`` to ``dest`` atomically (temporary file in the same folder, then rename)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as response:
            shutil.copyfileobj(response, out, _CHUNK)
        os.replace(tmp_name, dest)
    except (urllib.error.URLError, OSError) as exc:
        Path(tmp_name).unlink(missing_ok=True)
        raise ConnectionError(
            f"could not download {url} to {dest}: {exc}. Without internet access, set "
            f"${MIRROR_ENV} to a local mirror of the data (the project's is ../shared/data)."
        ) from exc


def one_line(exc: BaseException) -> str:
    """An exception as one line: its type and its message with newlines folded."""
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def hub_dataset(repo: str, *, revision: str | None = None, cache_dir: Path | None = None) -> Any:
    """Load ``repo`` from the Hugging Face Hub with ``datasets.load_dataset`` (a DatasetDict).

    Downloads go to ``<cache>/raw/hub``. Raises ImportError (one line) without ``datasets`` and
    ConnectionError (one line, naming the repository and the mirror variable) when the Hub
    cannot be reached or has no such dataset.
    """
    try:
        import datasets  # optional on GPU boxes: imported only for source "hub"
    except ImportError:
        raise ImportError(
            f"data source 'hub' needs the `datasets` package to load {repo} (pip install datasets), "
            f"or set ${MIRROR_ENV} to a local mirror"
        ) from None
    where = paths.raw_download_dir(cache_dir) / "hub"
    try:
        return datasets.load_dataset(repo, revision=revision, cache_dir=str(where))
    except OSError as exc:  # ConnectionError, offline mode, DatasetNotFoundError (a FileNotFoundError)
        raise ConnectionError(
            f"could not load {repo} from the Hugging Face Hub ({one_line(exc)}). Without internet access, "
            f"set ${MIRROR_ENV} to a local mirror of the data (the project's is ../shared/data)."
        ) from exc
