"""Tests of benchmark.metrics against independent references and hand-computed cases."""

from __future__ import annotations

import itertools
import math
import time

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from benchmark.metrics import (
    SCORE_METRICS,
    average_over_seeds,
    bootstrap_ci,
    cmi_details,
    cmi_signed,
    conditional_mutual_information,
    granulated_psi,
    kendall_tau,
    robust_sign_error,
    score_task,
    selection_regret,
)

# ---------------------------------------------------------------------------- helpers


def grid_frame(
    levels: dict[str, int],
    gap_fn,
    *,
    seeds: int = 1,
    noise: float = 0.0,
    rng_seed: int = 0,
) -> pd.DataFrame:
    """A full-factorial task frame; hp values are strings 'v0', 'v1', ...; gap = gap_fn(codes)."""
    rng = np.random.default_rng(rng_seed)
    rows = []
    names = list(levels)
    for ci, combo in enumerate(itertools.product(*[range(k) for k in levels.values()])):
        for s in range(seeds):
            gap = float(gap_fn(combo)) + noise * float(rng.standard_normal())
            row = {
                "model_id": f"m{ci:03d}s{s}",
                "config_id": f"c{ci:03d}",
                "seed": s,
                "gap": gap,
                "test_error": 0.2 + gap,
            }
            row.update({f"hp.{n}": f"v{c}" for n, c in zip(names, combo)})
            rows.append(row)
    return pd.DataFrame(rows)


def frame(rows: list[tuple], axes: list[str]) -> pd.DataFrame:
    """Rows (config_id, seed, *hp strings, score, gap[, test_error]) to a task frame."""
    out = []
    for r in rows:
        cid, seed, *rest = r
        hp = rest[: len(axes)]
        vals = rest[len(axes) :]
        d = {"model_id": f"{cid}_{seed}", "config_id": cid, "seed": seed}
        d.update({f"hp.{a}": v for a, v in zip(axes, hp)})
        d["score"], d["gap"] = vals[0], vals[1]
        d["test_error"] = vals[2] if len(vals) > 2 else vals[1] + 0.1
        out.append(d)
    return pd.DataFrame(out)


def pgdl_reference_cmi(df: pd.DataFrame, axes: list[str], include_self: bool = True) -> float:
    """A literal, loop-based reading of the PGDL 2020 scoring program's CMI (one model/config).

    Dict-of-counts tables over all ordered model pairs (self pairs included), keyed by the
    two models' values on an ordered pair of axes; entropy with PGDL's 1e-12; the ratio of
    bin-averaged MI to bin-averaged gap-sign entropy; minimum over ordered axis pairs; x100.
    """
    recs = df.to_dict("records")
    best = math.inf
    for h1 in axes:
        for h2 in axes:
            if h1 == h2:
                continue
            tables: dict[tuple, list[list[int]]] = {}
            for r1 in recs:
                for r2 in recs:
                    if not include_self and r1["config_id"] == r2["config_id"]:
                        continue
                    key = (r1[f"hp.{h1}"], r2[f"hp.{h1}"], r1[f"hp.{h2}"], r2[f"hp.{h2}"])
                    t = tables.setdefault(key, [[0, 0], [0, 0]])
                    t[0 if r1["gap"] > r2["gap"] else 1][0 if r1["score"] > r2["score"] else 1] += 1
            mis, hs = [], []
            for t in tables.values():
                n = sum(map(sum, t))
                rows = [sum(t[i]) / n for i in range(2)]
                cols = [(t[0][j] + t[1][j]) / n for j in range(2)]
                mi = 0.0
                for i in range(2):
                    for j in range(2):
                        joint = t[i][j] / n
                        if joint:
                            mi += joint * math.log2(joint / (rows[i] * cols[j]))
                mis.append(mi)
                hs.append(-sum(p * math.log2(p + 1e-12) for p in rows))
            best = min(best, (sum(mis) / len(mis)) / (sum(hs) / len(hs)))
    return 100.0 * best


def binary_entropy(p: float) -> float:
    return -(p * math.log2(p) + (1 - p) * math.log2(1 - p))


# The 3-axis binary grid with gap = 4c + 2b + a (distinct gaps 0..7), one model per config.
CUBE = {"a": 2, "b": 2, "c": 2}


def cube(score_fn) -> pd.DataFrame:
    df = grid_frame(CUBE, lambda k: 4 * k[2] + 2 * k[1] + k[0])
    codes = df[["hp.a", "hp.b", "hp.c"]].apply(lambda col: col.str[1:].astype(int)).to_numpy()
    df["score"] = [float(score_fn(k, g)) for k, g in zip(codes, df["gap"])]
    return df


# ---------------------------------------------------------------------------- Kendall tau


@pytest.mark.parametrize("n", [2, 5, 17, 60])
@pytest.mark.parametrize("rng_seed", [0, 1, 2])
def test_kendall_tau_matches_scipy_with_ties(n, rng_seed):
    rng = np.random.default_rng(rng_seed)
    x = rng.integers(0, 4, n).astype(float)  # many ties
    y = x + rng.integers(-2, 3, n)
    ref = stats.kendalltau(x, y).statistic
    got = kendall_tau(x, y)
    if np.isnan(ref):
        assert np.isnan(got)
    else:
        assert got == pytest.approx(ref, abs=1e-12)


def test_kendall_tau_continuous_and_constant():
    rng = np.random.default_rng(5)
    x, y = rng.standard_normal(40), rng.standard_normal(40)
    assert kendall_tau(x, y) == pytest.approx(stats.kendalltau(x, y).statistic, abs=1e-12)
    assert kendall_tau(x, x) == pytest.approx(1.0)
    assert kendall_tau(x, -x) == pytest.approx(-1.0)
    assert np.isnan(kendall_tau(np.ones(5), x[:5]))
    with pytest.raises(ValueError, match="finite"):
        kendall_tau([1.0, np.nan], [1.0, 2.0])
    with pytest.raises(ValueError, match="values"):
        kendall_tau([1.0, 2.0], [1.0])


# ---------------------------------------------------------------------------- 2x2 grid, by hand

AXES_2 = ["a", "b"]
# config, seed, a, b, score, gap
GRID_2X2 = [
    ("c00", 0, "0", "x", 1.0, 0.10),
    ("c10", 0, "1", "x", 3.0, 0.20),
    ("c01", 0, "0", "y", 2.0, 0.30),
    ("c11", 0, "1", "y", 4.0, 0.25),
]


def test_2x2_grid_hand_computed():
    df = frame(GRID_2X2, AXES_2)
    # pairs: 4 concordant, 2 discordant -> (4 - 2) / 6
    assert kendall_tau(df["score"], df["gap"]) == pytest.approx(1 / 3)
    psi = granulated_psi(df, AXES_2)
    # axis a: group b=x concordant (+1), group b=y discordant (-1); axis b: both +1
    assert psi.per_axis == {"a": 0.0, "b": 1.0}
    assert psi.n_groups == {"a": 2, "b": 2}
    assert psi.psi == 0.5
    se = robust_sign_error(df, AXES_2)
    # environments: (c00,c10) right, (c01,c11) wrong, (c00,c01) right, (c10,c11) right
    assert len(se.per_env) == 4
    assert se.mean == 0.25
    assert se.p90 == pytest.approx(0.7)  # np.percentile([0, 0, 0, 1], 90), linear
    assert se.max == 1.0
    wrong = se.per_env[se.per_env["error"] == 1.0].iloc[0]
    assert (wrong["axis"], wrong["config_a"], wrong["config_b"]) == ("a", "c01", "c11")
    assert (wrong["value_a"], wrong["value_b"]) == ("0", "1")
    # lowest score is c00 (test error 0.20), best test error is also c00's
    assert selection_regret(df) == 0.0
    # conditioning on both axes of a 2-axis grid leaves one pair per bin: CMI is undefined
    assert np.isnan(conditional_mutual_information(df, AXES_2))


# ---------------------------------------------------------------------------- Psi


def test_psi_perfect_inverted_and_seed_averaging():
    df = grid_frame({"lr": 3, "bs": 2, "width": 2}, lambda k: k[0] + 0.5 * k[1] - 0.3 * k[2],
                    seeds=3, noise=0.05)
    # score = per-model gap: its seed mean is the config's mean gap, so Psi is exactly 1
    df["score"] = df["gap"]
    res = granulated_psi(df, ["lr", "bs", "width"])
    assert res.psi == 1.0 and all(v == 1.0 for v in res.per_axis.values())
    assert res.n_groups == {"lr": 4, "bs": 6, "width": 6}
    df["score"] = -df["gap"]
    assert granulated_psi(df, ["lr", "bs", "width"]).psi == -1.0


def test_psi_ties_count_as_zero_and_missing_configs_are_skipped():
    rows = [  # axis a has 3 values; in group b=x the score is constant
        ("c0x", 0, "0", "x", 1.0, 0.1),
        ("c1x", 0, "1", "x", 1.0, 0.2),
        ("c2x", 0, "2", "x", 1.0, 0.3),
        ("c0y", 0, "0", "y", 1.0, 0.1),
        ("c1y", 0, "1", "y", 2.0, 0.2),
        ("c2y", 0, "2", "y", 0.0, 0.3),  # c2y beats c1y: one discordant, two concordant pairs
        ("c0z", 0, "0", "z", 5.0, 0.4),  # b=z has only one config: no group for axis a
    ]
    res = granulated_psi(frame(rows, AXES_2), AXES_2)
    # axis a, tau-a: group x = 0 (score tied), group y: pairs (0,1)+, (0,2)-, (1,2)- -> -1/3
    assert res.n_groups["a"] == 2
    assert res.per_axis["a"] == pytest.approx((0.0 + (-1 / 3)) / 2)
    # axis b: group a=0 (x, y, z): scores 1, 1, 5, gaps .1, .1, .4 -> (x,y) tie, (x,z)+, (y,z)+
    # groups a=1 (x, y): scores 1, 2 gaps .2, .2 -> tie -> 0 ; a=2: scores 1, 0 gaps .3 .3 -> 0
    assert res.per_axis["b"] == pytest.approx((2 / 3 + 0 + 0) / 3)


def test_random_predictor_scores_near_zero():
    levels = {"a": 4, "b": 4, "c": 4}
    df = grid_frame(levels, lambda k: k[0] + 2 * k[1] + 3 * k[2], noise=0.5)
    df["score"] = np.random.default_rng(11).standard_normal(len(df))
    axes = list(levels)
    assert abs(granulated_psi(df, axes).psi) < 0.15
    assert conditional_mutual_information(df, axes) < 15.0  # plug-in bias; perfect is 100
    assert abs(cmi_signed(df, axes)) < 15.0
    assert abs(kendall_tau(df["score"], df["gap"])) < 0.2
    assert 0.35 < robust_sign_error(df, axes).mean < 0.65


# ---------------------------------------------------------------------------- CMI


def test_cmi_perfect_predictor_is_100():
    df = cube(lambda k, g: g)
    res = cmi_details(df, list(CUBE))
    assert res.cmi == pytest.approx(100.0, rel=1e-9)
    assert res.cmi_signed == pytest.approx(100.0, rel=1e-9)
    assert all(v == pytest.approx(100.0, rel=1e-9) for v in res.per_set.values())


def test_cmi_inverted_predictor_by_hand():
    """score = -gap on the cube, worked out bin by bin.

    Conditioning on (b, c) leaves a (weight 1) free. Off-diagonal bins (b or c differ) hold 4
    pairs whose gap order is fixed by b, c: H = 0. The 4 diagonal bins hold the pairs
    (a_i, a_j) in {00, 01, 10, 11}: two self pairs (-gap, -measure) and the two real pairs,
    which the inverted score gets wrong: table (+,-) = 1, (-,+) = 1, (-,-) = 2, so
    I = 1/2 log2(32/27) while H = H(1/4). CMI = 100 * I / H; the other axis pairs are larger.
    With self pairs dropped the diagonal bins hold two pairs, I = H = 1, and CMI = 100.
    """
    df = cube(lambda k, g: -g)
    expected = 100 * (0.5 * math.log2(32 / 27)) / binary_entropy(0.25)
    res = cmi_details(df, list(CUBE))
    assert res.argmin == ("b", "c")
    assert res.cmi == pytest.approx(expected, rel=1e-9)  # 15.107...
    assert res.cmi_signed == pytest.approx(-expected, rel=1e-9)
    # conditioning on (a, b): 12 of 16 bins are inverted perfectly, 4 diagonal ones partly
    m_over_h = (0.5 * math.log2(32 / 27)) / binary_entropy(0.25)
    assert res.per_set[("a", "b")] == pytest.approx(100 * (0.75 + 0.25 * m_over_h), rel=1e-9)
    assert res.per_set[("a", "c")] == pytest.approx(100 * (0.5 + 0.5 * m_over_h), rel=1e-9)

    no_self = cmi_details(df, list(CUBE), include_self_pairs=False)
    perfect = cmi_details(cube(lambda k, g: g), list(CUBE), include_self_pairs=False)
    assert no_self.cmi == pytest.approx(100.0, rel=1e-9)
    assert no_self.cmi_signed == pytest.approx(-perfect.cmi_signed, rel=1e-12)


def test_cmi_of_a_hyperparameter_is_zero_while_its_psi_is_high():
    df = cube(lambda k, g: k[2])  # the score is axis c's value; the gap grows with c
    assert conditional_mutual_information(df, list(CUBE)) == 0.0
    assert cmi_signed(df, list(CUBE)) == 0.0
    psi = granulated_psi(df, list(CUBE))
    assert psi.per_axis["c"] == 1.0
    assert psi.per_axis["a"] == 0.0 and psi.per_axis["b"] == 0.0


@pytest.mark.parametrize("rng_seed", [0, 1, 2])
@pytest.mark.parametrize("include_self", [True, False])
def test_cmi_matches_loop_reference(rng_seed, include_self):
    rng = np.random.default_rng(rng_seed)
    levels = {"a": 3, "b": 2, "c": 2, "d": 2}
    df = grid_frame(levels, lambda k: k[0] + k[1] - 0.5 * k[2] + 0.2 * k[3], noise=0.3,
                    rng_seed=rng_seed)
    # rounded so that scores tie often (ties fall in the '-measure' cell)
    df["score"] = np.round(df["gap"] + rng.standard_normal(len(df)), 0)
    axes = list(levels)
    ref = pgdl_reference_cmi(df, axes, include_self=include_self)
    got = conditional_mutual_information(df, axes, include_self_pairs=include_self)
    assert got == pytest.approx(ref, rel=1e-9, abs=1e-9)


def test_cmi_single_axis_conditions_on_it():
    # one axis: bins are (a_i, a_j); with a perfect score every bin's MI equals its entropy
    df = grid_frame({"a": 3}, lambda k: k[0], seeds=1)
    df = pd.concat([df, df.assign(config_id=df["config_id"] + "b", model_id=df["model_id"] + "b",
                                  gap=df["gap"] + 0.5)])
    df["score"] = df["gap"]
    assert conditional_mutual_information(df, ["a"]) == pytest.approx(100.0, rel=1e-9)


# ---------------------------------------------------------------------------- sign error


def test_sign_error_hand_built_environments():
    # A = (a0, b0); B differs in a; C differs in b; B and C differ in both: no environment
    rows = [
        ("A", 0, "a0", "b0", 1.0, 0.10),
        ("A", 1, "a0", "b0", 2.0, 0.30),
        ("B", 0, "a1", "b0", 3.0, 0.20),
        ("B", 1, "a1", "b0", 2.0, 0.20),
        ("C", 0, "a0", "b1", 0.5, 0.30),
        ("C", 1, "a0", "b1", 0.5, 0.10),
    ]
    df = frame(rows, AXES_2)
    res = robust_sign_error(df, AXES_2)
    env = res.per_env.set_index(["config_a", "config_b"])
    assert set(env.index) == {("A", "B"), ("A", "C")}
    # A-B: cross pairs right, right, wrong (1), score tie (1/2) -> 1.5 / 4
    assert env.loc[("A", "B"), "error"] == 0.375
    assert env.loc[("A", "B"), "axis"] == "a"
    # A-C: two pairs with equal gaps have no right answer (weight 0): 1 wrong, 1 right
    assert env.loc[("A", "C"), "error"] == 0.5
    assert env.loc[("A", "C"), "n_pairs"] == 4 and env.loc[("A", "C"), "n_weighted"] == 2
    assert res.mean == pytest.approx(0.4375)
    assert res.p90 == pytest.approx(0.375 + 0.9 * 0.125)
    assert res.max == 0.5
    # Monte Carlo noise filter: |gap difference| must exceed 0.15; A-B (all 0.1) drops out
    filt = robust_sign_error(df, AXES_2, min_gap_diff=0.15)
    assert len(filt.per_env) == 1
    assert (filt.mean, filt.p90, filt.max) == (0.5, 0.5, 0.5)


def test_sign_error_perfect_and_inverted():
    df = grid_frame({"a": 3, "b": 2}, lambda k: k[0] + 2 * k[1], seeds=2, noise=0.1)
    df["score"] = df["gap"]
    ok = robust_sign_error(df, ["a", "b"])
    assert (ok.mean, ok.max) == (0.0, 0.0)
    df["score"] = -df["gap"]
    bad = robust_sign_error(df, ["a", "b"])
    assert (bad.mean, bad.max) == (1.0, 1.0)
    # 3 values of a x 2 of b: 2 groups * C(3, 2) + 3 groups * 1 = 9 environments
    assert len(bad.per_env) == 9


# ---------------------------------------------------------------------------- regret


def test_selection_regret_hand_computed_with_ties():
    rows = [  # config, seed, a, score, gap, test_error
        ("p", 0, "1", 0.5, 0.1, 0.30),
        ("p", 1, "1", 0.7, 0.1, 0.40),  # mean score 0.6, mean error 0.35
        ("q", 0, "2", 0.6, 0.1, 0.25),  # ties p at the lowest mean score
        ("r", 0, "3", 0.9, 0.1, 0.10),  # best test error
    ]
    df = frame(rows, ["a"])
    # picked: p or q at random -> mean(0.35, 0.25) = 0.30; best 0.10
    assert selection_regret(df) == pytest.approx(0.20)
    df.loc[df["config_id"] == "r", "score"] = 0.1
    assert selection_regret(df) == 0.0


# ---------------------------------------------------------------------------- exact strings


def test_hp_values_are_grouped_by_their_strings_never_reparsed():
    axes = ["lr", "width"]
    rows = [
        ("c1", 0, "0.001585", "16", 1.0, 0.10),
        ("c1", 1, "0.001585", "16", 1.2, 0.12),
        ("c2", 0, "0.0015848", "16", 2.0, 0.20),
        ("c3", 0, "1e-3", "16", 3.0, 0.30),
        ("c4", 0, "0.001", "16", 4.0, 0.40),  # the same float as "1e-3", another string
    ]
    df = frame(rows, axes)
    avg = average_over_seeds(df, axes)
    assert list(avg["hp.lr"]) == ["0.001585", "0.0015848", "1e-3", "0.001"]
    assert list(avg["n_seeds"]) == [2, 1, 1, 1]
    assert avg.loc[0, "gap"] == pytest.approx(0.11) and avg.loc[0, "score"] == pytest.approx(1.1)
    # four values of lr in one group (width 16): 4 * 3 ordered pairs, all concordant
    psi = granulated_psi(df, axes)
    assert psi.n_groups["lr"] == 1 and psi.per_axis["lr"] == 1.0
    # every pair of the four configs differs in lr only: C(4, 2) environments
    assert len(robust_sign_error(df, axes).per_env) == 6

    floats = df.assign(**{"hp.lr": [0.001585, 0.001585, 0.0015848, 1e-3, 0.001]})
    with pytest.raises(TypeError, match="hp.lr.*strings"):
        granulated_psi(floats, axes)


def test_input_validation_names_the_problem():
    df = frame(GRID_2X2, AXES_2)
    with pytest.raises(ValueError, match="'hp.depth'"):
        granulated_psi(df, ["a", "depth"])
    with pytest.raises(ValueError, match="score"):
        granulated_psi(df.drop(columns="score"), AXES_2)
    bad = df.copy()
    bad.loc[0, "score"] = np.nan
    with pytest.raises(ValueError, match="non-finite"):
        granulated_psi(bad, AXES_2)
    clash = pd.concat([df, df.iloc[[0]].assign(**{"hp.b": "y", "seed": 1})])
    with pytest.raises(ValueError, match="config_id 'c00'.*hp.b"):
        average_over_seeds(clash, AXES_2)


# ---------------------------------------------------------------------------- bootstrap


def _noisy_task(rng_seed: int = 0) -> tuple[pd.DataFrame, list[str]]:
    levels = {"lr": 2, "bs": 2, "width": 2, "depth": 2, "wd": 2}
    df = grid_frame(levels, lambda k: 0.05 * (k[0] + 2 * k[1] - k[2] + 0.5 * k[3] + 0.2 * k[4]),
                    seeds=2, noise=0.02, rng_seed=rng_seed)
    df["score"] = df["gap"] + 0.03 * np.random.default_rng(rng_seed + 100).standard_normal(len(df))
    df["test_error"] = 0.2 + df["gap"] + 0.01 * np.random.default_rng(7).standard_normal(len(df))
    return df, list(levels)


def test_bootstrap_ci_contains_estimate_and_is_deterministic():
    df, _ = _noisy_task()

    def tau(d):
        return kendall_tau(d["score"], d["gap"])

    point = tau(df)
    low, high = bootstrap_ci(df, tau, n_boot=100, seed=3)
    assert low <= point <= high and low < high
    assert bootstrap_ci(df, tau, n_boot=100, seed=3) == (low, high)
    assert bootstrap_ci(df, tau, n_boot=100, seed=4) != (low, high)
    wide = bootstrap_ci(df, tau, n_boot=100, seed=3, level=0.99)
    assert wide[0] <= low and wide[1] >= high


def test_bootstrap_ci_resamples_whole_configs_and_ignores_nan():
    df, _ = _noisy_task()
    seen = []

    def stat(d):
        # every drawn config keeps both seeds, and copies get distinct config ids
        assert (d.groupby("config_id").size() == 2).all()
        assert d["config_id"].nunique() == df["config_id"].nunique()
        seen.append(len(d))
        return np.nan if len(seen) % 2 else float(len(seen))

    low, high = bootstrap_ci(df, stat, n_boot=10, seed=0)
    assert set(seen) == {len(df)}
    assert (low, high) == tuple(np.percentile([2.0, 4, 6, 8, 10], [2.5, 97.5]))
    assert all(np.isnan(bootstrap_ci(df, lambda d: np.nan, n_boot=5)))


# ---------------------------------------------------------------------------- score_task


def test_score_task_rows_and_consistency_with_bootstrap_ci():
    df, axes = _noisy_task()
    rows = score_task(df, axes, n_boot=40, seed=1)
    expected = [m for m in SCORE_METRICS for _ in (axes if m == "psi_axis" else [""])]
    assert [r["metric"] for r in rows] == expected
    assert set(SCORE_METRICS) == {
        "kendall_tau", "psi", "psi_axis", "cmi", "cmi_signed",
        "sign_error_mean", "sign_error_p90", "sign_error_max", "regret",
    }
    assert [r["axis"] for r in rows if r["metric"] == "psi_axis"] == axes
    assert {tuple(sorted(r)) for r in rows} == {
        ("axis", "ci_high", "ci_low", "metric", "n_models", "value")
    }
    by = {(r["metric"], r["axis"]): r for r in rows}
    assert all(r["n_models"] == len(df) for r in rows)

    reference = {
        ("kendall_tau", ""): lambda d: kendall_tau(d["score"], d["gap"]),
        ("psi", ""): lambda d: granulated_psi(d, axes).psi,
        ("psi_axis", "bs"): lambda d: granulated_psi(d, axes).per_axis["bs"],
        ("cmi", ""): lambda d: conditional_mutual_information(d, axes),
        ("cmi_signed", ""): lambda d: cmi_signed(d, axes),
        ("sign_error_mean", ""): lambda d: robust_sign_error(d, axes).mean,
        ("sign_error_p90", ""): lambda d: robust_sign_error(d, axes).p90,
        ("sign_error_max", ""): lambda d: robust_sign_error(d, axes).max,
        ("regret", ""): lambda d: selection_regret(d),
    }
    for key, fn in reference.items():
        assert by[key]["value"] == pytest.approx(fn(df), rel=1e-9, abs=1e-12), key
        low, high = bootstrap_ci(df, fn, n_boot=40, seed=1)
        assert (by[key]["ci_low"], by[key]["ci_high"]) == pytest.approx((low, high), rel=1e-9,
                                                                         abs=1e-12), key


def test_score_task_drops_failed_models_and_handles_all_failed():
    df, axes = _noisy_task()
    df.loc[df.index[:3], "score"] = np.nan
    rows = score_task(df, axes, n_boot=5)
    assert all(r["n_models"] == len(df) - 3 for r in rows)
    assert all(np.isfinite(r["value"]) for r in rows)
    df["score"] = np.nan
    rows = score_task(df, axes, n_boot=5)
    assert all(r["n_models"] == 0 and np.isnan(r["value"]) for r in rows)


def test_score_task_is_fast_enough():
    df, axes = _noisy_task()  # 64 models, 5 axes
    start = time.perf_counter()
    score_task(df, axes, n_boot=200, seed=0)
    elapsed = time.perf_counter() - start
    # ~0.45 s measured on the shared 2-core box; the bound leaves room for a loaded machine
    assert elapsed < 3.0, f"score_task took {elapsed:.2f} s for 64 models, 5 axes, 200 replicates"


def test_score_task_returns_replicates_aligned_with_rows():
    df, axes = _noisy_task()
    rows, reps = score_task(df, axes, n_boot=30, seed=2, return_replicates=True)
    assert reps.shape == (30, len(rows))
    assert rows == score_task(df, axes, n_boot=30, seed=2)
    for k, r in enumerate(rows):
        finite = reps[:, k][np.isfinite(reps[:, k])]
        expected = tuple(np.percentile(finite, [2.5, 97.5]))
        assert (r["ci_low"], r["ci_high"]) == pytest.approx(expected, rel=1e-12, abs=1e-15)
    df["score"] = np.nan
    rows, reps = score_task(df, axes, n_boot=4, return_replicates=True)
    assert reps.shape == (4, len(rows)) and np.isnan(reps).all()
