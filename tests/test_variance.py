"""Main-effect shares against a known additive design (model_zoo.variance)."""

import itertools

import numpy as np
import pandas as pd
import pytest

from model_zoo.variance import main_effect_shares


def _grid(effects: dict[str, list[float]], seeds: int, noise: float, rng: np.random.Generator) -> pd.DataFrame:
    rows = []
    for levels in itertools.product(*(range(len(v)) for v in effects.values())):
        cfg = "-".join(map(str, levels))
        for _ in range(seeds):
            gap = sum(effects[a][lv] for a, lv in zip(effects, levels)) + noise * rng.standard_normal()
            rows.append({"config_id": cfg, "gap": gap, **{a: lv for a, lv in zip(effects, levels)}})
    return pd.DataFrame(rows)


def test_additive_grid_without_noise_has_the_textbook_shares():
    # two-level effects +-1 and +-2 in a balanced grid: variances 1 and 4, shares 0.2 and 0.8
    frame = _grid({"lr": [-1.0, 1.0], "width": [-2.0, 2.0], "optimizer": [0.0, 0.0]}, seeds=2, noise=0.0,
                  rng=np.random.default_rng(0))
    shares = main_effect_shares(frame, ["lr", "width", "optimizer"])
    assert shares["lr"] == pytest.approx(0.2)
    assert shares["width"] == pytest.approx(0.8)
    assert shares["optimizer"] == pytest.approx(0.0)
    assert shares["seed"] == pytest.approx(0.0) and shares["interactions"] == pytest.approx(0.0, abs=1e-12)


def test_shares_add_to_one_with_seed_noise_and_an_interaction():
    rng = np.random.default_rng(1)
    frame = _grid({"lr": [0.0, 1.0], "label_noise": [0.0, 1.0, 2.0]}, seeds=3, noise=0.3, rng=rng)
    frame.loc[(frame.lr == 1) & (frame.label_noise == 2), "gap"] += 1.5  # an interaction
    shares = main_effect_shares(frame, ["lr", "label_noise"])
    assert sum(shares.values()) == pytest.approx(1.0)
    assert shares["interactions"] > 0.02 and 0 < shares["seed"] < 0.2
    assert shares["label_noise"] > shares["lr"]


def test_constant_gaps_give_nan_not_a_division_error():
    frame = _grid({"lr": [0.0, 0.0]}, seeds=2, noise=0.0, rng=np.random.default_rng(0))
    assert all(np.isnan(v) for v in main_effect_shares(frame, ["lr"]).values())


def test_zoo_info_shares_leave_out_models_that_did_not_converge(capsys):
    from model_zoo.cli import _echo_variance_shares

    frame = _grid({"lr": [-1.0, 1.0], "width": [-2.0, 2.0]}, seeds=2, noise=0.0, rng=np.random.default_rng(0))
    frame["model_id"] = [f"m{i}" for i in range(len(frame))]
    frame["task"], frame["status"], frame["axes"] = "t", "converged", "lr,width"
    frame["hp.lr"], frame["hp.width"] = frame["lr"], frame["width"]
    diverged = frame.iloc[[0]].assign(model_id="bad", status="not_converged", gap=80.0)
    manifest = pd.concat([frame, diverged], ignore_index=True)
    _echo_variance_shares(manifest.drop(columns="gap"), manifest.set_index("model_id")[["gap"]])
    line = capsys.readouterr().out.splitlines()[1]
    assert "lr 20%" in line and "width 80%" in line and "(1 not converged left out)" in line
