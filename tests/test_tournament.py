"""The experiment's tournament from an opening book: real experts, a real (random-init) model, real
files: games.pgn with players, result and opening, and the distinct-game summary."""

import collections
import json

import chess
import chess.pgn
from test_uci import tiny_model

from transcendence_jax import experiment
from transcendence_jax.demo import demo_config
from transcendence_jax.play.openings import opening_name, read_openings

BOOK = """[Event "book"]

1. e4 e5 2. Nf3 *

[Event "book"]

1. d4 Nf6 *
"""


def test_tournament_from_a_book_writes_pgn_and_counts_distinct_games(tmp_path, capsys):
    book = tmp_path / "book.pgn"
    book.write_text(BOOK)
    cfg = demo_config("reduced", overrides=["reference_players=[]", "model_votes=[]", "quiet_random_player=false",
                                            "games_per_pair=4", "head_to_head=2", "max_plies=24", f"openings={book}"])
    out = tmp_path / "tournament"
    results = experiment.tournament(cfg, "diverse", tiny_model()[0], str(out))
    players = 5 + 1 + len(cfg.temperatures)  # experts, base, the model at each temperature
    assert len(results) == 4 * players * (players - 1) // 2 + 2 * 5
    with open(out / "games.pgn") as f:
        games = list(iter(lambda: chess.pgn.read_game(f), None))
    assert sorted(g.headers["GameId"] for g in games) == sorted(r["game_id"] for r in results)
    names = [opening_name(b) for b in read_openings(book)]
    by_id = {g.headers["GameId"]: g for g in games}
    for gid, g in by_id.items():
        number = int(gid.rsplit("-", 1)[1])
        assert g.headers["Opening"] == names[number // 2 % 2]  # games 2k, 2k+1: opening k of the book
        assert g.headers["Result"] in ("1-0", "0-1", "1/2-1/2")
        if number % 2 == 0:  # its partner game: the same opening, colours swapped
            partner = by_id[f"{gid.rsplit('-', 1)[0]}-{number + 1:03d}"]
            assert (g.headers["White"], g.headers["Black"]) == (partner.headers["Black"], partner.headers["White"])
    summary = json.loads((out / "summary.json").read_text())
    movetexts = [(g.headers["GameId"].rsplit("-", 1)[0], " ".join(m.uci() for m in g.mainline_moves())) for g in games]
    assert summary["games"] == len(games) and summary["distinct_games"] == len({m for _, m in movetexts})
    assert summary["openings"] == str(book)
    per_pair = collections.defaultdict(set)
    for pair, moves in movetexts:
        per_pair[pair].add(moves)
    assert summary["repeated_pairs"] == {p: {"games": sum(q == p for q, _ in movetexts), "distinct": len(m)}
                                         for p, m in per_pair.items() if len(m) < sum(q == p for q, _ in movetexts)}
    assert f"diverse: tournament: {len(games)} games, {summary['distinct_games']} distinct" in capsys.readouterr().out


def test_a_bad_book_stops_the_demo_before_any_work(tmp_path):
    """A missing or malformed book is one line at the start, not after the data and training."""
    import pytest

    from transcendence_jax.demo import demo
    from transcendence_jax.errors import UserError

    bad = tmp_path / "bad.pgn"
    bad.write_text('[Event "book"]\n\n1. e4 e5 2. Ke3 *\n')  # an illegal move
    for book, message in ((tmp_path / "missing.pgn", "not found"), (bad, "bad.pgn")):
        out = tmp_path / f"out-{book.stem}"
        with pytest.raises(UserError, match=message):
            demo(str(out), scale="reduced", overrides=[f"openings={book}"])
        assert not list(out.glob("*/data"))
