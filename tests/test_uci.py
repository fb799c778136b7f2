"""`transcendence uci`: the protocol in process, and a python-chess client playing a full game."""

import io
import os
import pathlib
import subprocess
import sys

import chess
import chess.engine
from flax import nnx

from transcendence_jax.play.engines import find_stockfish
from transcendence_jax.play.uci import UciEngine

REPO = pathlib.Path(__file__).resolve().parents[1]
TINY = ["model.num_layers=2", "model.num_heads=2", "model.embed_dim=32", "model.mlp_dim=64", "model.max_len=64"]


def tiny_model():
    from transcendence_jax.config import load_config
    from transcendence_jax.model import Transformer

    config = load_config("tiny", TINY)
    return Transformer(config.model, rngs=nnx.Rngs(0)), config


def make_workdir(path: pathlib.Path) -> str:
    """A randomly initialised tiny model saved as train.py saves it: config.json + an orbax step."""
    import orbax.checkpoint as ocp

    from transcendence_jax.training import checkpoint

    model, config = tiny_model()
    path.mkdir(parents=True, exist_ok=True)
    (path / "config.json").write_text(config.to_json_best_effort(indent=2))
    manager = checkpoint.make_manager(str(path), async_save=False)
    state = {"step": 3, "params": nnx.state(model, nnx.Param)}
    manager.save(3, args=ocp.args.Composite(state=ocp.args.StandardSave(state)))
    manager.wait_until_finished()
    manager.close()
    return str(path)


def test_protocol_in_process():
    out = io.StringIO()
    engine = UciEngine(lambda: tiny_model()[0], temperature=0.0, out=out)
    for line in ["uci", "isready", "ucinewgame", "position startpos moves e2e4 e7e5", "go wtime 1000",
                 "position fen not-a-fen moves", "position startpos moves e2e5", "bogus",
                 "position fen QQQQQQQQ/QQQQQQQQ/Q7/8/8/8/8/K6k w - - 0 1",
                 "position fen 7k/5Q2/6K1/8/8/8/8/8 b - - 0 1", "go", "setoption name Temperature value 1.5",
                 "setoption name Temperature value -1", "setoption name Temperature value nan"]:
        assert engine.handle(line)
    assert not engine.handle("quit")
    lines = out.getvalue().splitlines()
    assert lines[lines.index("uciok") - 4].startswith("id name") and "readyok" in lines
    bests = [line.split()[1] for line in lines if line.startswith("bestmove")]
    board = chess.Board()
    board.push_uci("e2e4"), board.push_uci("e7e5")
    assert chess.Move.from_uci(bests[0]) in board.legal_moves
    assert bests[1] == "0000"  # stalemate: no move (the bad positions before were ignored)
    assert sum("bad position" in line for line in lines) == 3 and any("unknown command" in line for line in lines)
    assert any("bad position (too many white pieces" in line for line in lines)
    assert engine.temperature == 1.5 and sum("bad value" in line for line in lines) == 2  # -1 and nan refused


def test_each_position_is_played_from_its_own_game():
    """One cache slot serves every `position`: one that does not extend the previous game (a new
    FEN, a different move in the middle) must not be ranked on the previous game's boards."""
    out = io.StringIO()
    engine = UciEngine(lambda: tiny_model()[0], temperature=0.0, out=out)
    positions = ["startpos moves e2e4 e7e5 g1f3", "startpos moves e2e4 b8c6 g1f3",  # same ends, new middle
                 "fen 8/8/8/4k3/8/8/8/R3K3 b - - 0 1", "fen 8/8/8/8/4k3/8/8/R3K3 b - - 0 1",  # same moves (none)
                 "startpos moves e2e4 e7e5 g1f3", "startpos moves e2e4 e7e5 g1f3 b8c6 f1b5"]  # an extension
    for position in positions:
        assert engine.handle(f"position {position}") and engine.handle("go")
    assert engine.handle("position startpos moves e2e4 0000")  # a null move: not a game move
    assert engine.handle("go infinite")
    held = [line for line in out.getvalue().splitlines() if line.startswith("bestmove")]
    assert engine.handle("stop")
    lines = out.getvalue().splitlines()
    bests = [line.split()[1] for line in lines if line.startswith("bestmove")]
    assert len(held) == len(positions) and len(bests) == len(positions) + 1  # infinite: only on stop
    for position, best in zip(positions + [positions[-1]], bests):
        words = position.split()
        board = chess.Board() if words[0] == "startpos" else chess.Board(" ".join(words[1:7]))
        for uci in words[words.index("moves") + 1:] if "moves" in words else []:
            board.push_uci(uci)
        assert chess.Move.from_uci(best) in board.legal_moves, (position, best)
    assert any("bad position (null move '0000')" in line for line in lines)


def test_nan_or_negative_temperature_is_one_line_error(tmp_path, capsys):
    from transcendence_jax import cli

    for bad in ("nan", "-1"):
        assert cli.main(["uci", "--workdir", str(tmp_path), "--temperature", bad]) == 2
        assert "is not a number >= 0" in capsys.readouterr().err


def test_python_chess_plays_a_full_game_against_the_uci_command(tmp_path):
    workdir = make_workdir(tmp_path / "w")
    cmd = [sys.executable, "-m", "transcendence_jax", "uci", "--workdir", workdir, "--temperature", "1.0"]
    cache = tmp_path / "xla"  # the CLI keeps its compiled programs there (every compile, for the test)
    env = dict(os.environ, JAX_PLATFORMS="cpu", TJ_COMPILATION_CACHE=str(cache),
               JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0")
    model_engine = chess.engine.SimpleEngine.popen_uci(cmd, cwd=REPO, env=env, timeout=120)
    stockfish = chess.engine.SimpleEngine.popen_uci(find_stockfish())
    try:
        assert model_engine.id["name"] == "transcendence-jax"
        board = chess.Board()
        while not board.is_game_over(claim_draw=True) and board.ply() < 400:
            engine, limit = (model_engine, chess.engine.Limit(time=1.0)) if board.turn == chess.WHITE \
                else (stockfish, chess.engine.Limit(depth=3))
            result = engine.play(board, limit)
            assert result.move in board.legal_moves
            board.push(result.move)
        assert board.is_game_over(claim_draw=True)  # a real end: mate, stalemate or a draw rule
    finally:
        model_engine.quit()
        stockfish.quit()
    assert any(cache.glob("*-cache")), "the uci command kept no compiled program"


def test_workdir_without_checkpoint_is_one_line_error(tmp_path):
    r = subprocess.run([sys.executable, "-m", "transcendence_jax", "uci", "--workdir", str(tmp_path)],
                       input="uci\nisready\n", capture_output=True, text=True, cwd=REPO, timeout=120,
                       env=dict(os.environ, JAX_PLATFORMS="cpu"))
    assert r.returncode == 2 and "uciok" in r.stdout
    assert r.stderr.strip().startswith("error:") and len(r.stderr.strip().splitlines()) == 1, r.stderr
