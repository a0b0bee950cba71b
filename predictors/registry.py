"""The one predictor registry, and `PredictorRef`: a predictor's identity everywhere.

The registry is filled from four sources: the built-in family modules, the files in
``predictors/contrib/``, the entry-point group ``gapbench.predictors`` (a package's
``[project.entry-points."gapbench.predictors"]``: ``name = "module"`` or ``"module:attr"``), and
files given on the command line. Loading a module collects every function decorated with
``@predictor(...)`` in it (the one predictor contract). Duplicate names raise; an unknown name
gets "did you mean".

A ``PredictorRef`` (metadata + code hash + where the code lives) names a predictor in caches,
tables, runs and workers. The code hash covers the predictor's module and every ``predictors.*``
module it refers to, so editing an estimator invalidates the predictions that used it.
"""

from __future__ import annotations

import difflib
import fnmatch
import hashlib
import importlib
import importlib.util
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from types import ModuleType
from typing import Any, Literal

from predictors.api import Predictor, PredictorMeta

BUILTIN_MODULES: tuple[str, ...] = (
    "predictors.baselines",
    "predictors.tail_index",
    "predictors.ph_dimension",
    "predictors.sharpness",
    "predictors.complexity",
    "predictors.noise_scale",
)
CONTRIB_DIR = Path(__file__).parent / "contrib"
ENTRY_POINT_GROUP = "gapbench.predictors"
_TOOLKIT = frozenset({"predictors.api", "predictors.registry", "predictors.conformance"})


class DuplicatePredictorError(ValueError):
    pass


class UnknownPredictorError(KeyError):
    def __str__(self) -> str:  # KeyError quotes its message; we want it readable
        return str(self.args[0])


class InvalidPredictorError(TypeError):
    pass


SourceKind = Literal["builtin", "contrib", "entry_point", "file"]


@dataclass(frozen=True)
class PredictorRef:
    """A predictor's identity: its metadata, the hash of its code, and where its code lives.

    ``source`` is ``builtin`` / ``contrib`` / ``entry_point`` (found through the registry by
    name) or ``file`` (``location``: the path of a submitted file, loaded by name from it).
    """

    meta: PredictorMeta
    code_hash: str
    source: SourceKind
    location: str

    @property
    def name(self) -> str:
        return self.meta.name

    @property
    def version(self) -> str:
        return self.meta.version

    @property
    def kind(self) -> str:
        return self.meta.kind

    @property
    def key(self) -> str:
        """``name@version#code_hash``: unique per set of numbers a predictor can produce."""
        return f"{self.meta.name}@{self.meta.version}#{self.code_hash}"

    def budget(self, ceiling: float) -> float:
        """The per-model budget: the runner's ``ceiling``, lowered by the predictor's own."""
        own = self.meta.budget_seconds
        return float(ceiling if own is None else min(own, ceiling))

    def to_dict(self) -> dict[str, Any]:
        return {"meta": self.meta.model_dump(mode="json"), "code_hash": self.code_hash,
                "source": self.source, "location": self.location}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PredictorRef:
        return cls(PredictorMeta.model_validate(data["meta"]), str(data["code_hash"]), data["source"],
                   str(data["location"]))


class Registry:
    """Name -> predictor. Adding a name twice raises, naming both sources."""

    def __init__(self) -> None:
        self._entries: dict[str, Predictor] = {}
        self._sources: dict[str, tuple[SourceKind, str]] = {}

    def add(self, pred: Predictor, source: SourceKind = "builtin", location: str = "") -> Predictor:
        meta = getattr(pred, "meta", None)
        if not isinstance(meta, PredictorMeta) or not callable(pred):
            raise InvalidPredictorError(
                f"{pred!r} is not a predictor: decorate a function with @predictor(...) from predictors.api"
            )
        old = self._entries.get(meta.name)
        if old is not None and old is not pred:
            raise DuplicatePredictorError(
                f"predictor name {meta.name!r} is registered twice: by {source_file(old)} and by "
                f"{source_file(pred)}; rename one of them"
            )
        self._entries[meta.name] = pred
        self._sources[meta.name] = (source, location or getattr(pred, "__module__", ""))
        return pred

    def add_module(self, module: ModuleType, source: SourceKind, location: str = "") -> list[Predictor]:
        """Register every decorated predictor defined in ``module``; returns them by name."""
        found = [v for v in vars(module).values()
                 if isinstance(getattr(v, "meta", None), PredictorMeta) and getattr(v, "__module__", None) == module.__name__]
        for pred in sorted(found, key=lambda p: p.meta.name):
            self.add(pred, source, location)
        return sorted(found, key=lambda p: p.meta.name)

    def get(self, name: str) -> Predictor:
        try:
            return self._entries[name]
        except KeyError:
            close = difflib.get_close_matches(name, list(self._entries), n=3)
            hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
            raise UnknownPredictorError(f"unknown predictor {name!r}{hint}") from None

    def ref(self, name: str) -> PredictorRef:
        """The identity of the registered predictor ``name``."""
        pred = self.get(name)
        source, location = self._sources[name]
        return PredictorRef(pred.meta, code_hash(pred), source, location)

    def names(self, pattern: str = "*") -> list[str]:
        return sorted(n for n in self._entries if fnmatch.fnmatchcase(n, pattern))

    def all(self) -> list[Predictor]:
        return [self._entries[n] for n in self.names()]

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __len__(self) -> int:
        return len(self._entries)


REGISTRY = Registry()
_loaded = False


def load_builtins(registry: Registry = REGISTRY) -> None:
    for name in BUILTIN_MODULES:
        registry.add_module(importlib.import_module(name), "builtin", name)


def load_contrib(directory: Path = CONTRIB_DIR, registry: Registry = REGISTRY) -> None:
    for path in sorted(directory.glob("*.py")):
        if not path.name.startswith("_"):
            registry.add_module(import_file(path), "contrib", str(path))


def load_entry_points(registry: Registry = REGISTRY) -> None:
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        obj = ep.load()
        if isinstance(obj, ModuleType):
            registry.add_module(obj, "entry_point", ep.value)
        else:
            registry.add(obj, "entry_point", ep.value)


def _module_name_for(path: Path) -> str:
    digest = hashlib.sha256(str(path).encode()).hexdigest()[:10]
    return f"gapbench_user_predictors.{path.stem}_{digest}"


def import_file(path: str | Path) -> ModuleType:
    """Import a predictor file as a module (once per path)."""
    path = Path(path).resolve()
    if not path.is_file():
        raise FileNotFoundError(f"predictor file not found: {path}")
    name = _module_name_for(path)
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise InvalidPredictorError(f"cannot import predictor file {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def file_predictors(path: str | Path) -> list[Predictor]:
    """The predictors a file defines (imports it); raises if it defines none.

    Only call this where the file's code may run: in a predictor worker, not in the process
    that holds the answers.
    """
    module = import_file(path)
    found = sorted((v for v in vars(module).values()
                    if isinstance(getattr(v, "meta", None), PredictorMeta) and v.__module__ == module.__name__),
                   key=lambda p: p.meta.name)
    if not found:
        raise InvalidPredictorError(
            f"{Path(path).name} defines no predictor: decorate a function with @predictor(...) from predictors.api"
        )
    return found


def describe_file(context: Any, *, path: str) -> list[dict[str, Any]]:
    """Worker job: the metadata (as dicts) of the predictors a file defines."""
    return [p.meta.model_dump(mode="json") for p in file_predictors(path)]


def file_refs(path: str | Path, metas: Iterable[dict[str, Any]]) -> list[PredictorRef]:
    """Refs of a submitted file's predictors from their metadata (as ``describe_file`` returns it).

    The code hash is computed here from the file's bytes and the ``predictors.*`` modules it
    imports (found by reading its syntax tree, without running it), never taken from the file.
    """
    path = Path(path).resolve()
    out = []
    for raw in metas:
        meta = PredictorMeta.model_validate(raw)
        out.append(PredictorRef(meta, static_code_hash(path, meta.version), "file", str(path)))
    return out


def static_code_hash(path: str | Path, version: str) -> str:
    """Hash of a file's source and of every ``predictors.*`` module it imports (AST, no import)."""
    import ast

    path = Path(path)
    source = path.read_bytes()
    files = {path}
    try:
        tree = ast.parse(source)
    except SyntaxError:
        tree = None
    for node in ast.walk(tree) if tree is not None else ():
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        for name in names:
            if name.startswith("predictors.") and name not in _TOOLKIT:
                spec = importlib.util.find_spec(name) if _is_module(name) else None
                if spec is not None and spec.origin:
                    files.add(Path(spec.origin))
    h = hashlib.sha256(version.encode())
    for f in sorted(files, key=str):
        h.update(f.name.encode())
        h.update(f.read_bytes())
    return h.hexdigest()[:16]


def _is_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def load_all() -> Registry:
    """The registry with the built-ins, contrib/ and entry points loaded (once)."""
    global _loaded
    if not _loaded:
        load_builtins()
        load_contrib()
        load_entry_points()
        _loaded = True
    return REGISTRY


def is_file_item(item: str) -> bool:
    """Whether a command-line item names a predictor file rather than a registry name or glob."""
    return item.endswith(".py") or Path(item).is_file()


def resolve_names(items: Iterable[str] | None = None) -> list[PredictorRef]:
    """Refs of the registered predictors named by registry keys or glob patterns (all when empty).

    Raises UnknownPredictorError (with "did you mean") for a name or pattern that matches none.
    Files are not resolved here: their code runs in a worker (see ``describe_file``).
    """
    registry = load_all()
    items = list(items or [])
    names = registry.names() if not items else []
    for item in items:
        if any(c in item for c in "*?["):
            matched = registry.names(item)
            if not matched:
                raise UnknownPredictorError(f"no predictor matches {item!r}")
            names += matched
        else:
            registry.get(item)
            names.append(item)
    return [registry.ref(n) for n in dict.fromkeys(names)]


def source_file(pred: object) -> str:
    fn = getattr(pred, "__wrapped__", pred)
    module = sys.modules.get(getattr(fn, "__module__", "") or "")
    return str(getattr(module, "__file__", None) or getattr(fn, "__module__", "?"))


def code_hash(pred: Predictor) -> str:
    """Hash of the source that computes this predictor's numbers.

    The predictor's module plus every ``predictors.*`` module it refers to (its estimators,
    the objective toolkit), so that editing an estimator invalidates the cached predictions.
    """
    fn = getattr(pred, "__wrapped__", pred)
    module = sys.modules.get(fn.__module__)
    files: set[str] = set()
    if module is not None and getattr(module, "__file__", None):
        files.add(module.__file__)
        for value in vars(module).values():
            ref = value if isinstance(value, ModuleType) else sys.modules.get(getattr(value, "__module__", "") or "")
            if (isinstance(ref, ModuleType) and ref.__name__.startswith("predictors.")
                    and ref.__name__ not in _TOOLKIT and getattr(ref, "__file__", None)):
                files.add(ref.__file__)
    h = hashlib.sha256(pred.meta.version.encode())
    for f in sorted(files):
        h.update(Path(f).name.encode())
        h.update(Path(f).read_bytes())
    return h.hexdigest()[:16]


def find(ref: PredictorRef) -> Predictor:
    """The predictor object of ``ref`` (in a worker): from its file, or from the registry."""
    if ref.source == "file":
        for pred in file_predictors(ref.location):
            if pred.meta.name == ref.name:
                return pred
        raise UnknownPredictorError(f"{ref.location} no longer defines predictor {ref.name!r}")
    return load_all().get(ref.name)
