"""Config files and overrides that cannot work are one line `error: ...` (exit 2), never a
traceback or a silently different value."""

from __future__ import annotations

import pytest
from flax import nnx
from test_train import write_games

from transcendence_jax import cli
from transcendence_jax.config import load_config
from transcendence_jax.errors import UserError


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> str:
    return write_games(str(tmp_path_factory.mktemp("games")), num_games=40)


def _one_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err, err
    return err


@pytest.mark.parametrize("value", ["abc", "(1.5,1,1)", "(True, 1, 1)", "1,x,1"])
def test_int_tuple_override_must_be_ints(value):
    """mesh.shape=abc used to end in a traceback at mesh time, (1.5,1,1) to train on (1,1,1)."""
    with pytest.raises(UserError, match=r"mesh\.shape.*tuple of ints"):
        load_config("tiny", [f"mesh.shape={value}"])
    assert load_config("tiny", ["mesh.shape=(2,-1,1)"]).mesh.shape == (2, -1, 1)
    assert load_config("tiny", ["mesh.shape=1, 8, 1"]).mesh.shape == (1, 8, 1)


def test_override_errors_on_the_command_line_are_one_line(tmp_path, capsys):
    """Checked before anything reads the data (this data path does not exist)."""
    base = ["train", "--config", "tiny", "--config.data.path=/nonexistent"]
    assert cli.main([*base, "--workdir", str(tmp_path / "w"), "--config.mesh.shape=(1.5,1,1)"]) == 2
    assert "mesh.shape" in _one_line(capsys)
    # A value-less override must not take the next flag as its value.
    assert cli.main([*base, "--config.train.steps", "--workdir", str(tmp_path / "w")]) == 2
    err = _one_line(capsys)
    assert "--config.train.steps" in err and "no value" in err
    assert cli.main([*base, "--workdir", str(tmp_path / "w"), "--config.train.steps"]) == 2
    assert "--config.train.steps" in _one_line(capsys)
    assert not (tmp_path / "w").exists()


def test_a_config_that_is_not_a_python_file_is_one_line(tmp_path, capsys):
    text = tmp_path / "my_config.yaml"
    text.write_text("train:\n  steps: 3\n")
    with pytest.raises(UserError, match="not a Python file"):
        load_config(str(text))
    assert cli.main(["train", "--config", str(text), "--workdir", str(tmp_path / "w")]) == 2
    assert "my_config.yaml" in _one_line(capsys)


def test_heads_that_do_not_divide_the_width_are_one_line(tmp_path, capsys, data_dir):
    from transcendence_jax.model import Transformer

    cfg = load_config("tiny", ["model.num_heads=3"]).model
    with pytest.raises(UserError, match=r"model\.num_heads 3 does not divide model\.embed_dim 128"):
        Transformer(cfg, rngs=nnx.Rngs(0))
    with pytest.raises(UserError, match=r"model\.num_heads 0"):
        Transformer(load_config("tiny", ["model.num_heads=0"]).model, rngs=nnx.Rngs(0))
    assert cli.main(["train", "--config", "tiny", "--workdir", str(tmp_path / "w"), f"--config.data.path={data_dir}",
                     "--config.model.num_heads=3", "--config.train.batch_size=4"]) == 2
    assert "model.num_heads 3" in _one_line(capsys)
