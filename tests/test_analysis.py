"""State-level analysis: values from real Stockfish and rollouts, rewards, gains and their summary."""

import math

import chess
import numpy as np
import pytest

from transcendence_jax import analysis as A
from transcendence_jax.errors import UserError

# White to move: Qxf7# mates (scholar's mate); most other moves are ordinary.
MATE_IN_ONE = "r1bqkbnr/pppp1ppp/2n5/4p3/2B1P3/5Q2/PPPP1PPP/RNB1K1NR w KQkq - 4 4"


def greedy(board, rng):
    """Capture the most valuable piece, else a random move: a tiny stochastic reference policy."""
    moves = list(board.legal_moves)
    value = lambda m: (board.piece_type_at(m.to_square) or 0) if board.is_capture(m) else -1
    best = max(value(m) for m in moves)
    top = [m for m in moves if value(m) == best]
    return top[int(rng.integers(len(top)))]


def material_outcome(board):
    if board.is_checkmate():
        return "0-1" if board.turn == chess.WHITE else "1-0"
    vals = {chess.PAWN: 1, chess.KNIGHT: 3, chess.BISHOP: 3, chess.ROOK: 5, chess.QUEEN: 9}
    diff = sum(v * (len(board.pieces(p, True)) - len(board.pieces(p, False))) for p, v in vals.items())
    return "1-0" if diff >= 3 else "0-1" if diff <= -3 else "1/2-1/2"


def test_tempered_and_empirical_policy():
    board = chess.Board()
    logits = {m: float(i) for i, m in enumerate(board.legal_moves)}
    from transcendence_jax.sampling.policy import tempered

    cold, warm = tempered(logits, 1e-4), tempered(logits, 1.0)
    assert max(cold.values()) == 1.0 and cold[max(logits, key=logits.get)] == 1.0
    assert sum(warm.values()) == pytest.approx(1.0) and min(warm.values()) > 0
    emp = A.empirical_policy(greedy, board, samples=200, rng=np.random.default_rng(0))
    assert sum(emp.values()) == pytest.approx(1.0) and len(emp) > 10  # random among 20 quiet moves


def test_stockfish_values_find_the_mate():
    board = chess.Board(MATE_IN_ONE)
    (values,) = A.stockfish_move_values([board], depth=6)
    assert set(values) == set(board.legal_moves)
    mate = chess.Move.from_uci("f3f7")
    assert values[mate] > 0.99 and max(v for m, v in values.items() if m != mate) < 0.9
    with pytest.raises(UserError, match="depth or a node limit"):
        A.stockfish_move_values([board], depth=None)


def test_rollout_values_gains_and_summary():
    board = chess.Board(MATE_IN_ONE)
    (values,) = A.rollout_move_values([board], greedy, material_outcome, rollouts=2, plies=4)
    mate = chess.Move.from_uci("f3f7")
    assert values[mate] == 1.0 and all(0.0 <= v <= 1.0 for v in values.values())
    uniform = {m: 1 / len(values) for m in values}
    gains = A.state_gains([{mate: 1.0}, uniform], [uniform, uniform], [values, values])
    assert gains[0] == pytest.approx(100 * (1.0 - np.mean(list(values.values())))) and gains[1] == 0.0
    summary = A.summarize_gains(np.array([10.0, 0, 0, 0, 0, 0, 0, 0, 0, 1.0]),
                                groups={"blind": np.arange(10) < 2, "clear": np.arange(10) >= 2}, bootstrap=200)
    assert summary["mean"] == pytest.approx(1.1) and summary["ci95"][0] <= 1.1 <= summary["ci95"][1]
    assert summary["share_top"] == pytest.approx(10 / 11) and summary["changed"] == pytest.approx(0.2)
    assert summary["groups"]["blind"]["mean"] == pytest.approx(5.0)
    assert A.agreement([{mate: 1.0}, uniform], [mate, mate]) == pytest.approx((1 + 1 / len(values)) / 2)
    with pytest.raises(UserError, match="no value for move"):
        A.expected_reward({chess.Move.from_uci("a2a3"): 1.0}, {})


@pytest.mark.slow  # imports and compiles a (tiny) model
def test_model_policies_match_the_sampler():
    model_mod = pytest.importorskip("transcendence_jax.model", reason="model.py has not landed")
    sampling = pytest.importorskip("transcendence_jax.sampling.policy", reason="sampling.py has not landed")
    from flax import nnx
    from ml_collections import ConfigDict

    cfg = ConfigDict(dict(vocab_size=2048, num_layers=1, num_heads=2, embed_dim=32, mlp_dim=64, max_len=32,
                          dropout=0.0, board_input=True, dtype="float32", param_dtype="float32", remat=False))
    model = model_mod.Transformer(cfg, rngs=nnx.Rngs(0))
    board = chess.Board()
    board.push_uci("e2e4")
    (cold_warm,) = A.model_policies(model, [board], [0.001, 0.5])
    assert set(cold_warm[0.5]) == set(board.legal_moves) and max(cold_warm[0.001].values()) == 1.0
    ref = sampling.move_probabilities(model, board, 0.5)
    assert max(abs(ref[m] - cold_warm[0.5][m]) for m in ref) < 1e-6


def test_kl_divergence_and_mass_on():
    a, b, c = (chess.Move.from_uci(u) for u in ("e2e4", "d2d4", "g1f3"))
    p = {a: 0.5, b: 0.5}
    assert A.kl_divergence(p, p) == 0.0
    assert abs(A.kl_divergence(p, {a: 0.25, b: 0.75}) - 0.5 * (math.log(2) + math.log(2 / 3))) < 1e-12
    assert abs(A.kl_divergence(p, {a: 1.0}, floor=1e-6) - 0.5 * (math.log(0.5) + math.log(0.5 / 1e-6))) < 1e-9
    assert abs(A.mass_on({a: 0.2, b: 0.3, c: 0.5}, [a, c]) - 0.7) < 1e-12
