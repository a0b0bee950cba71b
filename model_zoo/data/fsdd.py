"""Free Spoken Digit Dataset (commit 26eb9aa): 8 kHz spoken digits 0-9, 6 speakers x 50 each.

x: float32 ``[N, 1, 8000]``: the waveform (int16 / 32768) zero-padded at the end or cropped to
its first 8000 samples (1 s; the recordings are trimmed to start at the word, and only 20 of
3,000 are longer), then peak-normalised to max |x| = 1.

Splits:
- shift: every clip of the held-out speaker ``theo`` (500), excluded from train and test;
- test: recording index 0-4 of each other speaker and digit (FSDD's official test split; 250);
- train: index 5-49 of the other five speakers (2,250).
Within a split the clips are ordered by (digit, speaker, index).
"""

from __future__ import annotations

import io
import os
import re
import tarfile
from pathlib import Path

import numpy as np

from model_zoo.data import _fetch
from model_zoo.data.base import TaskData, TaskInfo, load_or_prepare, require_arrays

NAME = "fsdd"
PREP_VERSION = 1
SAMPLE_RATE = 8000
N_SAMPLES = 8000
SHIFT_SPEAKER = "theo"
SPEAKERS = ("george", "jackson", "lucas", "nicolas", "theo", "yweweler")
CLIPS_PER_SPEAKER_DIGIT = 50
TEST_INDICES = range(5)  # the official test split: recordings 0-4 of each speaker and digit
_N_TOTAL = len(SPEAKERS) * 10 * CLIPS_PER_SPEAKER_DIGIT
_N_SHIFT = 10 * CLIPS_PER_SPEAKER_DIGIT
_N_TEST = (len(SPEAKERS) - 1) * 10 * len(TEST_INDICES)
_N_TRAIN = _N_TOTAL - _N_SHIFT - _N_TEST
INFO = TaskInfo(
    name=NAME,
    modality="audio",
    n_classes=10,
    input_shape=(1, N_SAMPLES),
    input_dtype="float32",
    has_shift=True,
    extras={
        "sample_rate": SAMPLE_RATE,
        "class_names": [str(d) for d in range(10)],
        "shift": f"held-out speaker {SHIFT_SPEAKER!r}",
        "n_train": _N_TRAIN,
        "n_test": _N_TEST,
        "n_shift": _N_SHIFT,
    },
)

RAW = _fetch.RawFile(
    folder="fsdd",
    name="fsdd-recordings.tar.gz",
    mirror_sha256="f19814a642af455d727161c83a4178f271707ee978e3dd1cf2cf40209f6deb84",
    url="https://github.com/Jakobovski/free-spoken-digit-dataset/archive/26eb9aa.tar.gz",
    download_name="free-spoken-digit-dataset-26eb9aa.tar.gz",
    # GitHub generates the archive on request (its bytes are not stable) and it differs from the
    # mirror's tarball, so the download is verified through CONTENT_SHA256 and the clip counts.
    official_checksum=None,
)
# ContentDigest over (file name, wav bytes) of the 3,000 recordings, sorted by file name.
CONTENT_SHA256 = "6f9f93bcb41589befe6c07a1bb3419a76285a12979f8a3e5ffa1c59ba83518cf"

# The mirror holds recordings/<name>; the GitHub archive <repo>-<commit>/recordings/<name>.
_MEMBER = re.compile(r"(?:^|/)recordings/(([0-9])_([a-z]+)_([0-9]+)\.wav)$")
_ARRAYS = {
    "x_train": ("float32", (_N_TRAIN, 1, N_SAMPLES)),
    "y_train": ("int64", (_N_TRAIN,)),
    "x_test": ("float32", (_N_TEST, 1, N_SAMPLES)),
    "y_test": ("int64", (_N_TEST,)),
    "x_shift": ("float32", (_N_SHIFT, 1, N_SAMPLES)),
    "y_shift": ("int64", (_N_SHIFT,)),
}


def waveform(samples: np.ndarray, *, n_samples: int = N_SAMPLES) -> np.ndarray:
    """Turn wav samples into one float32 example ``[1, n_samples]``.

    Integer PCM is scaled to [-1, 1) (int16 / 2**15; uint8 (x - 128) / 2**7), stereo is averaged,
    the clip is cropped to its first ``n_samples`` or zero-padded at the end, and the result is
    divided by its peak absolute value (a silent clip stays zero).
    """
    x = np.asarray(samples)
    if x.ndim == 2:
        x = x.astype(np.float64).mean(axis=1)
    if x.dtype == np.uint8:
        x = (x.astype(np.float64) - 128.0) / 128.0
    elif np.issubdtype(x.dtype, np.integer):
        x = x.astype(np.float64) / float(-np.iinfo(x.dtype).min)
    else:
        x = x.astype(np.float64)
    out = np.zeros(n_samples, dtype=np.float64)
    n = min(n_samples, x.shape[0])
    out[:n] = x[:n]
    peak = np.abs(out).max()
    if peak > 0:
        out /= peak
    return out.astype(np.float32)[None, :]


def read_recordings(path: Path) -> list[tuple[int, str, int, np.ndarray]]:
    """Read every ``recordings/{digit}_{speaker}_{index}.wav`` of a tarball.

    Returns ``(digit, speaker, index, samples)`` sorted by (digit, speaker, index), after
    checking the content digest, the sample rate and the per-speaker/digit counts.
    """
    from scipy.io import wavfile  # scipy is heavy; imported only when preparing

    members: dict[str, bytes] = {}
    with tarfile.open(path, "r:*") as archive:
        for member in archive:
            match = _MEMBER.search(member.name)
            if match and member.isfile():
                handle = archive.extractfile(member)
                assert handle is not None  # a regular file always has a payload
                members[match.group(1)] = handle.read()
    digest = _fetch.ContentDigest()
    clips = []
    for name in sorted(members):
        digest.update(name, members[name])
        digit, speaker, index = _MEMBER.search("recordings/" + name).group(2, 3, 4)  # type: ignore[union-attr]
        rate, samples = wavfile.read(io.BytesIO(members[name]))
        if rate != SAMPLE_RATE:
            raise ValueError(f"{path}: {name} has sample rate {rate}, expected {SAMPLE_RATE}")
        clips.append((int(digit), speaker, int(index), samples))
    _check_counts(path, clips)
    _fetch.verify_content("the FSDD recordings", path, digest.hexdigest(), CONTENT_SHA256)
    clips.sort(key=lambda clip: clip[:3])
    return clips


def _check_counts(path: Path, clips: list[tuple[int, str, int, np.ndarray]]) -> None:
    found = {(digit, speaker, index) for digit, speaker, index, _ in clips}
    expected = {(d, s, i) for d in range(10) for s in SPEAKERS for i in range(CLIPS_PER_SPEAKER_DIGIT)}
    if found != expected:
        missing, extra = sorted(expected - found), sorted(found - expected)
        raise ValueError(
            f"{path}: expected {len(expected)} recordings (6 speakers x 10 digits x 50), found "
            f"{len(clips)}; missing {missing[:5]}{'...' if len(missing) > 5 else ''}, "
            f"unexpected {extra[:5]}{'...' if len(extra) > 5 else ''}"
        )


def split_of(speaker: str, index: int) -> str:
    """Which split a recording belongs to: "shift", "test" or "train"."""
    if speaker == SHIFT_SPEAKER:
        return "shift"
    return "test" if index in TEST_INDICES else "train"


def _prepare(
    mirror: str | os.PathLike[str] | None, cache_dir: Path | None, source: str | None = None
) -> dict[str, np.ndarray]:
    _fetch.require_url_source(NAME, source, mirror)
    path = _fetch.fetch(RAW, mirror=mirror, cache_dir=cache_dir)
    xs: dict[str, list[np.ndarray]] = {"train": [], "test": [], "shift": []}
    ys: dict[str, list[int]] = {"train": [], "test": [], "shift": []}
    for digit, speaker, index, samples in read_recordings(path):
        split = split_of(speaker, index)
        xs[split].append(waveform(samples))
        ys[split].append(digit)
    arrays = {}
    for split in xs:
        arrays[f"x_{split}"] = np.stack(xs[split]).astype(np.float32)
        arrays[f"y_{split}"] = np.asarray(ys[split], dtype=np.int64)
    return arrays


def _validate(arrays: dict[str, np.ndarray]) -> None:
    require_arrays(arrays, _ARRAYS)


def load(
    *, mirror: str | os.PathLike[str] | None = None, cache_dir: Path | None = None, source: str | None = None
) -> TaskData:
    """Load FSDD with its in-speaker test split and the held-out-speaker shift set."""
    arrays = load_or_prepare(
        NAME, PREP_VERSION, lambda: _prepare(mirror, cache_dir, source), _validate, cache_dir,
        class_names=INFO.extras["class_names"],
    )
    return TaskData(info=INFO, **arrays)
