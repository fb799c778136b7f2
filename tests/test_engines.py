"""Real Stockfish at tiny strength: discovery, limits, and crash/hang replacement."""

import os
import random
import signal

import chess
import chess.engine
import pytest

from transcendence_jax.errors import UserError
from transcendence_jax.play.arena import grid, play_games
from transcendence_jax.play.engines import (
    EnginePlayer,
    EnginePool,
    UCIProcess,
    find_stockfish,
    parse_engine_spec,
    search_hash_mb,
)
from transcendence_jax.play.players import GameState, PolicyPlayer, random_policy

try:
    STOCKFISH = find_stockfish()
except UserError:
    STOCKFISH = None
needs_stockfish = pytest.mark.skipif(STOCKFISH is None, reason="Stockfish not installed (apt-get install stockfish)")


def test_missing_stockfish_is_a_user_error(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("STOCKFISH_PATH", raising=False)
    monkeypatch.setattr("shutil.which", lambda name, path=None: None)
    with pytest.raises(UserError, match="apt-get install stockfish"):
        find_stockfish()
    monkeypatch.setenv("STOCKFISH_PATH", str(tmp_path / "nope"))
    with pytest.raises(UserError, match="STOCKFISH_PATH"):
        find_stockfish()
    with pytest.raises(UserError, match="not an executable"):
        find_stockfish(str(tmp_path / "nope"))


@needs_stockfish
def test_stockfish_found_by_env(monkeypatch):
    monkeypatch.setenv("STOCKFISH_PATH", STOCKFISH)
    assert find_stockfish() == STOCKFISH


def test_engine_specs():
    sf3 = parse_engine_spec("sf3") if STOCKFISH else None
    if sf3 is not None:
        assert (sf3.skill, sf3.depth, sf3.movetime) == (3, 4, None)  # paper's pick rule, no clock
        paper = parse_engine_spec("sf5@0.1s")
        assert (paper.skill, paper.movetime, paper.depth) == (5, 0.1, None)
        n = parse_engine_spec("skill=2,nodes=50")
        assert (n.skill, n.nodes) == (2, 50) and n.backend is sf3.backend  # one pool: one backend
    for bad in ("sfx", "speed=3", "sf30", "nodes=0", "depth=0", "movetime=0", "sf1@0s"):
        with pytest.raises(UserError):  # a zero limit would be an unbounded search
            parse_engine_spec(bad, path="/bin/true")


@needs_stockfish
def test_node_limited_search_is_reproducible():
    pool = EnginePool(workers=2)
    try:
        player = EnginePlayer("n30", nodes=30, pool=pool)
        board = chess.Board()
        for uci in ["e2e4", "e7e5", "g1f3"]:
            board.push_uci(uci)
        reqs = [(player, GameState(f"g{i}", board.copy())) for i in range(6)]
        moves = {c.move for c in pool.choose(reqs)}
        assert len(moves) == 1 and next(iter(moves)) in board.legal_moves
    finally:
        pool.close()


@needs_stockfish
def test_pipe_client_plays_what_python_chess_plays():
    """The pool's own UCI client against python-chess's: the same moves for node- and
    depth-limited searches (skill 20: lower skills draw from a clock-seeded generator), from the
    start and from a FEN, the game's moves sent so repetitions count, a cleared hash per search."""
    rng = random.Random(0)
    reference = chess.engine.SimpleEngine.popen_uci(STOCKFISH)
    reference.configure({"Threads": 1, "Hash": 16})
    ours = UCIProcess(STOCKFISH, timeout=30)
    ours.setoption("Threads", 1)
    ours.setoption("Hash", 16)
    try:
        for g, (fen, limit) in enumerate([(chess.STARTING_FEN, chess.engine.Limit(nodes=300)),
                                          ("r3k2r/pppq1ppp/2npbn2/4p3/2B1P3/2NP1N2/PPPQ1PPP/R3K2R w KQkq - 2 8",
                                           chess.engine.Limit(depth=5))]):
            board = chess.Board(fen)
            for ply in range(16):
                expected = reference.play(board, limit, game=(g, ply)).move  # a new game: ucinewgame
                assert ours.play(board, limit, timeout=30) == expected
                board.push(expected if ply % 2 else rng.choice(list(board.legal_moves)))
    finally:
        reference.quit()
        ours.quit()


@needs_stockfish
@pytest.mark.parametrize("limit", [dict(nodes=2000), dict(depth=7)])
def test_node_limited_moves_depend_only_on_the_game(tmp_path, limit):
    """Each pool search starts from a cleared hash, so a node-limited move is what a fresh search
    of that game plays, whichever process ran which searches before (the threads' scheduling
    decides that); with the hash kept between a process's searches, moves of the same game
    differed from run to run. The reference has Stockfish's default 16 MB table; the pool gives
    these small searches 1 MB (engines.search_hash_mb): the same moves."""
    pool = EnginePool(workers=2)
    try:
        assert search_hash_mb(chess.engine.Limit(**limit)) == 1
        sf = EnginePlayer("sf", pool=pool, **limit)
        (game,) = play_games([("g", PolicyPlayer("rand", random_policy), sf, {})], out_dir=str(tmp_path),
                             max_plies=60, progress=False)
    finally:
        pool.close()
    reference = chess.engine.SimpleEngine.popen_uci(STOCKFISH)
    reference.configure({"Threads": 1, "Hash": 16})
    try:
        board, searched = chess.Board(), 0
        for ply, uci in enumerate(game["moves"].split()):
            if ply % 2:  # the engine's moves (black)
                assert reference.play(board, chess.engine.Limit(**limit), game=ply).move.uci() == uci, ply
                searched += 1
            board.push_uci(uci)
        assert searched >= 5
    finally:
        reference.quit()


def test_an_engine_that_keeps_failing_is_one_clear_error(tmp_path):
    crashy = tmp_path / "crashy"
    crashy.write_text("#!/usr/bin/env python3\nimport sys\nfor line in sys.stdin:\n"
                      "    c = line.split() or ['']\n"
                      "    if c[0] == 'uci': print('id name crashy\\nuciok', flush=True)\n"
                      "    elif c[0] == 'isready': print('readyok', flush=True)\n"
                      "    elif c[0] == 'go': sys.exit(1)\n")
    crashy.chmod(0o755)
    pool = EnginePool(str(crashy), workers=1, retries=1)
    try:
        player = EnginePlayer("x", depth=1, pool=pool)
        with pytest.raises(UserError, match="failed 2 times on game g .*rerun to resume"):
            pool.choose([(player, GameState("g", chess.Board()))])
        assert pool.restarts == 2
    finally:
        pool.close()


def test_a_binary_that_is_not_a_uci_engine_is_one_clear_error():
    pool = EnginePool("/bin/true", workers=1)
    try:
        player = EnginePlayer("x", depth=1, pool=pool)
        with pytest.raises(UserError, match="cannot start engine '/bin/true'.*engine exited"):
            pool.choose([(player, GameState("g", chess.Board()))])
    finally:
        pool.close()


class _Saboteur:
    """A policy that, on its 4th move of game 0, kills (or freezes) every engine process."""

    def __init__(self, pool, sig):
        self.pool, self.sig, self.fired = pool, sig, False

    def __call__(self, board, rng):
        if not self.fired and board.ply() >= 7 and self.pool.pids():
            for pid in self.pool.pids():
                os.kill(pid, self.sig)
            self.fired = True
        return random_policy(board, rng)


@needs_stockfish
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGSTOP])
def test_dead_or_hung_engine_is_replaced_and_the_game_goes_on(tmp_path, sig):
    pool = EnginePool(workers=2, timeout=1.0)  # a frozen engine counts as hung after 1 s
    try:
        saboteur = _Saboteur(pool, sig)
        sf = EnginePlayer("sf-n20", nodes=20, pool=pool)
        results = play_games(grid([PolicyPlayer("rand", saboteur)], [sf], 2), out_dir=str(tmp_path),
                             max_plies=40, progress=False)
        assert saboteur.fired and pool.restarts >= 1
        assert len(results) == 2 and all(r["termination"] != "forfeit" for r in results)
        assert all(r["plies"] > 8 for r in results)  # both games went on past the kill
    finally:
        pool.close()


def _engine_script(tmp_path, body: str):
    """An executable that logs each start to `starts` and then runs `body` (shell)."""
    script = tmp_path / "engine.sh"
    script.write_text(f"#!/bin/sh\necho start >> {tmp_path / 'starts'}\n{body}\n")
    script.chmod(0o755)
    return script


@needs_stockfish
def test_an_engine_that_dies_while_starting_is_started_again(tmp_path):
    """The first start dies (a transient failure); the pool starts it again and plays."""
    flaky = _engine_script(tmp_path, f"if [ ! -e {tmp_path / 'once'} ]; then touch {tmp_path / 'once'}; "
                                     f"echo 'flaky start' >&2; exit 3; fi\nexec {STOCKFISH}")
    pool = EnginePool(str(flaky), workers=1)
    try:
        player = EnginePlayer("x", depth=1, pool=pool)
        (choice,) = pool.choose([(player, GameState("g", chess.Board()))])
        assert choice.move in chess.Board().legal_moves
        assert (tmp_path / "starts").read_text().count("start") == 2
    finally:
        pool.close()


def test_an_engine_that_always_dies_while_starting_says_how(tmp_path):
    """It exists and runs, so "install it" is the wrong advice: the error gives its exit code and
    the last of its stderr, after three tries."""
    dying = _engine_script(tmp_path, "echo 'Illegal instruction: this CPU lacks AVX2' >&2; exit 132")
    pool = EnginePool(str(dying), workers=1)
    try:
        player = EnginePlayer("x", depth=1, pool=pool)
        with pytest.raises(UserError) as e:
            pool.choose([(player, GameState("g", chess.Board()))])
    finally:
        pool.close()
    message = str(e.value)
    assert "exit code 132" in message and "lacks AVX2" in message and "3 times" in message, message
    assert "install" not in message
    assert (tmp_path / "starts").read_text().count("start") == 3
