"""The one predictor registry.

It is filled from four sources, in this order: the built-in family modules, the files in
``predictors/contrib/``, the entry-point group ``gapbench.predictors`` (a package's
``[project.entry-points."gapbench.predictors"]``: ``name = "module:attr"``), and any file
path given on the command line. Duplicate names raise; an unknown name gets "did you mean".
"""

from __future__ import annotations

import difflib
import fnmatch
import hashlib
import importlib
import importlib.util
import inspect
import sys
from collections.abc import Iterable
from importlib.metadata import entry_points
from pathlib import Path
from types import ModuleType

from predictors.api import FunctionPredictor, Predictor, PredictorMeta

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


class DuplicatePredictorError(ValueError):
    pass


class UnknownPredictorError(KeyError):
    def __str__(self) -> str:  # KeyError quotes its message; we want it readable
        return str(self.args[0])


class InvalidPredictorError(TypeError):
    pass


class Registry:
    """Name -> predictor. Adding a name twice raises, naming both sources."""

    def __init__(self) -> None:
        self._entries: dict[str, Predictor] = {}

    def add(self, pred: Predictor) -> Predictor:
        meta = getattr(pred, "meta", None)
        if not isinstance(meta, PredictorMeta) or not callable(pred):
            raise InvalidPredictorError(
                f"{pred!r} is not a predictor: it needs a PredictorMeta `meta` and to be callable"
            )
        old = self._entries.get(meta.name)
        if old is not None and old is not pred:
            raise DuplicatePredictorError(
                f"predictor name {meta.name!r} is registered twice: by {source_file(old)} and by "
                f"{source_file(pred)}; rename one of them"
            )
        self._entries[meta.name] = pred
        return pred

    def get(self, name: str) -> Predictor:
        try:
            return self._entries[name]
        except KeyError:
            close = difflib.get_close_matches(name, list(self._entries), n=3)
            hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
            raise UnknownPredictorError(f"unknown predictor {name!r}{hint}") from None

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


def load_builtins() -> None:
    for module in BUILTIN_MODULES:
        importlib.import_module(module)


def load_contrib(directory: Path = CONTRIB_DIR) -> None:
    for path in sorted(directory.glob("*.py")):
        if not path.name.startswith("_"):
            load_file(path)


def load_entry_points() -> None:
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        obj = ep.load()
        if isinstance(obj, ModuleType):
            continue  # importing the module registered its decorated predictors
        REGISTRY.add(obj)


def _module_name_for(path: Path) -> str:
    digest = hashlib.sha256(str(path).encode()).hexdigest()[:10]
    return f"gapbench_user_predictors.{path.stem}_{digest}"


def load_file(path: str | Path) -> list[Predictor]:
    """Import a predictor file; return the predictors it defines.

    A file defines predictors with ``@predictor(...)``, or with a bare ``predict(subject)``
    function (registered under the file's stem, family "contrib", version from ``VERSION``).
    """
    path = Path(path).resolve()
    if not path.is_file():
        raise FileNotFoundError(f"predictor file not found: {path}")
    name = _module_name_for(path)
    if name in sys.modules:
        module = sys.modules[name]
    else:
        spec = importlib.util.spec_from_file_location(name, path)
        if spec is None or spec.loader is None:
            raise InvalidPredictorError(f"cannot import predictor file {path}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        try:
            spec.loader.exec_module(module)
        except Exception:
            del sys.modules[name]
            raise
        bare = getattr(module, "predict", None)
        if callable(bare) and not hasattr(bare, "meta"):
            meta = PredictorMeta(
                name=getattr(module, "NAME", path.stem),
                version=str(getattr(module, "VERSION", "0")),
                family=getattr(module, "FAMILY", "contrib"),
                reference=getattr(module, "REFERENCE", f"submitted file {path.name}"),
                requires=tuple(getattr(module, "REQUIRES", ("weights", "init", "train_data", "hparams"))),
                description=(inspect.getdoc(bare) or "").split("\n")[0],
            )

            def call(subject, *, seed=0, _fn=bare):
                params = inspect.signature(_fn).parameters
                return _fn(subject, seed=seed) if "seed" in params else _fn(subject)

            call.__module__ = name
            REGISTRY.add(FunctionPredictor(call, meta))
    found = [p for p in REGISTRY.all() if getattr(p, "__module__", None) == name]
    if not found:
        raise InvalidPredictorError(
            f"{path} defines no predictor: decorate a function with @predictor(...) "
            "or define `def predict(subject) -> float`"
        )
    return found


def load_all() -> Registry:
    """The registry with the built-ins, contrib/ and entry points loaded (once)."""
    global _loaded
    if not _loaded:
        load_builtins()
        load_contrib()
        load_entry_points()
        _loaded = True
    return REGISTRY


def resolve(names_or_paths: Iterable[str] | None = None) -> list[Predictor]:
    """Predictors named (registry keys, glob patterns, or .py paths); all when None/empty."""
    registry = load_all()
    items = list(names_or_paths or [])
    if not items:
        return registry.all()
    out: list[Predictor] = []
    for item in items:
        if item.endswith(".py") or Path(item).is_file():
            out.extend(load_file(item))
        elif any(c in item for c in "*?["):
            matched = registry.names(item)
            if not matched:
                raise UnknownPredictorError(f"no predictor matches {item!r}")
            out.extend(registry.get(n) for n in matched)
        else:
            out.append(registry.get(item))
    seen: dict[str, Predictor] = {}
    for p in out:
        seen.setdefault(p.meta.name, p)
    return list(seen.values())


def source_file(pred: object) -> str:
    fn = getattr(pred, "__wrapped__", pred)
    module = sys.modules.get(getattr(fn, "__module__", "") or "")
    return str(getattr(module, "__file__", None) or getattr(fn, "__module__", "?"))


def code_hash(pred: Predictor) -> str:
    """Hash of the source that computes this predictor's numbers.

    The predictor's module plus every ``predictors.*`` module it refers to (its estimators),
    so that editing an estimator invalidates the cached predictions that used it.
    """
    fn = getattr(pred, "__wrapped__", pred)
    module = sys.modules.get(fn.__module__)
    files: set[str] = set()
    if module is not None and getattr(module, "__file__", None):
        files.add(module.__file__)
        for value in vars(module).values():
            ref = value if isinstance(value, ModuleType) else sys.modules.get(getattr(value, "__module__", "") or "")
            if isinstance(ref, ModuleType) and ref.__name__.startswith("predictors.") and ref.__name__ not in (
                "predictors.api",
                "predictors.registry",
            ):
                if getattr(ref, "__file__", None):
                    files.add(ref.__file__)
    h = hashlib.sha256(pred.meta.version.encode())
    for f in sorted(files):
        h.update(Path(f).name.encode())
        h.update(Path(f).read_bytes())
    return h.hexdigest()[:16]
