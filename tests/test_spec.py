"""Zoo specs: validation errors name the file and the offending key/value; grid expansion."""

from __future__ import annotations

import math

import pytest

from model_zoo.axes import AXIS_NAMES as AXES
from model_zoo.axes import canonical as format_value
from model_zoo.spec import (
    SpecError,
    expand,
    load_spec,
    parse_spec,
    shipped_specs,
)

SRC = "bad_spec.toml"


def spec_text(experiment: str = "", top: str = "", training: str = "") -> str:
    exp = experiment or """
[[experiments]]
task = "fashion_mnist"
architecture = "mlp"
[experiments.fixed]
width = 8
[experiments.grid]
lr = [0.01, 0.05]
"""
    return f'name = "t"\nseeds = [0]\n{top}\n[training]\nmax_steps = 10\n{training}\n{exp}'


def experiment(fixed: str = "", grid: str = "lr = [0.01]", task: str = "fashion_mnist", arch: str = '"mlp"') -> str:
    return f"""
[[experiments]]
task = "{task}"
architecture = {arch}
[experiments.fixed]
{fixed}
[experiments.grid]
{grid}
"""


def error_of(text: str) -> str:
    with pytest.raises(SpecError) as info:
        parse_spec(text, source=SRC)
    message = str(info.value)
    assert SRC in message, message
    return message


def test_valid_spec_parses():
    spec = parse_spec(spec_text(), source=SRC)
    assert spec.name == "t" and spec.tasks == ["fashion_mnist"]
    assert spec.text.startswith('name = "t"')


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        (spec_text(top="colour = 1"), "colour"),
        (spec_text(training="max_stepz = 3"), "training.max_stepz"),
        (spec_text(experiment=experiment().replace("task =", "oops = 1\ntask =")), "oops"),
        (spec_text(experiment=experiment().replace("[experiments.fixed]", 'taks = "x"\n[experiments.fixed]')), "taks"),
    ],
)
def test_unknown_key_is_named(text, needle):
    message = error_of(text)
    assert "unknown key" in message and needle in message


def test_unknown_axis_suggests():
    message = error_of(spec_text(experiment=experiment(grid="learning_rat = [0.1]\nwidht = [3]")))
    assert "learning_rat" in message and "widht" in message and "did you mean 'width'" in message


def test_seed_axis_points_to_seeds():
    assert "seeds" in error_of(spec_text(experiment=experiment(grid="seed = [1, 2]")))


def test_empty_axis():
    message = error_of(spec_text(experiment=experiment(grid="width = []")))
    assert "grid.width" in message and "empty" in message


def test_axis_must_be_a_list():
    assert "grid.lr: an axis takes a list" in error_of(spec_text(experiment=experiment(grid="lr = 0.1")))


def test_empty_architecture_list():
    assert "empty" in error_of(spec_text(experiment=experiment(arch="[]")))


def test_unknown_task_did_you_mean():
    message = error_of(spec_text(experiment=experiment(task="fashion_mnst")))
    assert "fashion_mnst" in message and "did you mean 'fashion_mnist'" in message


def test_unknown_architecture():
    message = error_of(spec_text(experiment=experiment(arch='"mpl"')))
    assert "mpl" in message and "did you mean 'mlp'" in message


def test_architecture_of_wrong_modality():
    message = error_of(spec_text(experiment=experiment(arch='["mlp", "m5"]')))
    assert "'m5'" in message and "audio" in message and "vision" in message


def test_axis_both_fixed_and_grid():
    message = error_of(spec_text(experiment=experiment(fixed="lr = 0.1", grid="lr = [0.2]")))
    assert "'lr'" in message and "both" in message


def test_duplicate_values():
    message = error_of(spec_text(experiment=experiment(grid="lr = [0.1, 0.10, 0.2]")))
    assert "grid.lr" in message and "duplicate" in message and "0.1" in message


@pytest.mark.parametrize(
    ("fixed_or_grid", "needle"),
    [
        ("grid:lr = [0.0]", "lr must be > 0"),
        ('grid:lr = ["fast"]', "'fast'"),
        ("fixed:label_noise = 1.0", "label_noise must be < 1"),
        ("fixed:label_noise = -0.1", "label_noise"),
        ("fixed:dropout = 1.5", "dropout"),
        ("grid:batch_size = [0]", "batch_size must be >= 1"),
        ("grid:width = [8.5]", "width must be an integer"),
        ('fixed:optimizer = "rmsprop"', "rmsprop"),
        ('fixed:augmentation = "yes"', "augmentation must be true or false"),
        ("fixed:weight_decay = -1e-4", "weight_decay"),
        ("grid:train_size = [100, 70000]", "train_size 70000 exceeds the fashion_mnist pool of 60000"),
        # strict: no string-to-number or bool coercion, finite values only
        ('fixed:batch_size = "64"', "batch_size must be an integer, got str '64'"),
        ("fixed:batch_size = true", "batch_size must be an integer, got bool True"),
        ("grid:lr = [inf]", "lr must be finite"),
        ("grid:lr = [nan]", "lr must be finite"),
        ("fixed:weight_decay = true", "weight_decay must be a number, got bool"),
    ],
)
def test_bad_values(fixed_or_grid, needle):
    section, line = fixed_or_grid.split(":", 1)
    exp = experiment(fixed=line, grid="lr = [0.01]") if section == "fixed" else experiment(grid=line)
    assert needle in error_of(spec_text(experiment=exp))


def test_strict_top_level_and_training_values():
    assert "seeds[0]" in error_of(spec_text().replace("seeds = [0]", "seeds = [true]"))
    assert "seeds[0]" in error_of(spec_text().replace("seeds = [0]", 'seeds = ["0"]'))
    bad_steps = spec_text().replace("max_steps = 10", 'max_steps = "100"')
    assert "training.max_steps must be an integer, got str" in error_of(bad_steps)
    assert "training.target_ce must be finite" in error_of(spec_text(training="target_ce = inf"))
    assert "training.window_optimizer must be one of" in error_of(spec_text(training='window_optimizer = "rmsprop"'))


def test_huge_grid_is_refused_before_expansion(monkeypatch):
    import time

    values = ", ".join(str(0.001 * (i + 1)) for i in range(100))
    grid = f"lr = [{values}]\nwidth = [{', '.join(str(i + 1) for i in range(100))}]\n" \
           f"train_size = [{', '.join(str(i + 1) for i in range(1000))}]"
    started = time.perf_counter()
    message = error_of(spec_text(experiment=experiment(grid=grid)))
    assert "10,000,000 models" in message and "limit of 100,000" in message
    assert time.perf_counter() - started < 5  # refused from the axis lengths, nothing expanded
    monkeypatch.setenv("GAPBENCH_MAX_MODELS", "1")
    assert "2 models" in error_of(spec_text())
    assert parse_spec(spec_text(), limit=2).n_models == 2


def test_bad_top_level_values():
    assert "seeds" in error_of(spec_text().replace("seeds = [0]", "seeds = []"))
    assert "duplicate seeds" in error_of(spec_text().replace("seeds = [0]", "seeds = [1, 1]"))
    assert "max_steps" in error_of(spec_text().replace("max_steps = 10", "max_steps = 0"))
    assert "invalid TOML" in error_of("name = ")


def test_load_spec_errors_name_the_spec(tmp_path):
    with pytest.raises(SpecError, match="did you mean 'micro'"):
        load_spec("mikro")
    with pytest.raises(SpecError, match="nothere.toml"):
        load_spec(tmp_path / "nothere.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text(spec_text(top="extra_key = 1"))
    with pytest.raises(SpecError, match=r"bad\.toml.*\n.*extra_key"):
        load_spec(bad)


def test_format_value_keeps_spec_strings():
    assert format_value(0.001585) == "0.001585"
    assert format_value(1e-3) == "0.001"
    assert format_value(0.1) == "0.1"
    assert format_value(3.0) == "3.0"
    assert format_value(64) == "64"
    assert format_value(True) == "true" and format_value(False) == "false"
    assert format_value("adam") == "adam"


def test_expand_full_factorial_with_exact_hp_strings():
    exp = experiment(
        fixed="batch_size = 16",
        grid='lr = [0.001585, 1e-2, 0.1]\nwidth = [8, 16]\nlabel_noise = [0.0, 0.25]\naugmentation = [false, true]',
        arch='["mlp", "cnn"]',
    )
    spec = parse_spec(spec_text(experiment=exp).replace("seeds = [0]", "seeds = [0, 1]"), source=SRC)
    models = expand(spec)
    assert len(models) == 3 * 2 * 2 * 2 * 2 * 2
    assert {m.hp["lr"] for m in models} == {"0.001585", "0.01", "0.1"}
    assert {m.hp["augmentation"] for m in models} == {"false", "true"}
    assert {m.hp["batch_size"] for m in models} == {"16"}
    assert all(set(m.hp) == set(AXES) for m in models)
    assert models[0].axes == ("architecture", "lr", "width", "label_noise", "augmentation")
    # 0.001585 reaches the trainer as the parsed float, unrounded
    assert math.isclose(models[0].train.lr, 0.001585, rel_tol=0, abs_tol=0)
    # row-major over axes in canonical order, seeds innermost
    assert [m.seed for m in models[:4]] == [0, 1, 0, 1]
    assert models[0].architecture == "mlp" and models[-1].architecture == "cnn"
    assert models[0].train.max_steps == 10  # from [training]
    ids = [m.model_id for m in models]
    assert len(set(ids)) == len(ids)
    assert models[0].config_id == models[1].config_id and models[0].model_id != models[1].model_id
    assert models[0].model_id.startswith("fashion_mnist-mlp-")
    assert [m.model_id for m in expand(spec)] == ids  # deterministic


def test_defaults_fill_missing_axes():
    spec = parse_spec(spec_text(), source=SRC)
    m = expand(spec)[0]
    assert m.hp["optimizer"] == "sgd" and m.hp["label_noise"] == "0.0" and m.hp["width"] == "8"
    assert m.axes == ("lr",)


def test_zoo_id_tracks_the_spec_not_its_formatting():
    a = parse_spec(spec_text(), source=SRC)
    b = parse_spec("# a comment\n" + spec_text(), source=SRC)
    c = parse_spec(spec_text().replace("0.05]", "0.06]"), source=SRC)
    assert a.zoo_id == b.zoo_id != c.zoo_id
    assert a.zoo_id.startswith("t-")
    assert a.text_sha256 != b.text_sha256


def test_duplicate_models_across_experiments():
    exp = experiment(grid="lr = [0.01]")
    with pytest.raises(SpecError, match="appears twice"):
        expand(parse_spec(spec_text(experiment=exp + exp), source=SRC))


def test_shipped_specs_load_and_expand():
    assert {"micro", "mini", "public", "standard"} <= set(shipped_specs())
    micro = expand(load_spec("micro"))
    assert len(micro) == 28 and {m.task for m in micro} == {"fashion_mnist", "fsdd", "newsgroups"}
    mini_spec = load_spec("mini")
    mini = expand(mini_spec)
    assert len(mini) == 80 and len(mini_spec.seeds) == 2
    assert {m.task for m in mini} == {"fashion_mnist", "fsdd", "newsgroups"}
    assert all({"lr", "batch_size"} <= set(m.axes) and len(m.axes) >= 3 for m in mini)
    assert len(expand(load_spec("standard"))) >= 1000


def test_public_spec_crosses_the_axes_the_claims_are_about():
    """>= 1,000 models, 3 seeds, a 1,000-step window; per task every claim's axis takes >= 2 values."""
    spec = load_spec("public")
    models = expand(spec)
    assert len(models) >= 1000 and len(spec.seeds) >= 3 and spec.protocol()["window_steps"] == 1000
    for task in ("fashion_mnist", "fsdd", "newsgroups"):
        rows = [m for m in models if m.task == task]
        for axis in ("lr", "batch_size", "optimizer", "width", "train_size", "label_noise"):
            assert len({m.hp[axis] for m in rows}) >= 2, (task, axis)
        # full factorial: every combination of the non-lr axes appears with both optimizers
        others = ("batch_size", "width", "train_size", "label_noise")
        by_opt = {o: {tuple(m.hp[a] for a in others) for m in rows if m.hp["optimizer"] == o} for o in ("sgd", "adam")}
        assert by_opt["sgd"] == by_opt["adam"] and len(by_opt["sgd"]) >= 16
