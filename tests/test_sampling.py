"""The batched cached sampler against a plain full-recompute forward, on a tiny random model.

Every Sampler here has 16 slots and the model's max_len, so they share compiled programs."""

import os
import pathlib
import subprocess
import sys
import textwrap

import chess
import jax
import ml_collections
import numpy as np
import pytest
from flax import nnx

from transcendence_jax import sampling
from transcendence_jax.arena import PolicyPlayer, play_games, random_policy
from transcendence_jax.model import Transformer
from transcendence_jax.sampling import ModelPlayer, Sampler, move_probabilities, position_logits, sample_moves
from transcendence_jax.tokenizer import move_to_token

REPO = pathlib.Path(__file__).resolve().parents[1]


def tiny_cfg(board_input=True, max_len=64):
    return ml_collections.ConfigDict(dict(
        vocab_size=2048, num_layers=2, num_heads=2, embed_dim=32, mlp_dim=64, max_len=max_len,
        dropout=0.0, board_input=board_input, dtype="float32", param_dtype="float32", remat=False))


@pytest.fixture(scope="module")
def model():
    return Transformer(tiny_cfg(), rngs=nnx.Rngs(0))


def random_board(rng, plies):
    board = chess.Board()
    for _ in range(plies):
        if board.is_game_over():
            break
        board.push(random_policy(board, rng))
    return board


def masked_argmax(logits_V, board):
    return max(board.legal_moves, key=lambda m: logits_V[move_to_token(m)])


def test_sampler_matches_full_forward_over_plies(model):
    """Games of different lengths in one batch, 1 or 2 new tokens a call: cached logits and
    arg-max moves equal the full recompute's, ply after ply."""
    rng = np.random.default_rng(0)
    boards = [random_board(rng, n) for n in (0, 3, 8, 15)]
    sampler = Sampler(model, max_games=16, seed=1)
    for ply in range(6):
        live = [i for i, b in enumerate(boards) if not b.is_game_over()]
        reqs = [(f"g{i}", boards[i], 1e-4) for i in live]
        choices = sampler.sample(reqs)
        got = np.asarray(sampler.last_logits)
        want = position_logits(model, [boards[i] for i in live])
        np.testing.assert_allclose(got, want, atol=2e-4, rtol=1e-4)
        for i, c, w in zip(live, choices, want):
            assert c.move == masked_argmax(w, boards[i])
            boards[i].push(c.move)
            if i % 2 and not boards[i].is_game_over():  # odd games: an opponent reply too (2 new tokens)
                boards[i].push(random_policy(boards[i], rng))
    assert sampler.calls == 6 and sum(sampler.sampled.values()) == 24


def test_temperature_zero_is_argmax_and_per_game_temperatures(model):
    board = random_board(np.random.default_rng(1), 6)
    want = masked_argmax(position_logits(model, [board])[0], board)
    temps = [1.0, 1e-4] * 8
    hot, cold = set(), set()
    sampler = Sampler(model, max_games=16, seed=0)
    for r in range(6):
        moves = sample_moves(model, [board] * 16, temps, jax.random.key(r))
        chosen = [c.move for c in sampler.sample([(f"g{i}", board, t) for i, t in enumerate(temps)])]
        for ms in (moves, chosen):
            hot.update(ms[0::2])
            cold.update(ms[1::2])
    assert cold == {want}
    assert len(hot) > 3  # a random model at tau=1 is near uniform over ~20 legal moves
    probs = move_probabilities(model, board, 1e-4)
    assert probs[want] == 1.0 and sum(probs.values()) == 1.0
    probs = move_probabilities(model, board, 1.0)
    assert abs(sum(probs.values()) - 1) < 1e-6 and set(probs) == set(board.legal_moves)


def test_masks_never_let_an_illegal_move_through(model):
    rng = np.random.default_rng(2)
    boards = [b for b in (random_board(rng, int(n)) for n in rng.integers(0, 60, 96)) if not b.is_game_over()]
    sampler = Sampler(model, max_games=16, seed=3)
    reqs = [(f"g{i}", b, t) for i, b in enumerate(boards) for t in (1.0,)]
    choices = sampler.sample(reqs)  # more games than slots: several rounds, slots evicted
    assert all(c.move in b.legal_moves for c, b in zip(choices, boards))
    moves = sample_moves(model, boards, 1.0, jax.random.key(0))
    assert all(m in b.legal_moves for m, b in zip(moves, boards))
    # No illegal try is booked in mask mode, but the would-be-illegal rate is kept per game: a
    # random model's free draw is nearly always illegal.
    assert all(c.illegal == 0 for c in choices)
    assert sum(sampler.unmasked_illegal[f"g{i}"] for i in range(len(boards))) > len(boards) // 2


def test_paper_protocol_resamples_then_forfeits(model):
    rng = np.random.default_rng(4)
    boards = [random_board(rng, n) for n in range(0, 40, 2)]
    sampler = Sampler(model, max_games=16, legal="paper", tries=5)
    choices = sampler.sample([(f"g{i}", b, 1.0) for i, b in enumerate(boards)])
    for c, b in zip(choices, boards):
        assert (c.move is None and c.illegal == 5) or (c.move in b.legal_moves and c.illegal < 5)
    assert any(c.move is None for c in choices)
    assert sum(sampler.illegal.values()) == sum(c.illegal for c in choices)


def test_games_longer_than_the_cache_continue_on_a_window(model):
    rng = np.random.default_rng(5)
    board = chess.Board()
    sampler = Sampler(model, max_games=16, max_len=16)
    for _ in range(40):
        if board.is_game_over():
            break
        (c,) = sampler.sample([("long", board, 1.0)])
        board.push(c.move)
        if not board.is_game_over():
            board.push(random_policy(board, rng))
    assert board.ply() > 40


def test_model_players_in_the_arena(model, tmp_path):
    sampler = Sampler(model, max_games=16)
    cold, hot = ModelPlayer("m0.001", sampler, 0.001), ModelPlayer("m1.0", sampler, 1.0)
    rand = PolicyPlayer("random", random_policy)
    pairings = [(f"g{i}", *pair, {}) for i, pair in enumerate([(cold, rand), (rand, hot), (cold, hot)])]
    results = play_games(pairings, out_dir=str(tmp_path), max_plies=20, progress=False)
    assert len(results) == 3 and all(r["plies"] == 20 for r in results)
    assert sampler.calls <= 20  # one call a ply for all the model's games


SHARDED = textwrap.dedent("""
    import chess, jax, numpy as np
    from flax import nnx
    from jax.sharding import AxisType
    from tests.test_sampling import tiny_cfg, random_board
    from transcendence_jax.model import Transformer
    from transcendence_jax.sampling import Sampler
    assert jax.device_count() == 8
    model = Transformer(tiny_cfg(), rngs=nnx.Rngs(0))
    mesh = jax.make_mesh((8,), ("data",), axis_types=(AxisType.Auto,))
    rng = np.random.default_rng(0)
    boards = [random_board(rng, int(n)) for n in rng.integers(0, 30, 8)]
    one, many = Sampler(model, max_games=16), Sampler(model, max_games=16, mesh=mesh)
    for ply in range(2):
        reqs = [(f"g{i}", b, 1e-4) for i, b in enumerate(boards)]
        a, b = one.sample(reqs), many.sample(reqs)
        assert [c.move for c in a] == [c.move for c in b]
        np.testing.assert_allclose(np.asarray(one.last_logits), np.asarray(many.last_logits), atol=1e-4)
        assert len(many._cache.k[0].sharding.device_set) == 8
        for board, c in zip(boards, a):
            board.push(c.move)
    print("sharded ok")
""")


def test_sharded_over_the_data_axis_matches_one_device():
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8", JAX_PLATFORMS="cpu")
    out = subprocess.run([sys.executable, "-c", SHARDED], cwd=REPO, env=env, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0 and "sharded ok" in out.stdout, out.stderr[-3000:]
