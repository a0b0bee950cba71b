"""20 Newsgroups, "bydate" split (Rennie): 11,314 train / 7,532 test posts, 20 classes.

x: int64 ``[N, SEQ_LEN]`` token ids: 0 = padding, 1 = out of vocabulary, 2.. = the vocabulary.

Choices, and why:
- **Headers kept** (scikit-learn's default, ``remove=()``). The bydate release already dropped
  the headers that name the class (Newsgroups, Path, Xref, Followup-To); what remains (From,
  Subject, Organization, Lines) is ordinary message metadata. Measured with a TF-IDF
  logistic regression on these tokens: 19.4% test error with headers, 23.9% without; the
  data README's "15-22% for TF-IDF linear models" is the with-headers setting.
- Text is decoded as latin-1, lowercased and split by ``TOKEN_PATTERN`` (a letter, then letters,
  digits or apostrophes, ending in a letter or digit; at least two characters).
- Vocabulary: the ``VOCAB_SIZE`` tokens with the highest document frequency in the **train
  split only** (min df 2; ties broken alphabetically); id = 2 + rank.
- ``SEQ_LEN = 512``. Train posts have 171 tokens at the median but a long tail (mean 287, max
  13,184). Share of all train tokens kept by truncation (of in-vocabulary tokens in brackets):
  L=256 59.8% (62.2%), L=384 69.0% (71.9%), **L=512 74.1% (77.3%)**, L=768 79.8% (83.2%),
  L=1024 83.0% (86.4%). At 512, 91% of posts are not truncated at all, the TF-IDF logistic
  regression's test error is the same as untruncated (19.0% vs 19.1%), and the int64 arrays
  take 77 MB (the cache stores uint16). Longer L mostly buys the tail of a few huge posts
  at a proportional cost for sequence models; models that want less can crop ``x[:, :L']``.
- ``extras["idf"]``: smooth idf per id, ``log((1 + N) / (1 + df)) + 1`` with N the number of
  train posts and df the number of train sequences (as stored, i.e. after truncation, so it
  is exactly scikit-learn's ``TfidfTransformer(smooth_idf=True)`` fitted on the counts of
  ``x_train``) holding the id; the OOV id counts the posts holding any OOV token; padding is 0.
"""

from __future__ import annotations

import math
import os
import re
import tarfile
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

from model_zoo.data import _fetch
from model_zoo.data.base import TaskData, TaskInfo, load_or_prepare, require_arrays

NAME = "newsgroups"
PREP_VERSION = 1
VOCAB_SIZE = 5000
MIN_DF = 2
SEQ_LEN = 512
PAD_ID, OOV_ID = 0, 1
TOKEN_PATTERN = re.compile(r"[a-z][a-z0-9']*[a-z0-9]")
CLASS_NAMES = (
    "alt.atheism", "comp.graphics", "comp.os.ms-windows.misc", "comp.sys.ibm.pc.hardware",
    "comp.sys.mac.hardware", "comp.windows.x", "misc.forsale", "rec.autos", "rec.motorcycles",
    "rec.sport.baseball", "rec.sport.hockey", "sci.crypt", "sci.electronics", "sci.med",
    "sci.space", "soc.religion.christian", "talk.politics.guns", "talk.politics.mideast",
    "talk.politics.misc", "talk.religion.misc",
)  # fmt: skip
N_TRAIN, N_TEST = 11_314, 7_532
INFO = TaskInfo(
    name=NAME,
    modality="text",
    n_classes=len(CLASS_NAMES),
    input_shape=(SEQ_LEN,),
    input_dtype="int64",
    has_shift=False,
    extras={
        "vocab_size": VOCAB_SIZE + 2,
        "seq_len": SEQ_LEN,
        "class_names": list(CLASS_NAMES),
        "n_train": N_TRAIN,
        "n_test": N_TEST,
    },
)

RAW = _fetch.RawFile(
    folder="20newsgroups",
    name="20news-bydate.tar.gz",
    mirror_sha256="9bbbfd7060c55f7ebefacc89fb1bb279abdb530f83fd5e2df146bab0880d8608",
    url="http://qwone.com/~jason/20Newsgroups/20news-bydate.tar.gz",
    download_name="20news-bydate.tar.gz",
    # The mirror's tarball was re-packed, so its bytes differ from the official one; a download
    # is verified through CONTENT_SHA256 (the documents themselves) and the split sizes.
    official_checksum=None,
)
# ContentDigest over (path "20news-bydate-<split>/<group>/<id>", bytes) of every post, sorted by path.
CONTENT_SHA256 = "059180cba06b816de54fee00d6106e52ba4d6cb283e908393e0fe4c420ec2f43"

_MEMBER = re.compile(r"(?:^|/)(20news-bydate-(train|test)/([a-z0-9.\-]+)/([0-9]+))$")
_ARRAYS = {
    "x_train": ("uint16", (N_TRAIN, SEQ_LEN)),
    "y_train": ("int64", (N_TRAIN,)),
    "x_test": ("uint16", (N_TEST, SEQ_LEN)),
    "y_test": ("int64", (N_TEST,)),
    "vocab": ("str", (VOCAB_SIZE,)),
    "idf": ("float64", (VOCAB_SIZE + 2,)),
}


def tokenize(text: str) -> list[str]:
    """Lowercase ``text`` and return its tokens (``TOKEN_PATTERN`` matches, in order)."""
    return TOKEN_PATTERN.findall(text.lower())


def read_documents(path: Path) -> dict[str, list[tuple[str, str]]]:
    """Read the bydate tarball: ``{"train"|"test": [(group, text), ...]}``.

    Posts are ordered by group name, then numeric post id; text is decoded as latin-1.
    Checks the content digest, the group names and the split sizes.
    """
    members: dict[str, bytes] = {}
    with tarfile.open(path, "r:*") as archive:
        for member in archive:
            match = _MEMBER.search(member.name)
            if match and member.isfile():
                handle = archive.extractfile(member)
                assert handle is not None  # a regular file always has a payload
                members[match.group(1)] = handle.read()
    digest = _fetch.ContentDigest()
    for name in sorted(members):
        digest.update(name, members[name])
    keyed = []
    for name, data in members.items():
        split, group, post = _MEMBER.search(name).group(2, 3, 4)  # type: ignore[union-attr]
        keyed.append(((split, group, int(post)), data))
    keyed.sort(key=lambda item: item[0])
    docs: dict[str, list[tuple[str, str]]] = {"train": [], "test": []}
    for (split, group, _), data in keyed:
        docs[split].append((group, data.decode("latin-1")))
    for split, expected in (("train", N_TRAIN), ("test", N_TEST)):
        groups = sorted({group for group, _ in docs[split]})
        if len(docs[split]) != expected or tuple(groups) != CLASS_NAMES:
            raise ValueError(
                f"{path}: the {split} split has {len(docs[split])} posts in {len(groups)} groups, "
                f"expected {expected} posts in the 20 bydate groups"
            )
    _fetch.verify_content("the 20 Newsgroups posts", path, digest.hexdigest(), CONTENT_SHA256)
    return docs


def build_vocabulary(documents: Iterable[Sequence[str]], *, size: int = VOCAB_SIZE, min_df: int = MIN_DF) -> list[str]:
    """The ``size`` tokens of highest document frequency (at least ``min_df``), ties alphabetical."""
    df = Counter(token for tokens in documents for token in set(tokens))
    ranked = sorted((item for item in df.items() if item[1] >= min_df), key=lambda kv: (-kv[1], kv[0]))
    return [token for token, _ in ranked[:size]]


def encode(documents: Iterable[Sequence[str]], vocab: Sequence[str], *, seq_len: int = SEQ_LEN) -> np.ndarray:
    """Token ids ``[N, seq_len]`` (uint16): vocab[i] -> i + 2, other tokens -> 1; truncated, 0-padded."""
    if len(vocab) + 2 > np.iinfo(np.uint16).max:
        raise ValueError(f"vocabulary of {len(vocab)} tokens does not fit uint16 ids")
    index = {token: i + 2 for i, token in enumerate(vocab)}
    rows = [[index.get(token, OOV_ID) for token in tokens[:seq_len]] for tokens in documents]
    out = np.zeros((len(rows), seq_len), dtype=np.uint16)
    for i, row in enumerate(rows):
        out[i, : len(row)] = row
    return out


def smooth_idf(ids: np.ndarray, n_ids: int) -> np.ndarray:
    """Smooth inverse document frequency per id (scikit-learn's ``smooth_idf=True``).

    ``idf[t] = log((1 + N) / (1 + df[t])) + 1`` where N = number of rows of ``ids`` and df[t] the
    number of rows holding id t; ``idf[0] = 0`` (padding carries no information).
    (Sparck Jones 1972; the smoothed form as in scikit-learn's TfidfTransformer.)
    """
    n_docs = ids.shape[0]
    rows = np.repeat(np.arange(n_docs), ids.shape[1])
    present = np.zeros((n_docs, n_ids), dtype=bool)
    present[rows, ids.ravel().astype(np.int64)] = True
    df = present.sum(axis=0)
    # math.log (the C library's, the same code on every x86-64 CPU with FMA), not np.log: numpy
    # dispatches float64 log to CPU-specific kernels (AVX-512 machines use another one), and these
    # values are stored in every zoo's info.json, whose hash is part of the zoo's content hash
    idf = np.array([math.log((1.0 + n_docs) / (1.0 + d)) + 1.0 for d in df.tolist()], dtype=np.float64)
    idf[PAD_ID] = 0.0
    return idf


def _prepare(
    mirror: str | os.PathLike[str] | None, cache_dir: Path | None, source: str | None = None
) -> dict[str, np.ndarray]:
    _fetch.require_url_source(NAME, source, mirror)
    path = _fetch.fetch(RAW, mirror=mirror, cache_dir=cache_dir)
    docs = read_documents(path)
    label = {group: i for i, group in enumerate(CLASS_NAMES)}
    tokens = {split: [tokenize(text) for _, text in docs[split]] for split in docs}
    vocab = build_vocabulary(tokens["train"])
    if len(vocab) != VOCAB_SIZE:
        raise ValueError(f"{path}: only {len(vocab)} tokens have train df >= {MIN_DF}, need {VOCAB_SIZE}")
    arrays: dict[str, np.ndarray] = {}
    for split in ("train", "test"):
        arrays[f"x_{split}"] = encode(tokens[split], vocab)
        arrays[f"y_{split}"] = np.array([label[group] for group, _ in docs[split]], dtype=np.int64)
    arrays["vocab"] = np.array(vocab)
    arrays["idf"] = smooth_idf(arrays["x_train"], VOCAB_SIZE + 2)
    return arrays


def _validate(arrays: dict[str, np.ndarray]) -> None:
    require_arrays(arrays, _ARRAYS)


def load(
    *, mirror: str | os.PathLike[str] | None = None, cache_dir: Path | None = None, source: str | None = None
) -> TaskData:
    """Load 20 Newsgroups; ``info.extras`` gains ``idf`` (list, one per id) and ``vocab``."""
    arrays = load_or_prepare(
        NAME, PREP_VERSION, lambda: _prepare(mirror, cache_dir, source), _validate, cache_dir, class_names=CLASS_NAMES
    )
    extras = {**INFO.extras, "idf": arrays["idf"].tolist(), "vocab": arrays["vocab"].tolist()}
    return TaskData(
        info=replace(INFO, extras=extras),
        x_train=arrays["x_train"].astype(np.int64),
        y_train=arrays["y_train"],
        x_test=arrays["x_test"].astype(np.int64),
        y_test=arrays["y_test"],
    )
