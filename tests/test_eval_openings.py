"""`eval` with opening books, distinct-game counts and the Elo in TensorBoard: a real (random-init)
model against real Stockfish, tiny games."""

import json

import chess
import chess.pgn
import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from test_uci import make_workdir

from transcendence_jax import cli
from transcendence_jax.errors import UserError
from transcendence_jax.play.engines import find_stockfish
from transcendence_jax.play.evaluate import evaluate
from transcendence_jax.play.openings import read_openings

try:
    find_stockfish()
    HAVE_STOCKFISH = True
except UserError:
    HAVE_STOCKFISH = False
needs_stockfish = pytest.mark.skipif(not HAVE_STOCKFISH, reason="Stockfish not installed (apt-get install stockfish)")

BOOK_PGN = """[Event "book"]

1. d4 d5 2. c4 *

[Event "book"]

1. e4 c5 *
"""
BOOK_EPD = """rnbqkbnr/pppppppp/8/8/3P4/8/PPP1PPPP/RNBQKBNR b KQkq -
r1bqkbnr/pppp1ppp/2n5/4p3/4P3/5N2/PPPP1PPP/RNBQKB1R w KQkq -
"""


def _pgn_games(path):
    with open(path) as f:
        return list(iter(lambda: chess.pgn.read_game(f), None))


@needs_stockfish
def test_eval_plays_a_pgn_book_with_colours_swapped_and_counts_distinct_games(tmp_path):
    from test_uci import tiny_model

    book = tmp_path / "book.pgn"
    book.write_text(BOOK_PGN)
    openings = read_openings(book)
    model, out = tiny_model()[0], tmp_path / "eval"
    s = evaluate(model, out_dir=str(out), step=3, temperatures=[0.001], opponents=["nodes=1"], games=4,
                 max_plies=14, openings=str(book), bootstrap=0, progress=False, tensorboard=str(tmp_path / "tb"))
    games = {g.headers["GameId"]: g for g in _pgn_games(out / "games.pgn")}
    assert len(games) == 4
    for k in range(2):
        a, b = games[f"model@0.001-vs-nodes=1-{2 * k:03d}"], games[f"model@0.001-vs-nodes=1-{2 * k + 1:03d}"]
        assert (a.headers["White"], a.headers["Black"]) == (b.headers["Black"], b.headers["White"])
        for g in (a, b):
            book_moves = list(openings[k].move_stack)
            assert list(g.mainline_moves())[:len(book_moves)] == book_moves
            assert g.headers["Opening"] == openings[k].root().variation_san(book_moves)
    # the distinct-game count, checked against the PGN read back independently
    from_pgn = len({" ".join(m.uci() for m in g.mainline_moves()) for g in games.values()})
    assert s["distinct_games"] == s["temperatures"][0]["distinct_games"] == from_pgn
    assert s["table"].splitlines()[0].split()[:3] == ["tau", "games", "distinct"]
    assert s["openings"].startswith("book.pgn (2 openings, sha256 ")
    settings = json.loads((out / "eval_settings.json").read_text())
    assert settings["openings"] == s["openings"]
    book.write_text(BOOK_PGN.replace("c5", "e5"))  # another book in the same --out: refused, not mixed
    with pytest.raises(UserError, match="other settings"):
        evaluate(model, out_dir=str(out), step=3, temperatures=[0.001], opponents=["nodes=1"], games=4,
                 max_plies=14, openings=str(book), bootstrap=0, progress=False)
    events = EventAccumulator(str(tmp_path / "tb"))
    events.Reload()
    assert [(e.step, e.value) for e in events.Scalars("eval/elo/tau_0.001")] == [
        (3, pytest.approx(s["temperatures"][0]["elo"]))]


@needs_stockfish
def test_eval_cli_with_an_epd_book_writes_elo_to_the_workdirs_tensorboard(tmp_path, capsys):
    workdir = make_workdir(tmp_path / "w")
    book = tmp_path / "book.epd"
    book.write_text(BOOK_EPD)
    argv = ["eval", "--workdir", workdir, "--temperatures", "0.001,1", "--opponents", "nodes=1", "--games", "4",
            "--max-plies", "10", "--openings", str(book), "--bootstrap", "0"]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    assert "8 model games, " in out and "distinct (openings: book.epd (2 openings, sha256 " in out
    assert f"Elo per temperature in {workdir}/tensorboard" in out
    starts = [json.loads(line)["start_fen"] for line in (tmp_path / "w" / "eval" / "games.jsonl").open()]
    assert sorted(set(starts)) == sorted(b.fen() for b in read_openings(book))
    events = EventAccumulator(f"{workdir}/tensorboard")
    events.Reload()
    assert {"eval/elo/tau_0.001", "eval/elo/tau_1", "eval/score/tau_1"} <= set(events.Tags()["scalars"])
    assert events.Scalars("eval/elo/tau_1")[0].step == 3


def test_a_bad_book_or_a_too_short_cap_is_one_line_before_the_checkpoint_loads(tmp_path, capsys):
    (tmp_path / "bad.epd").write_text("not a position\n")
    assert cli.main(["eval", "--workdir", str(tmp_path), "--openings", str(tmp_path / "bad.epd")]) == 2
    assert capsys.readouterr().err.strip().startswith(f"error: opening book {tmp_path}/bad.epd, line 1:")
    (tmp_path / "long.pgn").write_text("1. e4 e5 2. Nf3 Nc6 3. Bb5 a6 *\n")
    assert cli.main(["eval", "--workdir", str(tmp_path), "--openings", str(tmp_path / "long.pgn"),
                     "--max-plies", "7"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: --max-plies 7 with an opening of 6 plies in the book") and "\n" not in err
