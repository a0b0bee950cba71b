"""Population training: a member gets exactly what train_model gives it alone; grouping; failures.

The equivalence checks run in a subprocess started with ``determinism.training_env()`` (the
numerics zoo builds use): for each vectorised architecture a population of members that differ
in seed, lr, optimizer (SGD / Adam, the window's SGD switch or not), weight decay, dropout,
label noise and augmentation is trained once together and once member by member with
``trainer.train_model``, and the sha256 of every member's init / final weights, trajectory
arrays and curve are compared: they must be equal, bit for bit. Some members converge (and
record a window while the others go on), some hit the step cap; the train-set size leaves a
short last batch.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from torch.nn import functional as F

from model_zoo import store
from model_zoo.build import build_zoo
from model_zoo.determinism import training_env
from model_zoo.plan import DEFAULT_POPULATION_SIZE, plan_populations, population_key
from model_zoo.population import nll_sum
from model_zoo.spec import expand, load_spec, parse_spec

REPO = Path(__file__).resolve().parents[1]
TESTS = Path(__file__).resolve().parent

# (task, fixed fields): tiny models of each architecture, a few steps each
ARCHITECTURES = {
    "mlp": ("fashion_mnist", dict(width=8, depth=2, batch_size=8, train_size=30, max_steps=60, target_ce=1.0)),
    "cnn": ("fashion_mnist", dict(width=4, depth=2, batch_size=8, train_size=30, max_steps=40, target_ce=1.5)),
    "bow_mlp": ("newsgroups", dict(width=8, depth=1, batch_size=8, train_size=30, max_steps=60, target_ce=1.5)),
    "spec_cnn": ("fsdd", dict(width=4, depth=1, batch_size=8, train_size=20, max_steps=24, target_ce=1.9)),
    "spec_mlp": ("fsdd", dict(width=8, depth=1, batch_size=8, train_size=20, max_steps=40, target_ce=1.5)),
    "m5": ("fsdd", dict(width=4, depth=1, batch_size=5, train_size=12, max_steps=12, target_ce=2.1)),
    "text_cnn": ("newsgroups", dict(width=8, depth=1, batch_size=6, train_size=14, max_steps=16, target_ce=2.1)),
}
# what members differ in
VARIANTS = [
    dict(seed=0, optimizer="sgd", lr=0.05),
    dict(seed=1, optimizer="adam", lr=0.01, weight_decay=1e-4),
    dict(seed=2, optimizer="sgd", lr=0.02, dropout=0.2, label_noise=0.2, augmentation=True, weight_decay=5e-4),
    dict(seed=3, optimizer="adam", lr=0.003, dropout=0.1, augmentation=True, window_optimizer="same"),
]
PROTOCOL = dict(window_steps=5, projection_dim=16, exact_max_params=150, eval_every=3)

EQUIVALENCE = r"""
import hashlib, json, sys
from model_zoo.determinism import pin
pin()
import numpy as np, torch
from model_zoo.axes import TrainConfig
from model_zoo.data import load_task
from model_zoo.population import train_population
from model_zoo.trainer import make_train_subset, train_model

def digest(result):
    h = hashlib.sha256()
    for state in (result.init_state, result.final_state):
        for k in sorted(state):
            h.update(k.encode()); h.update(state[k].numpy().tobytes())
    for k, v in sorted(result.window.arrays().items()):
        h.update(k.encode()); h.update(np.ascontiguousarray(v).tobytes())
    h.update(repr((result.status, result.steps_to_converge, result.total_steps, result.curve, result.history,
                   result.n_params)).encode())
    return h.hexdigest()

spec = json.loads(sys.argv[1])
out, tasks = {}, {}
for arch, (task, fields) in spec["architectures"].items():
    data = tasks.setdefault(task, load_task(task))
    cfgs = [TrainConfig(task=task, architecture=arch, **spec["protocol"], **fields, **v) for v in spec["variants"]]
    subsets = [make_train_subset(data.y_train, data.info.n_classes, c.train_size, c.label_noise, c.seed) for c in cfgs]
    alone = [train_model(c, data.info, data.x_train[s.indices], s.labels) for c, s in zip(cfgs, subsets)]
    together = train_population(cfgs, data.info, data.x_train, [s.indices for s in subsets],
                                [s.labels for s in subsets])
    # without augmentation the population runs a parameter-free front end once per pool row
    plain = [i for i, c in enumerate(cfgs) if not c.augmentation]
    cached = train_population([cfgs[i] for i in plain], data.info, data.x_train, [subsets[i].indices for i in plain],
                              [subsets[i].labels for i in plain])
    # train_model alone runs such a front end once too: the same bits as running it at every step
    import model_zoo.trainer as trainer_module
    from model_zoo.architectures import build_model
    cached_once = trainer_module._features_once
    trainer_module._features_once = lambda model, x: (model, x)
    try:
        every_step = {str(i): digest(train_model(cfgs[i], data.info, data.x_train[subsets[i].indices], subsets[i].labels))
                      for i in plain}
    finally:
        trainer_module._features_once = cached_once
    probe = build_model(arch, data.info, width=cfgs[0].width, depth=cfgs[0].depth, dropout=0.0)
    front_once = cached_once(probe, torch.as_tensor(data.x_train[:3]))[0] is not probe
    out[arch] = {"alone": [digest(r) for r in alone], "alone_front_every_step": every_step, "front_once": front_once,
                 "population": [digest(o.result) if o.result is not None else o.error for o in together],
                 "without_augmentation": {str(i): digest(o.result) if o.result is not None else o.error
                                          for i, o in zip(plain, cached)},
                 "status": [f"{r.status}@{r.steps_to_converge}" for r in alone]}
print("RESULT " + json.dumps(out))
"""


def _run(code: str, *args: str, env: dict[str, str] | None = None, timeout: float = 900) -> dict:
    env = training_env(env) if env is not None else training_env()
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    proc = subprocess.run([sys.executable, "-c", code, *args], env=env, cwd=REPO, capture_output=True, text=True,
                          timeout=timeout)
    assert proc.returncode == 0, f"subprocess failed:\n{proc.stderr[-4000:]}"
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")][-1]
    return json.loads(line[len("RESULT "):])


@pytest.fixture(scope="module")
def equivalence() -> dict:
    spec = {"architectures": ARCHITECTURES, "variants": VARIANTS, "protocol": PROTOCOL}
    return _run(EQUIVALENCE, json.dumps(spec))


@pytest.mark.slow
@pytest.mark.parametrize("architecture", sorted(ARCHITECTURES))
def test_front_end_once_in_train_model_changes_no_number(equivalence, architecture):
    result = equivalence[architecture]
    assert result["front_once"] == (architecture in ("spec_mlp", "bow_mlp"))
    for i, digest in result["alone_front_every_step"].items():
        assert result["alone"][int(i)] == digest, f"{architecture}: member {i} differs with the front end per step"


@pytest.mark.slow
@pytest.mark.parametrize("architecture", sorted(ARCHITECTURES))
def test_population_member_is_bit_identical_to_training_alone(equivalence, architecture):
    result = equivalence[architecture]
    differ = [i for i, (a, p) in enumerate(zip(result["alone"], result["population"], strict=True)) if a != p]
    assert not differ, f"{architecture}: members {differ} differ (alone: {result['status']}; {result['population']})"
    # a population without augmentation (its front end, if any, cached per pool row) too
    cached = result["without_augmentation"]
    assert len(cached) == 2 and all(result["alone"][int(i)] == d for i, d in cached.items()), (architecture, cached)


@pytest.mark.slow
def test_equivalence_covers_converged_and_capped_members(equivalence):
    """The comparison is only as strong as its cases: windows recorded mid-population and at the cap."""
    statuses = [s for r in equivalence.values() for s in r["status"]]
    assert any(s.startswith("converged") for s in statuses) and any(s.startswith("not_converged") for s in statuses)
    for arch, result in equivalence.items():
        assert len(set(result["alone"])) == len(VARIANTS), f"{arch}: two variants trained to the same bytes"


# ----------------------------------------------------------------------------- exact kernels


def test_nll_sum_replays_cross_entropy_reduction():
    gen = torch.Generator().manual_seed(0)
    for batch in (1, 2, 15, 16, 17, 31, 33, 64, 100, 255, 256, 257, 1000, 1024, 4097):
        for dtype in (torch.float32, torch.float64):
            logits = torch.randn(3, batch, 10, generator=gen, dtype=dtype) * 4
            y = torch.randint(0, 10, (3, batch), generator=gen)
            values = (-F.log_softmax(logits, -1).gather(-1, y[..., None])[..., 0]).numpy()
            sums = nll_sum(values)
            for p in range(3):
                expected = F.cross_entropy(logits[p], y[p], reduction="sum")
                assert sums[p] == expected.item(), (batch, dtype, p)
                assert np.float32(sums[p] / values.dtype.type(batch)) == np.float32(F.cross_entropy(logits[p], y[p]))
    # the cascade is not a plain left-to-right sum: a case where they differ (so the test can fail)
    v = np.array([[1e8, 1.0] + [1.0] * 40], dtype=np.float32)
    assert nll_sum(v)[0] != np.add.accumulate(v[0])[-1]


LINEAR = r"""
import json
from model_zoo.determinism import pin
pin()
import torch
from torch.nn import functional as F
from model_zoo.population import linear
gen = torch.Generator().manual_seed(0)
bad = []
for rows, k, n in [(1, 8, 5), (3, 4, 10), (16, 4, 10), (8, 24, 20), (128, 16, 10), (257, 33, 24), (40, 20, 1)]:
    x = torch.randn(3, rows, k, generator=gen, requires_grad=True)
    w = torch.randn(3, n, k, generator=gen, requires_grad=True)
    b = torch.randn(3, n, generator=gen, requires_grad=True)
    g = torch.randn(3, rows, n, generator=gen)
    out = linear(x, w, b)
    out.backward(g)
    for p in range(3):
        xp, wp, bp = (t[p].detach().clone().requires_grad_() for t in (x, w, b))
        y = F.linear(xp, wp, bp)
        y.backward(g[p])
        same = [torch.equal(y, out[p]), torch.equal(xp.grad, x.grad[p]), torch.equal(wp.grad, w.grad[p]),
                torch.equal(bp.grad, b.grad[p])]
        if not all(same):
            bad.append([rows, k, n, p, same])
print("RESULT " + json.dumps(bad))
"""


@pytest.mark.slow
def test_linear_matches_f_linear_forward_and_backward():
    """Each member's output and gradients are F.linear's, across the bmm / per-member boundary."""
    assert _run(LINEAR) == []


# ----------------------------------------------------------------------------- divergence


DIVERGENCE = r"""
import json, hashlib
from model_zoo.determinism import pin
pin()
import numpy as np
from model_zoo.axes import TrainConfig
from model_zoo.data import load_task
from model_zoo.population import train_population
from model_zoo.trainer import train_model
data = load_task("fashion_mnist")
pool = data.x_train[:300].copy()
pool[200:] = np.nan  # member 1 trains on these rows: its loss is NaN from the first step
base = dict(task="fashion_mnist", architecture="mlp", width=8, depth=1, batch_size=8, train_size=24, max_steps=40,
            target_ce=0.5, window_steps=4, projection_dim=16, exact_max_params=100, eval_every=2)
cfgs = [TrainConfig(seed=0, lr=0.05, **base), TrainConfig(seed=1, lr=0.05, **base), TrainConfig(seed=2, lr=0.1, **base)]
rows = [np.arange(0, 24), np.arange(200, 224), np.arange(100, 124)]
labels = [data.y_train[r] for r in rows]
seen = []
out = train_population(cfgs, data.info, pool, rows, labels, on_done=lambda o: seen.append(o.index))
def final(r):
    return hashlib.sha256(b"".join(v.numpy().tobytes() for v in r.final_state.values())).hexdigest()
alone = [train_model(c, data.info, pool[r], y) for c, r, y in zip(cfgs, rows, labels)]
print("RESULT " + json.dumps({"errors": [o.error for o in out], "seen": seen,
                              "population": [final(o.result) if o.result else None for o in out],
                              "alone": [final(r) for r in alone],
                              "alone_finite": [bool(np.isfinite(r.history[-1]["train_loss"])) for r in alone]}))
"""


@pytest.mark.slow
def test_a_non_finite_member_leaves_and_the_others_are_unchanged():
    result = _run(DIVERGENCE)
    errors = result["errors"]
    assert errors[0] == errors[2] == "" and errors[1] == "non-finite train loss (nan) at step 2", errors
    assert result["alone_finite"] == [True, False, True]  # alone, it trains on to the step cap with a NaN loss
    assert result["population"][0] == result["alone"][0] and result["population"][2] == result["alone"][2]
    assert result["seen"][0] == 1  # reported as soon as it left, before the others finished


# ----------------------------------------------------------------------------- grouping and builds


SMALL = """
name = "small"
seeds = [0, 1]
[training]
target_ce = 0.05
max_steps = 300
window_steps = 10
projection_dim = 32
[[experiments]]
task = "fashion_mnist"
architecture = "mlp"
[experiments.fixed]
width = 8
depth = 1
batch_size = 16
[experiments.grid]
lr = [0.05, 0.1]
train_size = [40, 60]
"""


def test_plan_is_a_balanced_partition_by_key_and_ignores_workers():
    configs = expand(load_spec("mini"))
    plan = plan_populations(configs, 16)
    assert plan == plan_populations(configs, 16)
    assert sorted(i for members in plan for i in members) == list(range(len(configs)))
    for members in plan:
        assert len({population_key(configs[i].train) for i in members}) == 1
        assert members == sorted(members) and 1 <= len(members) <= 16
    # groups split into equal chunks: a group of 18 gives 9 + 9, not 16 + 2
    sizes = {}
    for members in plan:
        sizes.setdefault(population_key(configs[members[0]].train), []).append(len(members))
    assert all(max(s) - min(s) <= 1 for s in sizes.values())
    assert [[i] for i in range(len(configs))] == plan_populations(configs, 1)
    assert DEFAULT_POPULATION_SIZE > 1
    with pytest.raises(ValueError, match="population size"):
        plan_populations(configs, 0)


def test_population_key_separates_shapes_and_keeps_hyperparameters_together():
    configs = expand(parse_spec(SMALL))
    keys = {population_key(mc.train) for mc in configs}
    assert len(keys) == 2  # the two train-set sizes; lr and seed vary within a population
    timm = dataclasses.replace(configs[0].train, architecture="resnet10t")
    assert population_key(timm) is None  # not vectorised: trained alone


def _files(root: Path) -> dict[str, str]:
    manifest = pd.read_parquet(root / "public" / "manifest.parquet").set_index("model_id").sort_index()
    hashes = manifest[[c for c in manifest.columns if c.startswith("sha256.") and c != "sha256.config.json"]]
    answers = pd.read_parquet(root / "answers" / "answers.parquet").set_index("model_id").sort_index()
    return {"files": hashes.to_dict(), "answers": answers.to_json()}


@pytest.fixture(scope="module")
def alone_zoo(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("alone") / "zoo"
    report = build_zoo(parse_spec(SMALL), root, workers=1, progress=False, population_size=1)
    assert report.ok and report.n_trained == 8
    return root


@pytest.mark.slow
def test_population_build_equals_alone_build_with_any_worker_count(alone_zoo, tmp_path):
    report = build_zoo(parse_spec(SMALL), tmp_path / "zoo", workers=2, progress=False)
    assert report.ok and report.n_trained == 8 and report.n_retried == 0
    assert _files(tmp_path / "zoo") == _files(alone_zoo)
    again = build_zoo(parse_spec(SMALL), tmp_path / "zoo", workers=1, progress=False)
    assert again.n_trained == 0 and again.n_skipped == 8


def poisoned_init() -> dict:
    """A training worker in which one population member's weights turn NaN at step 5."""
    import model_zoo.population as population
    from model_zoo.build import worker_init

    context = worker_init()
    real = population._Population._step

    def step(self):
        if self.steps == 5:
            for row, member in enumerate(self.members):
                if member.cfg.lr == 0.1 and member.cfg.train_size == 60 and member.cfg.seed == 1:
                    self.flat[row] = float("nan")
        return real(self)

    population._Population._step = step
    return context


def crashing_init() -> dict:
    """A training worker whose population job dies after publishing its first member."""
    import model_zoo.population as population
    from model_zoo.build import worker_init

    context = worker_init()
    real = population.train_population

    def train(cfgs, *args, on_done=None, **kwargs):
        def first_then_crash(outcome):
            on_done(outcome)
            raise RuntimeError("worker lost")

        return real(cfgs, *args, on_done=first_then_crash, **kwargs)

    population.train_population = train
    return context


@pytest.mark.slow
@pytest.mark.parametrize("init, retried", [("poisoned_init", 1), ("crashing_init", 6)])
def test_failed_members_are_retried_alone_and_the_others_are_unchanged(alone_zoo, tmp_path, init, retried):
    from model_zoo.executor import Lane, ProcessLauncher

    env = training_env({**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), str(REPO)])})
    lane = Lane("train", init=f"test_population:{init}", launcher=ProcessLauncher(env=env))
    report = build_zoo(parse_spec(SMALL), tmp_path / "zoo", workers=1, progress=False, lane=lane)
    assert report.ok and report.n_trained == 8 and report.n_retried == retried
    assert _files(tmp_path / "zoo") == _files(alone_zoo)
    assert store.verify(tmp_path / "zoo") == []
