"""The arena with real players: Python policies and real Stockfish, real PGN files."""

import chess
import chess.pgn
import numpy as np
import pytest

from transcendence_jax.errors import UserError
from transcendence_jax.play.arena import grid, load_results, opening_board, play_games, round_robin
from transcendence_jax.play.engines import EnginePool, find_stockfish, parse_engine_spec
from transcendence_jax.play.players import MoveChoice, PolicyPlayer, random_policy


def _pgn_games(path):
    games = []
    with open(path) as f:
        while (g := chess.pgn.read_game(f)) is not None:
            games.append(g)
    return games


def _greedy(board, rng):
    """Captures when it can: beats a random mover, so results are not all draws."""
    captures = [m for m in board.legal_moves if board.is_capture(m)]
    moves = captures or list(board.legal_moves)
    return moves[rng.integers(len(moves))]


def test_round_robin_replays_and_is_reproducible(tmp_path):
    players = [PolicyPlayer("rand", random_policy), PolicyPlayer("greedy", _greedy),
               PolicyPlayer("rand2", random_policy, seed=1)]
    pairings = round_robin(players, 4)
    assert len(pairings) == 12 and sum(p[1].name == "rand" for p in pairings if "rand-vs-greedy" in p[0]) == 2
    a = play_games(pairings, out_dir=str(tmp_path / "a"), max_plies=60, openings=4, progress=False)
    b = play_games(pairings, out_dir=str(tmp_path / "b"), max_plies=60, openings=4, progress=False)
    assert a == b  # seeded per game: same games whatever the run
    games = _pgn_games(tmp_path / "a" / "games.pgn")
    assert [g.headers["GameId"] for g in games] == [r["game_id"] for r in a]
    for g, r in zip(games, a):
        board = g.board()
        for move in g.mainline_moves():
            assert move in board.legal_moves
            board.push(move)
        assert g.headers["Result"] == r["result"] and board.ply() == r["plies"] <= 60
        assert r["termination"] in ("checkmate", "stalemate", "insufficient_material", "max_plies",
                                    "seventyfive_moves", "fivefold_repetition")
        if r["termination"] == "max_plies":
            assert r["result"] == "1/2-1/2"
    # games 2k and 2k+1 of a pair share their random opening, with colours swapped
    g0, g1 = (g for g in games if g.headers["GameId"].startswith("rand-vs-greedy-00") and
              g.headers["GameId"][-1] in "01")
    assert list(g0.mainline_moves())[:4] == list(g1.mainline_moves())[:4]
    assert g0.headers["White"] == g1.headers["Black"]


def test_interrupted_run_resumes_without_replaying(tmp_path):
    jsonl = tmp_path / "games.jsonl"
    calls = {"armed": True}

    def flaky(board, rng):
        if calls["armed"] and jsonl.exists() and jsonl.stat().st_size:
            raise KeyboardInterrupt  # the user pressed ^C once some game had finished
        return _greedy(board, rng)

    pairings = round_robin([PolicyPlayer("flaky", flaky), PolicyPlayer("rand", random_policy)], 6)
    with pytest.raises(KeyboardInterrupt):
        play_games(pairings, out_dir=str(tmp_path), max_plies=80, progress=False)
    first = load_results(str(tmp_path))
    assert 0 < len(first) < 6
    # a torn last line (crash mid-write) and a PGN game with no JSONL record are dropped
    with open(tmp_path / "games.jsonl", "a") as f:
        f.write('{"game_id": "torn')
    with open(tmp_path / "games.pgn", "a") as f:
        f.write('[GameId "ghost"]\n\n1. e4 *\n\n')
    calls["armed"] = False
    played = []
    original = flaky

    def counting(board, rng):
        played.append(board.ply())
        return original(board, rng)

    pairings = round_robin([PolicyPlayer("flaky", counting), PolicyPlayer("rand", random_policy)], 6)
    results = play_games(pairings, out_dir=str(tmp_path), max_plies=80, progress=False)
    assert results[: len(first)] == first and len(results) == 6
    assert sorted(r["game_id"] for r in results) == sorted(p[0] for p in pairings)
    ids = [g.headers["GameId"] for g in _pgn_games(tmp_path / "games.pgn")]
    assert sorted(ids) == sorted(r["game_id"] for r in results)  # each game once, no ghost
    assert len(played) < sum(r["moves_white"] if r["white"] == "flaky" else r["moves_black"] for r in results)


class _Forfeiter:
    """A backend that gives up after 5 illegal tries, like the model under the paper's protocol."""

    name = "quitter"

    def __init__(self):
        self.backend = self

    def choose(self, requests):
        return [MoveChoice(None, illegal=5) for _ in requests]

    def close(self):
        pass


def test_forfeit_is_booked_to_the_player_who_forfeits(tmp_path):
    q = _Forfeiter()
    results = play_games(grid([q], [PolicyPlayer("rand", random_policy)], 2, headers={"CheckpointStep": 7}),
                         out_dir=str(tmp_path), progress=False)
    by_id = {r["game_id"]: r for r in results}
    w, b = by_id["quitter-vs-rand-000"], by_id["quitter-vs-rand-001"]
    assert (w["result"], w["illegal_white"], w["illegal_black"], w["plies"]) == ("0-1", 5, 0, 0)
    assert (b["result"], b["illegal_white"], b["illegal_black"], b["plies"]) == ("1-0", 0, 5, 1)
    assert w["termination"] == "forfeit" and w["checkpoint_step"] == 7 and w["opponent"] == "rand"
    g = _pgn_games(tmp_path / "games.pgn")[0]
    assert g.headers["IllegalWhite"] == "5" and g.headers["CheckpointStep"] == "7"


def test_adjudication_and_fen_openings(tmp_path):
    fen = "4k3/8/8/8/8/8/4P3/4K2R w K - 0 1"
    material = lambda board: "1-0" if len(board.pieces(chess.ROOK, chess.WHITE)) else None
    results = play_games(grid([PolicyPlayer("a", random_policy)], [PolicyPlayer("b", random_policy)], 2),
                         out_dir=str(tmp_path), max_plies=6, adjudicate=material, openings=[fen],
                         progress=False)
    assert all(r["plies"] <= 6 for r in results)
    assert all(r["termination"] in ("adjudicated", "checkmate") for r in results)
    # An adjudicator that leaves the game open at the cap: a draw by the cap, not an adjudication.
    drawn = play_games(grid([PolicyPlayer("a", random_policy)], [PolicyPlayer("b", random_policy)], 1),
                       out_dir=str(tmp_path / "open"), max_plies=2, adjudicate=lambda board: None, progress=False)
    assert [(r["result"], r["termination"]) for r in drawn] == [("1/2-1/2", "max_plies")]
    with pytest.raises(UserError, match="at least one game"):
        play_games(grid([PolicyPlayer("a", random_policy)], [PolicyPlayer("b", random_policy)], 1),
                   out_dir=str(tmp_path / "none"), max_active=0, progress=False)
    g = _pgn_games(tmp_path / "games.pgn")[0]
    assert g.headers["FEN"] == fen and g.board().fen() == fen
    assert (g.headers["Termination"], g.headers["TerminationDetail"]) in (("adjudication", "adjudicated"),
                                                                          ("normal", "checkmate"))
    assert opening_board(["e4 e5 Nf3"], "k", 0).fen() == opening_board([["e2e4", "e7e5", "g1f3"]], "k", 0).fen()
    with pytest.raises(UserError, match="not legal"):
        opening_board(["e4 e4"], "k", 0)
    with pytest.raises(UserError, match="not a FEN"):
        opening_board(["rnbqkbnr/pppppppp/8/8 w - - 0 1 x/y"], "k", 0)
    with pytest.raises(UserError, match="not a legal chess position .*too many white pieces"):
        opening_board(["QQQQQQQQ/QQQQQQQQ/Q7/8/8/8/8/K6k w - - 0 1"], "k", 0)


def test_short_real_eval_against_stockfish(tmp_path):
    try:
        find_stockfish()
    except UserError as e:
        pytest.skip(str(e))
    pool = EnginePool(workers=2)
    try:
        opponents = [parse_engine_spec("nodes=10", pool=pool), parse_engine_spec("sf1", pool=pool)]
        results = play_games(grid([PolicyPlayer("rand", random_policy)], opponents, 2), out_dir=str(tmp_path),
                             max_plies=60, progress=False)
    finally:
        pool.close()
    assert len(results) == 4 and {r["opponent"] for r in results} == {"nodes=10", "sf1"}
    assert sum(r["score_white"] if r["white"] == "rand" else 1 - r["score_white"] for r in results) < 2
    for g in _pgn_games(tmp_path / "games.pgn"):
        board = g.board()
        for move in g.mainline_moves():
            board.push(move)  # python-chess replays every game
        assert g.headers["Result"] in ("1-0", "0-1", "1/2-1/2")


def test_outcome_agrees_with_python_chess():
    """The arena's cheap end-of-game test gives board.outcome(claim_draw=False) on every position
    of random games (mates, stalemates, bare kings, 75-move and fivefold endings among them)."""
    from transcendence_jax.play.arena import outcome

    rng = np.random.default_rng(0)
    ends = set()
    for _ in range(60):
        board = chess.Board()
        while True:
            o = board.outcome(claim_draw=False)
            assert outcome(board) == (None if o is None else (o.result(), o.termination.name.lower()))
            if o is not None or board.ply() > 500:
                ends.add(None if o is None else o.termination)
                break
            moves = list(board.legal_moves)
            board.push(moves[rng.integers(len(moves))])
    assert len(ends) >= 3
