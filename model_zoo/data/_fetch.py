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

from model_zoo import paths

MIRROR_ENV = paths.MIRROR_ENV
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

    def update(self, name: str, data: bytes) -> None:
        encoded = name.encode("utf-8")
        self._hash.update(len(encoded).to_bytes(8, "big") + encoded)
        self._hash.update(len(data).to_bytes(8, "big"))
        self._hash.update(data)
        self.count += 1

    def hexdigest(self) -> str:
        return self._hash.hexdigest()


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
