"""The library and command line as a new user meets them: --version, defaults in every --help,
the step in evaluate_model's outputs, Ratings, batched move_probabilities, clear type errors,
LICENSE and CITATION.cff."""

import argparse
import importlib
import json
import pathlib
import subprocess
import sys

import chess
import jax
import numpy as np
import pytest
import yaml

import transcendence_jax as tj
from transcendence_jax import cli

REPO = pathlib.Path(__file__).resolve().parents[1]


def test_version():
    out = subprocess.run([sys.executable, "-m", "transcendence_jax", "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == f"transcendence-jax {tj.__version__}"
    with open(REPO / "pyproject.toml") as f:
        assert f'version = "{tj.__version__}"' in f.read()


@pytest.mark.parametrize("words", [c[0] for c in cli.COMMANDS], ids=lambda w: " ".join(w))
def test_every_help_shows_the_defaults(words):
    """Each option with a default (not None, not a flag's False) shows it in its --help text."""
    module = importlib.import_module(dict((c[0], c[1]) for c in cli.COMMANDS)[words])
    parser = argparse.ArgumentParser(formatter_class=cli.HelpFormatter)
    module.add_arguments(parser)
    shown = [a for a in parser._actions if a.option_strings and a.default is not None and a.default is not False
             and a.default is not argparse.SUPPRESS and a.help is not argparse.SUPPRESS]
    assert shown, "a command with no defaults to show"
    for action in shown:
        formatter = cli.HelpFormatter("transcendence")
        formatter.add_argument(action)  # the lines --help prints for this option
        assert "default" in formatter.format_help(), (words, action.option_strings)
    assert "(default: " in parser.format_help()


def test_evaluate_model_records_the_checkpoint_step(tmp_path):
    model, _, step = tj.load_model("pretrained:demo")
    summary = tj.evaluate_model(model, out_dir=str(tmp_path), temperatures=[0.001], opponents=["sf1"], games=2,
                                max_plies=20, progress=False, bootstrap=10)
    assert summary["step"] == step == 600
    assert json.loads((tmp_path / "ratings.json").read_text())["step"] == 600
    assert "[CheckpointStep \"600\"]" in (tmp_path / "games.pgn").read_text()


def test_ratings_exported_with_a_short_repr_and_named_diff():
    games = [("a", "b", 1.0), ("b", "a", 0.5), ("a", "c", 0.0), ("c", "b", 1.0)] * 5
    ratings = tj.elo_mle(games, anchor=["a"], bootstrap=50)
    assert isinstance(ratings, tj.Ratings)
    text = repr(ratings)
    assert "\n" not in text and len(text) < 200 and text.startswith("Ratings(Elo, mean 0: a: c +")
    assert text.index("c +") < text.index("a +0") < text.index("b -")  # best first
    d = ratings.diff("a", "b")
    assert isinstance(d, tj.EloDiff) and d == (d.diff, d.lo, d.hi) and d.lo < d.diff < d.hi
    assert str(d) == f"{d.diff:+.0f} [{d.lo:+.0f}, {d.hi:+.0f}]"
    many = tj.elo_mle([(f"p{i}", f"p{i + 1}", 1.0) for i in range(20)] * 2, bootstrap=5)
    assert repr(many).endswith("; ...)") and repr(many).count("[") == 12


def test_move_probabilities_batched_equals_one_at_a_time():
    model, _, _ = tj.load_model("pretrained:demo")
    boards = [chess.Board()]
    for uci in ["e2e4", "d7d5", "b1c3", "d5e4"]:
        boards.append(boards[-1].copy())
        boards[-1].push_uci(uci)
    boards.append(chess.Board("7k/6Q1/6K1/8/8/8/8/8 b - - 0 1"))  # mate: no legal move
    batched = tj.move_probabilities(model, boards, temperature=[1.0, 0.5, 1.0, 0.001, 1.0, 1.0])
    for board, tau, probs in zip(boards, [1.0, 0.5, 1.0, 0.001, 1.0, 1.0], batched):
        single = tj.move_probabilities(model, board, tau)
        assert single.keys() == probs.keys() == set(board.legal_moves)
        assert np.allclose([single[m] for m in single], [probs[m] for m in single], atol=1e-6)
    assert sorted(batched[3].values())[-1] == 1.0 and sum(batched[3].values()) == 1.0  # tau 0.001: one-hot
    assert batched[-1] == {}


def test_wrong_argument_types_are_clear_type_errors():
    model, config, step = tj.load_model("pretrained:demo")
    board = chess.Board()
    with pytest.raises(TypeError, match="key must be a JAX PRNG key, e.g. jax.random.key\\(0\\); got int 0"):
        tj.sample_moves(model, [board], 0.0, 0)
    with pytest.raises(TypeError, match="expected a sequence of chess.Board, got Board \\(wrap one board in a list"):
        tj.sample_moves(model, board, 0.0, jax.random.key(0))
    with pytest.raises(TypeError, match="got tuple \\(load_model returns \\(model, config, step\\): unpack it"):
        tj.move_probabilities((model, config, step), board)
    with pytest.raises(TypeError, match="got str"):
        tj.move_probabilities(model, ["e2e4"])
    assert tj.sample_moves(model, [board], 0.0, jax.random.PRNGKey(0))[0] in board.legal_moves  # legacy keys too


def test_license_and_citation():
    assert "Apache License" in (REPO / "LICENSE").read_text()[:200]
    citation = yaml.safe_load((REPO / "CITATION.cff").read_text())
    assert citation["cff-version"] == "1.2.0" and citation["version"] == tj.__version__
    paper = citation["preferred-citation"]
    assert paper["authors"][0]["family-names"] == "Zhang" and paper["year"] == 2024
    assert "2406.11741" in paper["url"]
