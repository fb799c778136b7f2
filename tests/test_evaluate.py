"""`transcendence eval`: a random-init model against real Stockfish, tiny games."""

import json

import chess.pgn
import ml_collections
import pytest
from flax import nnx

from transcendence_jax import cli
from transcendence_jax.errors import UserError
from transcendence_jax.play.engines import find_stockfish
from transcendence_jax.play.evaluate import evaluate, paper_anchors, split_opponents

try:
    find_stockfish()
    HAVE_STOCKFISH = True
except UserError:
    HAVE_STOCKFISH = False


def _model():
    from transcendence_jax.model import Transformer

    cfg = ml_collections.ConfigDict(dict(vocab_size=2048, num_layers=1, num_heads=2, embed_dim=16, mlp_dim=32,
                                         max_len=32, dropout=0.0, board_input=False, dtype="float32",
                                         param_dtype="float32", remat=False))
    return Transformer(cfg, rngs=nnx.Rngs(0))


def test_missing_workdir_or_checkpoint_is_one_line_error(tmp_path, capsys):
    assert cli.main(["eval", "--workdir", str(tmp_path / "nope")]) == 2
    assert "not found" in capsys.readouterr().err
    assert cli.main(["eval", "--workdir", str(tmp_path)]) == 2  # exists, but no checkpoint
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err


def test_nan_or_negative_temperature_is_one_line_error(tmp_path, capsys):
    for bad in ("0.1,nan", "-1"):
        assert cli.main(["eval", "--workdir", str(tmp_path), "--temperatures", bad]) == 2
        assert "each must be a number >= 0" in capsys.readouterr().err
    with pytest.raises(UserError, match="each must be a number >= 0"):  # the library call, before any game
        evaluate(None, out_dir=str(tmp_path / "eval"), temperatures=[0.1, float("nan")])
    assert not (tmp_path / "eval").exists()


def test_opponents_split_on_commas_and_keep_key_value_specs_together():
    assert split_opponents("sf1,sf3,sf5") == ["sf1", "sf3", "sf5"]
    assert split_opponents("sf1,nodes=50") == ["sf1", "nodes=50"]
    assert split_opponents("skill=5,depth=8,sf1") == ["skill=5,depth=8", "sf1"]
    assert split_opponents("nodes=50,nodes=100") == ["nodes=50", "nodes=100"]
    assert split_opponents("sf1;skill=3,depth=2") == ["sf1", "skill=3,depth=2"]
    assert split_opponents("skill=3;depth=2, sf2@0.1s,") == ["skill=3", "depth=2", "sf2@0.1s"]


def test_paper_anchors():
    assert paper_anchors(["sf1", "sf3@0.1s", "sf4", "nodes=5"]) == {"sf1": 1552.0, "sf3@0.1s": 1842.0}


@pytest.mark.skipif(not HAVE_STOCKFISH, reason="Stockfish not installed (apt-get install stockfish)")
def test_short_eval_plays_rates_and_resumes(tmp_path):
    model, out = _model(), str(tmp_path / "eval")
    kw = dict(out_dir=out, step=3, temperatures=[0.001, 1.0], opponents=["sf1", "nodes=1"], games=2,
              max_plies=12, bootstrap=20, progress=False)
    s = evaluate(model, **kw)
    rows = {r["temperature"]: r for r in s["temperatures"]}
    assert set(rows) == {0.001, 1.0} and all(r["games"] == 4 for r in rows.values())
    assert all(r["win"] + r["draw"] + r["loss"] == 4 and "elo" in r and "glicko2" in r for r in rows.values())
    assert s["anchors"] == {"sf1": 1552.0} and s["model_calls"] > 0 and 0 < s["model_time_share"] <= 1
    # mask mode: no illegal try is booked, but a random model's free draws are mostly illegal
    assert all(r["illegal"] == 0 and r["unmasked_illegal_rate"] > 0.5 for r in rows.values())
    assert "unmasked illegal" in s["table"]
    assert "tau" in s["table"] and (tmp_path / "eval" / "rating_vs_temperature.png").stat().st_size > 1000
    assert json.loads((tmp_path / "eval" / "ratings.json").read_text())["step"] == 3
    with open(tmp_path / "eval" / "games.pgn") as f:
        games = [g for g in iter(lambda: chess.pgn.read_game(f), None)]
    assert len(games) == 8
    for g in games:
        board = g.board()
        for move in g.mainline_moves():
            assert move in board.legal_moves  # mask mode never lets an illegal move through
            board.push(move)
        assert g.headers["CheckpointStep"] == "3" and g.headers["Opponent"] in ("sf1", "nodes=1")
        assert float(g.headers["Temperature"]) in (0.001, 1.0)
    # rerun: nothing left to play, same results
    again = evaluate(model, **kw)
    assert again["model_calls"] == 0 and again["temperatures"] == s["temperatures"]
    with pytest.raises(UserError, match="other settings"):
        evaluate(model, **dict(kw, max_plies=20))


@pytest.mark.skipif(not HAVE_STOCKFISH, reason="Stockfish not installed (apt-get install stockfish)")
def test_resume_after_a_crash_mid_write_of_model_stats(tmp_path):
    """A run killed while appending to model_stats.jsonl leaves a torn row; the resumed run's
    rows must still start on lines of their own (else rating reads a corrupt middle line)."""
    model, out = _model(), tmp_path / "eval"
    kw = dict(out_dir=str(out), temperatures=[1.0], opponents=["nodes=1"], games=2, max_plies=6, bootstrap=0,
              progress=False)
    evaluate(model, **kw)
    games = (out / "games.jsonl").read_text().splitlines(keepends=True)
    (out / "games.jsonl").write_text("".join(games[:-1]))  # the last game was not recorded ...
    stats = (out / "model_stats.jsonl").read_text().splitlines(keepends=True)
    (out / "model_stats.jsonl").write_text("".join(stats[:-1]) + stats[-1][:12])  # ... nor its stats, torn
    s = evaluate(model, **kw)
    assert s["model_calls"] > 0 and s["temperatures"][0]["games"] == 2
    rows = [json.loads(line) for line in (out / "model_stats.jsonl").read_text().splitlines()]
    assert sorted(r["game_id"] for r in rows) == sorted(json.loads(g)["game_id"] for g in games)


@pytest.mark.parametrize("plies, openings", [(0, 0), (-5, 0), (10, 10), (10, 9), (10, -1)])
def test_games_the_model_would_not_play_are_refused(tmp_path, capsys, plies, openings):
    """--max-plies 0 or --openings at the cap used to rate games the model never played
    (Elo 1552 [1552, 1552]): refused in the library call and before the checkpoint loads."""
    with pytest.raises(UserError, match="--max-plies"):
        evaluate(None, out_dir=str(tmp_path / "eval"), max_plies=plies, openings=openings)
    assert not (tmp_path / "eval").exists()
    argv = ["eval", "--workdir", str(tmp_path), "--max-plies", str(plies), "--openings", str(openings)]
    assert cli.main(argv) == 2  # this workdir has no checkpoint: the check comes first
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: --max-plies") and "\n" not in err, err


@pytest.mark.skipif(not HAVE_STOCKFISH, reason="needs Stockfish")
def test_eval_plays_the_shipped_model(tmp_path, capsys):
    """`--workdir pretrained:demo`, as load_model accepts it; the results only where --out says."""
    assert cli.main(["eval", "--workdir", "pretrained:demo"]) == 2
    assert "pass --out DIR" in capsys.readouterr().err
    out = tmp_path / "pre"
    assert cli.main(["eval", "--workdir", "pretrained:demo", "--out", str(out), "--games", "1",
                     "--temperatures", "1.0", "--opponents", "sf1", "--max-plies", "20"]) == 0
    assert "checkpoint step 600" in capsys.readouterr().out
    assert json.loads((out / "ratings.json").read_text())
