"""`transcendence uci`: the protocol in process, and python-chess clients driving the command
(the shipped demo model: id, info, MultiPV, bestmove (none); a moves-only model refusing a FEN)."""

import io
import os
import pathlib
import subprocess
import sys

import chess
import chess.engine
from flax import nnx

from transcendence_jax.play.engines import find_stockfish
from transcendence_jax.play.uci import UciEngine, score_cp

REPO = pathlib.Path(__file__).resolve().parents[1]
TINY = ["model.num_layers=2", "model.num_heads=2", "model.embed_dim=32", "model.mlp_dim=64", "model.max_len=64"]


def tiny_model(overrides=()):
    from transcendence_jax.config import load_config
    from transcendence_jax.model import Transformer

    config = load_config("tiny", TINY + list(overrides))
    return Transformer(config.model, rngs=nnx.Rngs(0)), config


def make_workdir(path: pathlib.Path, overrides=()) -> str:
    """A randomly initialised tiny model saved as train.py saves it: config.json + an orbax step."""
    import orbax.checkpoint as ocp

    from transcendence_jax.training import checkpoint

    model, config = tiny_model(overrides)
    path.mkdir(parents=True, exist_ok=True)
    (path / "config.json").write_text(config.to_json_best_effort(indent=2))
    manager = checkpoint.make_manager(str(path), async_save=False)
    state = {"step": 3, "params": nnx.state(model, nnx.Param)}
    manager.save(3, args=ocp.args.Composite(state=ocp.args.StandardSave(state)))
    manager.wait_until_finished()
    manager.close()
    return str(path)


def popen_uci(args, tmp_path):
    """`python -m transcendence_jax uci ARGS` under python-chess, keeping its compiled programs in tmp_path."""
    cmd = [sys.executable, "-m", "transcendence_jax", "uci", *args]
    env = dict(os.environ, JAX_PLATFORMS="cpu", TJ_COMPILATION_CACHE=str(tmp_path / "xla"),
               JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0")
    return chess.engine.SimpleEngine.popen_uci(cmd, cwd=REPO, env=env, timeout=120)


def load_tiny():
    return tiny_model()[0], 3


def test_protocol_in_process():
    out = io.StringIO()
    engine = UciEngine(load_tiny, temperature=0.0, step=3, out=out)
    for line in ["uci", "isready", "ucinewgame", "position startpos moves e2e4 e7e5", "go wtime 1000",
                 "position fen not-a-fen moves", "go", "position startpos moves e2e5", "bogus",
                 "position fen QQQQQQQQ/QQQQQQQQ/Q7/8/8/8/8/K6k w - - 0 1",
                 "position fen 7k/5Q2/6K1/8/8/8/8/8 b - - 0 1", "go",  # stalemate: no legal move
                 "position fen 8/8/8/4k3/8/8/8/4K3 w - - 0 1", "go",  # K v K: a draw, but moves to play
                 "setoption name MultiPV value 3", "position startpos", "go",
                 "setoption name MultiPV value 0", "setoption name Temperature value 1.5",
                 "setoption name Temperature value -1", "setoption name Temperature value nan"]:
        assert engine.handle(line)
    assert not engine.handle("quit")
    lines = out.getvalue().splitlines()
    from transcendence_jax import __version__

    assert lines[lines.index("uciok") - 5] == f"id name transcendence-jax {__version__} step 3 tau 0"
    assert "option name MultiPV type spin default 1 min 1 max 256" in lines and "readyok" in lines
    bests = [line.split()[1] for line in lines if line.startswith("bestmove")]
    board = chess.Board()
    board.push_uci("e2e4"), board.push_uci("e7e5")
    assert chess.Move.from_uci(bests[0]) in board.legal_moves
    assert bests[1] == "0000" and "info string no position to play: bad position (" in "\n".join(lines)
    assert bests[2] == "(none)"  # stalemate: no move (the bad positions before were refused)
    assert chess.Move.from_uci(bests[3]) in chess.Board("8/8/8/4k3/8/8/8/4K3 w - - 0 1").legal_moves
    assert sum("bad position" in line and "no move until" in line for line in lines) == 3
    assert any("unknown command" in line for line in lines)
    assert any("bad position (too many white pieces" in line for line in lines)
    multipv = [line for line in lines if line.startswith("info depth 1 seldepth 1 multipv")][-3:]
    assert [line.split()[6] for line in multipv] == ["1", "2", "3"]
    assert bests[4] == multipv[0].split(" pv ")[1].split()[0]  # tau 0: the policy's first move
    assert engine.temperature == 1.5 and sum("bad value" in line for line in lines) == 3  # 0, -1 and nan refused


def test_score_is_the_policy_probability_on_the_elo_scale():
    assert score_cp(0.5) == 0 and score_cp(0.75) == 191 and score_cp(0.25) == -191
    assert score_cp(1.0) == 1600 and score_cp(0.0) == -1600  # clipped: a one-hot is not a mate


def test_python_chess_drives_the_shipped_model(tmp_path):
    """id, info (score, pv, probability), MultiPV and bestmove (none) as python-chess reads them,
    from `transcendence uci --pretrained demo` (the demo's trained model: no training needed)."""
    from transcendence_jax import __version__

    engine = popen_uci(["--pretrained", "demo"], tmp_path)
    try:
        assert engine.id["name"] == f"transcendence-jax {__version__} step 600 tau 0.001"
        board = chess.Board()
        board.push_uci("e2e4"), board.push_uci("d7d5")
        result = engine.play(board, chess.engine.Limit(time=1.0), info=chess.engine.INFO_ALL)
        assert result.move == chess.Move.from_uci("e4d5")  # the experts' base takes the pawn (MVV-LVA)
        info = result.info
        assert info["depth"] == 1 and info["nodes"] == 1 and info["pv"] == [result.move]
        assert info["string"].startswith("e4d5 ") and info["string"].endswith("% at tau 1, 100.0% at tau 0.001")
        policy = float(info["string"].split()[1].rstrip("%")) / 100
        assert info["score"].relative.score() == score_cp(policy) > 0 and policy > 0.5
        infos = engine.analyse(board, chess.engine.Limit(depth=1), multipv=4)
        assert [i["multipv"] for i in infos] == [1, 2, 3, 4] and infos[0]["pv"] == [result.move]
        percents = [float(i["string"].split()[1].rstrip("%")) for i in infos]
        assert percents == sorted(percents, reverse=True) and abs(percents[0] / 100 - policy) < 1e-3
        assert [i["string"].split()[0] for i in infos] == [i["pv"][0].uci() for i in infos]
        assert [i["score"].relative.score() for i in infos] == sorted((i["score"].relative.score() for i in infos),
                                                                     reverse=True)
        mated = chess.Board("7k/6Q1/6K1/8/8/8/8/8 b - - 0 1")
        assert mated.is_checkmate() and engine.play(mated, chess.engine.Limit(time=1.0)).move is None
        bare = chess.Board("8/8/8/4k3/8/8/8/4K3 w - - 0 1")  # insufficient material: over, but moves exist
        assert engine.play(bare, chess.engine.Limit(time=1.0)).move in bare.legal_moves
    finally:
        engine.quit()


def test_each_position_is_played_from_its_own_game():
    """One cache slot serves every `position`: one that does not extend the previous game (a new
    FEN, a different move in the middle) must not be ranked on the previous game's boards."""
    out = io.StringIO()
    engine = UciEngine(load_tiny, temperature=0.0, out=out)
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
    assert bests[-1] == "0000"  # the refused position: no move rather than one from the previous position
    for position, best in zip(positions, bests):
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


def test_python_chess_plays_a_full_game_and_a_moves_only_model_refuses_a_fen(tmp_path):
    """A model without board input plays a whole game against Stockfish from the start, and
    answers a FEN it cannot represent with an info string and the null move, not a guess."""
    workdir = make_workdir(tmp_path / "w", ["model.board_input=false", "model.board_head=false",
                                            "train.legal_mask=none"])
    model_engine = popen_uci(["--workdir", workdir, "--temperature", "1.0"], tmp_path)
    stockfish = chess.engine.SimpleEngine.popen_uci(find_stockfish())
    try:
        assert model_engine.id["name"].endswith("step 3 tau 1")
        board = chess.Board()
        while not board.is_game_over(claim_draw=True) and board.ply() < 400:
            engine, limit = (model_engine, chess.engine.Limit(time=1.0)) if board.turn == chess.WHITE \
                else (stockfish, chess.engine.Limit(depth=3))
            result = engine.play(board, limit)
            assert result.move in board.legal_moves
            board.push(result.move)
        assert board.is_game_over(claim_draw=True)  # a real end: mate, stalemate or a draw rule
        fen = chess.Board("r1bqkbnr/pppp1ppp/2n5/4p3/4P3/5N2/PPPP1PPP/RNBQKB1R w KQkq - 2 3")
        result = model_engine.play(fen, chess.engine.Limit(time=1.0), info=chess.engine.INFO_ALL)
        assert not result.move and "no board input" in result.info["string"], result
    finally:
        model_engine.quit()
        stockfish.quit()
    assert any((tmp_path / "xla").glob("*-cache")), "the uci command kept no compiled program"


def test_a_folder_with_no_model_is_one_line_error(tmp_path):
    r = subprocess.run([sys.executable, "-m", "transcendence_jax", "uci", "--workdir", str(tmp_path)],
                       input="uci\nisready\n", capture_output=True, text=True, cwd=REPO, timeout=120,
                       env=dict(os.environ, JAX_PLATFORMS="cpu"))
    assert r.returncode == 2 and "not a training workdir" in r.stderr
    assert r.stderr.strip().startswith("error:") and len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_workdir_without_checkpoint_is_one_line_error(tmp_path):
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "config.json").write_text(tiny_model()[1].to_json_best_effort())
    r = subprocess.run([sys.executable, "-m", "transcendence_jax", "uci", "--workdir", str(tmp_path)],
                       input="uci\nisready\n", capture_output=True, text=True, cwd=REPO, timeout=120,
                       env=dict(os.environ, JAX_PLATFORMS="cpu"))
    assert r.returncode == 2 and "uciok" in r.stdout and "has no checkpoint yet" in r.stderr
    assert r.stderr.strip().startswith("error:") and len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_a_client_that_goes_away_ends_the_engine_quietly():
    """A client that closes the engine's output (a GUI that quit, `| head -1`) ends it with no traceback."""
    proc = subprocess.Popen([sys.executable, "-m", "transcendence_jax", "uci", "--pretrained", "demo"], cwd=REPO,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, JAX_PLATFORMS="cpu"))
    proc.stdin.write("uci\n")
    proc.stdin.flush()
    assert proc.stdout.readline().startswith("id name transcendence-jax")
    proc.stdout.close()
    _, err = proc.communicate("uci\n" * 2000 + "quit\n", timeout=120)
    assert proc.returncode == 0 and "Traceback" not in err, err
