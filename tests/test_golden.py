"""Golden values: every baseline's score on every micro-zoo model, as committed in tests/golden/.

The micro zoo is byte-identical on every machine (model_zoo.determinism), and predictor workers
run under the same pinned numerics (`benchmark.predict.worker_init`), so the baselines' scores
are too (rel. 1e-9). Before the workers were pinned, an AVX-512 machine moved 58 of the 224
values in their 7th digit against golden values written on another CPU. A change
that moves one is a change to the board: bump the predictor's version (or the training code
version, which changes every model id) and regenerate the file on purpose:

    GAPBENCH_DATA_MIRROR=../shared/data python -m tests.test_golden ZOO_DIR
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest

GOLDEN = Path(__file__).parent / "golden" / "micro_baselines.json"
BASELINES = ("batch_over_lr", "distance_to_init", "inverse_margin", "parameter_count", "path_norm",
             "spectral_norm_product", "train_loss", "weight_norm")


def baseline_scores(zoo_root: Path, results_dir: Path) -> dict:
    """{"zoo_id", "scores": {predictor: {model_id: score}}} of the baselines on a built zoo (no sandbox)."""
    from benchmark.predict import predict
    from benchmark.sandbox import Isolation
    from model_zoo.zoo import Zoo
    from predictors.api import DEFAULT_BUDGET_SECONDS
    from predictors.registry import resolve_names

    refs = resolve_names(list(BASELINES))
    report = predict(zoo_root, refs, results_dir=results_dir, workers=2, budget_seconds=DEFAULT_BUDGET_SECONDS,
                     isolation=Isolation(sandbox=False, memory_mb=4096), progress=False)
    preds = report.predictions
    assert (preds.status == "ok").all(), preds[preds.status != "ok"].reason.tolist()[:3]
    scores = {name: {r.model_id: float(r.score) for r in rows.itertuples()}
              for name, rows in preds.groupby("predictor", sort=True)}
    versions = {r.name: r.version for r in refs}
    return {"zoo_id": Zoo(zoo_root).zoo_id, "versions": versions, "scores": scores}


@pytest.mark.slow
def test_baselines_on_the_micro_zoo_match_the_golden_values(micro_zoo, tmp_path):
    golden = json.loads(GOLDEN.read_text())
    got = baseline_scores(micro_zoo, tmp_path / "results")
    assert got["zoo_id"] == golden["zoo_id"], (
        f"the micro zoo's id changed ({golden['zoo_id']} -> {got['zoo_id']}): regenerate {GOLDEN} on purpose")
    assert got["versions"] == golden["versions"], "a baseline's version changed: regenerate the golden file"
    wrong = []
    for name, expected in golden["scores"].items():
        assert set(got["scores"][name]) == set(expected), name
        for mid, value in expected.items():
            if not math.isclose(got["scores"][name][mid], value, rel_tol=1e-9, abs_tol=1e-12):
                wrong.append(f"{name} {mid}: {got['scores'][name][mid]!r} != golden {value!r}")
    assert not wrong, "\n".join(wrong[:10])


def test_golden_file_is_complete():
    golden = json.loads(GOLDEN.read_text())
    assert set(golden["scores"]) == set(BASELINES)
    sizes = {len(v) for v in golden["scores"].values()}
    assert sizes == {28}  # every micro model
    assert all(math.isfinite(x) for v in golden["scores"].values() for x in v.values())


if __name__ == "__main__":  # pragma: no cover - regenerates the golden file
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        data = baseline_scores(Path(sys.argv[1]), Path(tmp))
    GOLDEN.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    print(f"wrote {GOLDEN}: {sum(len(v) for v in data['scores'].values())} values")  # noqa: T201
