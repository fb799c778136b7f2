"""Opening books from real PGN and EPD files, played by the real arena with colours swapped."""

import chess
import chess.pgn
import pytest

from transcendence_jax.errors import UserError
from transcendence_jax.play.arena import grid, play_games, round_robin
from transcendence_jax.play.openings import distinct_games, opening_name, read_openings
from transcendence_jax.play.players import PolicyPlayer

SICILIAN_FEN = "rnbqkbnr/pp1ppppp/8/2p5/4P3/8/PPPP1PPP/RNBQKBNR w KQkq - 0 2"
BOOK_PGN = f"""[Event "book"]
[Opening "Italian"]

1. e4 e5 2. Nf3 Nc6 3. Bc4 *

[Event "book"]
[SetUp "1"]
[FEN "{SICILIAN_FEN}"]

2. Nf3 d6 *
"""
BOOK_EPD = """# three positions
rnbqkbnr/pppppppp/8/8/3P4/8/PPP1PPPP/RNBQKBNR b KQkq - id "d4";
rnbqkbnr/pppppppp/8/8/2P5/8/PP1PPPPP/RNBQKBNR b KQkq - id "English";

4k3/8/8/8/8/8/4P3/4K2R w K - id "endgame";
"""


def _first(board, rng):
    """Deterministic: the first legal move in UCI order."""
    return min(board.legal_moves, key=lambda m: m.uci())


def _last(board, rng):
    """Deterministic: the last legal move in UCI order."""
    return max(board.legal_moves, key=lambda m: m.uci())


def _players():
    return PolicyPlayer("first", _first), PolicyPlayer("last", _last)


def _pgn_games(path):
    with open(path) as f:
        return list(iter(lambda: chess.pgn.read_game(f), None))


def test_pgn_book_is_played_in_order_with_colours_swapped(tmp_path):
    book = tmp_path / "book.pgn"
    book.write_text(BOOK_PGN)
    boards = read_openings(book)
    assert [opening_name(b) for b in boards] == ["1. e4 e5 2. Nf3 Nc6 3. Bc4", "2. Nf3 d6"]
    assert boards[1].root().fen() == SICILIAN_FEN and len(boards[1].move_stack) == 2

    first, last = _players()
    results = play_games(grid([first], [last], 4), out_dir=str(tmp_path / "out"), max_plies=16, openings=str(book),
                         progress=False)
    by_id = {r["game_id"]: r for r in results}
    games = {g.headers["GameId"]: g for g in _pgn_games(tmp_path / "out" / "games.pgn")}
    for k, (a, b) in enumerate([("000", "001"), ("002", "003")]):
        ra, rb = by_id[f"first-vs-last-{a}"], by_id[f"first-vs-last-{b}"]
        assert (ra["white"], ra["black"]) == (rb["black"], rb["white"]) == ("first", "last")  # colours swapped
        book_moves = [m.uci() for m in boards[k].move_stack]
        for r in (ra, rb):
            assert r["moves"].split()[:len(book_moves)] == book_moves  # the book's moves, then the players'
            assert r["start_fen"] == boards[k].root().fen() and r["opening_plies"] == len(book_moves)
            assert r["opening"] == opening_name(boards[k])
            g = games[r["game_id"]]
            assert g.headers["Opening"] == opening_name(boards[k])
            assert (g.headers["White"], g.headers["Black"], g.headers["Result"]) == (r["white"], r["black"],
                                                                                    r["result"])
    assert games["first-vs-last-002"].headers["FEN"] == SICILIAN_FEN  # the set-up game keeps its root
    assert distinct_games(results) == 4


def test_epd_book_in_a_round_robin(tmp_path):
    book = tmp_path / "book.epd"
    book.write_text(BOOK_EPD)
    boards = read_openings(book)
    assert [b.fen() for b in boards][2] == "4k3/8/8/8/8/8/4P3/4K2R w K - 0 1"
    assert [opening_name(b) for b in boards] == ["set-up position (see FEN)"] * 3
    first, last = _players()
    results = play_games(round_robin([first, last], 6), out_dir=str(tmp_path / "out"), max_plies=12,
                         openings=book, progress=False)
    starts = [r["start_fen"] for r in sorted(results, key=lambda r: r["game_id"])]
    assert starts == [b.fen() for b in boards for _ in range(2)]  # each position twice, in file order
    whites = [r["white"] for r in sorted(results, key=lambda r: r["game_id"])]
    assert whites == ["first", "last"] * 3
    assert distinct_games(results) == 6


def test_distinct_games_counts_repeats(tmp_path):
    """Two deterministic players from the start position: however many games, two distinct
    ones (one per colour assignment); the same players from random openings differ."""
    first, last = _players()
    same = play_games(grid([first], [last], 6), out_dir=str(tmp_path / "start"), max_plies=20, progress=False)
    assert len(same) == 6 and distinct_games(same) == 2
    assert {r["opening"] for r in same} == {"start position"}
    varied = play_games(grid([first], [last], 6), out_dir=str(tmp_path / "random"), max_plies=20, openings=4,
                        progress=False)
    assert distinct_games(varied) == 6
    rows = [dict(start_fen=chess.STARTING_FEN, moves="e2e4 e7e5"), dict(start_fen=chess.STARTING_FEN, moves="e2e4"),
            dict(start_fen=chess.STARTING_FEN, moves="e2e4 e7e5"), dict(start_fen=SICILIAN_FEN, moves="e2e4")]
    assert distinct_games(rows) == 3


@pytest.mark.parametrize("name, text, message", [
    ("bad.epd", "rnbqkbnr/pppppppp/8/8 w - -\n", r"bad.epd, line 1: not an EPD position"),
    ("kings.epd", "8/8/8/8/8/8/8/K7 w - -\n", r"kings.epd, line 1: not a legal chess position \(no black king\)"),
    ("mate.epd", "7k/6Q1/6K1/8/8/8/8/8 b - -\n", r"mate.epd, line 1: the game is already over"),
    ("bad.pgn", "1. e4 e5 2. Ke3 *\n", r"bad.pgn, game 1: .*Ke3"),
    ("empty.pgn", "\n", r"empty.pgn holds no openings"),
    ("book.txt", "e4\n", r"book.txt: give a .pgn file"),
])
def test_bad_books_are_one_line_errors(tmp_path, name, text, message):
    (tmp_path / name).write_text(text)
    with pytest.raises(UserError, match=message):
        read_openings(tmp_path / name)
    with pytest.raises(UserError, match="not found"):
        read_openings(tmp_path / "missing.pgn")
