"""The model shipped in the package, and the folders load_model accepts (locate.resolve_workdir)."""

import shutil

import chess
import numpy as np
import pytest
from test_uci import make_workdir

from transcendence_jax import pretrained
from transcendence_jax.errors import UserError
from transcendence_jax.training.checkpoint import load_model
from transcendence_jax.training.locate import latest_step, resolve_workdir


def test_pretrained_demo_loads_and_plays_a_legal_game():
    from transcendence_jax.sampling.sampler import Sampler

    assert "demo" in pretrained.names()
    model, config, step = load_model("pretrained:demo")
    assert step == 600 == latest_step("pretrained:demo") and config.model.board_input
    sampler = Sampler(model, max_games=1)
    board = chess.Board()
    while not board.is_game_over(claim_draw=True) and board.ply() < 300:
        (choice,) = sampler.sample([("g", board, 0.5)])
        assert choice.move in board.legal_moves
        board.push(choice.move)
    assert board.ply() >= 10
    # Its play is the experts' (an MVV-LVA base): after 1. e4 d5 it takes the pawn.
    from transcendence_jax.sampling.policy import move_probabilities

    board = chess.Board()
    board.push_uci("e2e4"), board.push_uci("d7d5")
    probs = move_probabilities(model, board)
    assert max(probs, key=probs.get) == chess.Move.from_uci("e4d5") and probs[chess.Move.from_uci("e4d5")] > 0.5


def test_a_damaged_or_unknown_pretrained_model_is_a_user_error(tmp_path, monkeypatch):
    with pytest.raises(UserError, match="no pretrained model 'nope'; shipped: demo"):
        load_model("pretrained:nope")
    with pytest.raises(UserError, match="ships only step 600, not step 3"):
        load_model("pretrained:demo", step=3)
    copy = tmp_path / "demo"
    shutil.copytree(pretrained.folder("demo"), copy)
    with np.load(copy / "params.npz") as arrays:
        params = dict(arrays)
    params[sorted(params)[0]] = params[sorted(params)[0]] + 1
    np.savez_compressed(copy / "params.npz", **params)
    monkeypatch.setattr(pretrained, "HERE", tmp_path)  # the package folder, as if the copy were installed
    with pytest.raises(UserError, match="does not match the sha256"):
        pretrained.load("demo")


def test_export_round_trips_a_workdir(tmp_path, monkeypatch):
    workdir = make_workdir(tmp_path / "w")
    out = pretrained.export(workdir, "small", out_root=tmp_path / "shipped")
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "info.json", "params.npz"]
    monkeypatch.setattr(pretrained, "HERE", tmp_path / "shipped")
    model, _, step = pretrained.load("small")
    reference, _, _ = load_model(workdir)
    from transcendence_jax.sampling.policy import position_logits

    board = chess.Board()
    assert step == 3 and np.array_equal(position_logits(model, [board]), position_logits(reference, [board]))


def test_experiment_and_demo_folders_resolve_to_their_workdir(tmp_path):
    root = tmp_path / "demo"
    make_workdir(root / "diverse" / "train")
    assert resolve_workdir(root / "diverse") == str(root / "diverse" / "train")
    assert resolve_workdir(root) == str(root / "diverse" / "train")  # one population: no ambiguity
    assert load_model(str(root / "diverse"))[2] == 3 and latest_step(root) == 3
    make_workdir(root / "clones" / "train")
    with pytest.raises(UserError, match=f"holds 2 trained models; name one of them: {root}/clones, {root}/diverse"):
        load_model(str(root))
    with pytest.raises(UserError, match="not a training workdir"):
        resolve_workdir(tmp_path / "nothing")
