"""The held-out twin: same design as the public spec, other seeds and values, determined by the salt."""

from __future__ import annotations

import pytest

from model_zoo.heldout import HeldoutSaltMissing, heldout_spec, read_salt
from model_zoo.spec import expand, load_spec


@pytest.fixture(scope="module")
def mini():
    return load_spec("mini")


def test_twin_keeps_the_design_and_moves_everything_a_lookup_could_use(mini):
    twin = heldout_spec(mini, "s3cret")
    assert twin.name == "mini-heldout" and twin.n_models == mini.n_models
    assert not set(twin.seeds) & set(mini.seeds) and len(twin.seeds) == len(mini.seeds)
    assert twin.protocol() == mini.protocol()
    for a, b in zip(mini.experiments, twin.experiments):
        assert (a.task, a.architecture, a.fixed) == (b.task, b.architecture, b.fixed)
        assert a.grid_axes() == b.grid_axes()
        for axis, values in a.grid.items():
            moved = b.grid[axis]
            assert len(moved) == len(values)
            assert sorted(range(len(values)), key=values.__getitem__) == sorted(range(len(moved)), key=moved.__getitem__)
            assert [v == 0 for v in values] == [v == 0 for v in moved]  # zeros keep their meaning
            if any(isinstance(v, float) for v in values):
                assert all(v != w for v, w in zip(values, moved) if v != 0)  # every non-zero rate moves
    public_hp = {tuple(sorted(m.hp.items())) for m in expand(mini)}
    twin_hp = {tuple(sorted(m.hp.items())) for m in expand(twin)}
    assert not public_hp & twin_hp  # no configuration of the twin appears in the public zoo


def test_twin_is_a_function_of_spec_and_salt(mini):
    assert heldout_spec(mini, "s3cret").text == heldout_spec(mini, "s3cret").text
    assert heldout_spec(mini, "s3cret").zoo_id != heldout_spec(mini, "other").zoo_id
    assert "s3cret" not in heldout_spec(mini, "s3cret").text


def test_salt_sources(tmp_path, monkeypatch):
    monkeypatch.delenv("GAPBENCH_HELDOUT_SALT", raising=False)
    monkeypatch.setenv("GAPBENCH_HELDOUT_SALT_FILE", str(tmp_path / "none.txt"))
    with pytest.raises(HeldoutSaltMissing, match="none.txt does not exist"):
        read_salt()
    (tmp_path / "salt.txt").write_text("abc\n")
    assert read_salt(tmp_path / "salt.txt") == "abc"
    monkeypatch.setenv("GAPBENCH_HELDOUT_SALT", "from-env")
    assert read_salt() == "from-env"
