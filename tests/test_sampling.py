"""The batched cached sampler against a plain full-recompute forward, on a tiny random model.

Every Sampler here has 16 slots and the model's max_len, so they share compiled programs."""

import collections
import os
import pathlib
import subprocess
import sys
import textwrap

import chess
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from flax import nnx

from transcendence_jax.data.boards import board_planes, next_planes
from transcendence_jax.data.tokenizer import MOVE_OF_TOKEN as MOVES
from transcendence_jax.data.tokenizer import move_to_token
from transcendence_jax.legality import candidates, king_safe, pseudo_legal
from transcendence_jax.model import Transformer
from transcendence_jax.play.arena import play_games
from transcendence_jax.play.players import ModelPlayer, MoveChoice, PolicyPlayer, random_policy
from transcendence_jax.sampling import decode
from transcendence_jax.sampling.policy import move_probabilities, position_logits, sample_moves
from transcendence_jax.sampling.sampler import Sampler

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


# Castling both ways on both sides, en passant by each side, promotions (with captures, under-promotions).
SPECIAL_GAMES = ["e2e4 e7e5 g1f3 g8f6 f1c4 f8c5 e1g1 e8g8", "d2d4 d7d5 b1c3 b8c6 c1f4 c8f5 d1d2 d8d7 e1c1 e8c8",
                 "e2e4 a7a6 e4e5 d7d5 e5d6 a6a5 a2a3 e7e5 a3a4 e5e4 d2d4 e4d3",
                 "a2a4 b7b5 a4b5 a7a6 b5a6 c8b7 a6b7 g8f6 b7a8q", "h2h4 g7g5 h4g5 h7h6 g5h6 f8g7 h6g7 e7e6 g7h8n",
                 "a2a3 h7h5 g2g4 h5g4 h2h3 g4h3 a3a4 h3h2 a4a5 h2g1b"]


def test_planes_follow_moves_and_pseudo_legal_moves_cover_the_legal_ones():
    rng = np.random.default_rng(7)
    games = [[chess.Move.from_uci(u) for u in g.split()] for g in SPECIAL_GAMES]
    for _ in range(6):
        b = random_board(rng, 200)
        games.append(list(b.move_stack))
    planes, white, legal, boards = [], [], [], []
    for moves in games:
        board = chess.Board()
        p = board_planes(board)
        for m in moves:
            planes.append(p), white.append(board.turn), legal.append([move_to_token(x) for x in board.legal_moves])
            boards.append(board.copy(stack=False))
            assert m in board.legal_moves
            board.push(m)
            p = next_planes(p, m)
            np.testing.assert_array_equal(p, board_planes(board), err_msg=f"after {m} in {board.fen()}")
    pseudo = np.asarray(jax.jit(pseudo_legal, static_argnums=2)(np.stack(planes), np.asarray(white), 2048))
    # The sampler's sparse version (the own pieces' moves only) allows the same moves.
    sparse_jit = jax.jit(candidates, static_argnums=2)
    tokens, allowed = (np.asarray(x) for x in sparse_jit(np.stack(planes), np.asarray(white), 2048))
    sparse = np.zeros_like(pseudo)
    np.put_along_axis(sparse, np.where(allowed, tokens, 0), allowed, axis=1)
    np.testing.assert_array_equal(sparse, pseudo)
    assert all(len(set(row[row > 0])) == (row > 0).sum() for row in tokens)  # each move once (0 pads)
    for row, toks in zip(pseudo, legal):
        assert row[toks].all()  # a superset of the legal moves...
    assert pseudo.sum() < 1.3 * sum(map(len, legal))  # ...and not much more
    # The device's king-safety test, with python-chess asked only about castling and en passant,
    # agrees with python-chess on every move the mask allows.
    tokens = np.zeros((len(pseudo), pseudo.sum(1).max()), np.int32)
    for row, toks in zip(tokens, pseudo):
        row[:toks.sum()] = np.nonzero(toks)[0]
    safe, special = (np.asarray(x) for x in jax.jit(king_safe)(np.stack(planes), np.asarray(white), tokens))
    checked = collections.Counter()
    for board, toks, row, safe_row, special_row in zip(boards, pseudo, tokens, safe, special):
        for t, ok, asked in zip(row[:toks.sum()], safe_row, special_row):
            move = MOVES[t]
            legal_move = board.is_legal(move)
            assert (board.is_legal(move) if asked else ok) == legal_move, f"{move} in {board.fen()}"
            checked[legal_move, board.is_check()] += 1
    assert min(checked.values()) > 50  # legal and illegal moves, in check and not


@pytest.mark.parametrize("games", [4, 14])  # some slots ask (rows read by index) / most ask (in place)
def test_sampler_matches_full_forward_over_plies(model, games):
    """Games of different lengths in one batch, 1 or 2 new tokens a call: cached logits and
    arg-max moves equal the full recompute's, ply after ply."""
    rng = np.random.default_rng(0)
    boards = [random_board(rng, n) for n in (0, 3, 8, 15, 1, 2, 5, 9, 12, 20, 30, 4, 7, 10)[:games]]
    sampler = Sampler(model, max_games=16, seed=1)
    for _ply in range(6):
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
    assert sampler.calls == 6 and sum(sampler.sampled.values()) == 6 * games


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


MATE, STALEMATE = chess.Board("7k/6Q1/6K1/8/8/8/8/8 b - - 0 1"), chess.Board("7k/5Q2/6K1/8/8/8/8/8 b - - 0 1")


def test_simple_api_at_infinite_temperature_and_on_finished_boards(model):
    """tau = inf is uniform over the legal moves (the logits are divided before the mask: -inf /
    inf would be NaN); a board with no legal move gets None (not token 0, not a crash)."""
    board = random_board(np.random.default_rng(1), 6)
    legal = list(board.legal_moves)
    moves = [m for r in range(20) for m in sample_moves(model, [board] * 64, float("inf"), jax.random.key(r))]
    counts, n, q = collections.Counter(moves), len(moves), 1 / len(legal)
    assert set(counts) == set(legal)
    assert all(abs(counts[m] / n - q) < 4 * np.sqrt(q * (1 - q) / n) for m in legal), counts
    assert set(move_probabilities(model, board, float("inf")).values()) == {q}
    want = masked_argmax(position_logits(model, [board])[0], board)
    got = sample_moves(model, [MATE, board, STALEMATE], [1.0, 0.0, float("inf")], jax.random.key(0))
    assert got == [None, want, None]
    assert move_probabilities(model, MATE) == {}


def test_nan_and_negative_temperatures_are_refused_and_infinity_is_uniform(model):
    """A NaN or negative temperature is refused in one line naming the game; tau = inf plays
    uniformly over the legal moves (on the device: logit / inf = 0, then Gumbel noise alone),
    and its free draw is a uniform move token."""
    from transcendence_jax.data.tokenizer import NUM_SPECIAL, VOCAB_SIZE

    board = random_board(np.random.default_rng(1), 6)
    sampler = Sampler(model, max_games=16, seed=6)
    for bad in (float("nan"), -0.5):
        with pytest.raises(ValueError, match=f"game bad: temperature {bad} is not a number >= 0"):
            sampler.sample([("ok", board, 1.0), ("bad", board, bad)])
        with pytest.raises(ValueError, match=f"board 1: temperature {bad} is not a number >= 0"):
            sample_moves(model, [board, board], [1.0, bad], jax.random.key(0))
        with pytest.raises(ValueError, match=f"temperature {bad} is not a number >= 0"):
            move_probabilities(model, board, bad)
    assert sampler.calls == 0
    legal = list(board.legal_moves)
    moves = [c.move for _ in range(40) for c in sampler.sample([(f"g{i}", board, float("inf")) for i in range(16)])]
    counts, n, q = collections.Counter(moves), len(moves), 1 / len(legal)
    assert set(counts) == set(legal)
    assert all(abs(counts[m] / n - q) < 4 * np.sqrt(q * (1 - q) / n) + 2 / n for m in legal), counts
    want = 1 - len(legal) / (VOCAB_SIZE - NUM_SPECIAL)
    assert abs(sum(sampler.unmasked_illegal.values()) / n - want) < 4 * np.sqrt(want * (1 - want) / n) + 1e-3


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


def test_a_reused_game_id_is_ranked_on_its_own_board(model):
    """One id for many positions (a puzzle loop, a UCI client, an analysis GUI's lines): the
    cache's moves agree at both ends with the previous position's, but its board does not."""
    lines = [chess.Board(fen) for fen in ("8/8/8/4k3/8/8/8/R3K3 b - - 0 1", "8/8/8/8/4k3/8/8/R3K3 b - - 0 1",
                                          "4k3/8/8/8/8/8/8/R3K2R b K - 0 1")]  # same (no) moves
    for middle in ("e7e5", "b8c6", "d7d5", "g8f6"):  # same first and last move, another in the middle
        board = chess.Board()
        for uci in ("e2e4", middle, "g1f3"):
            board.push_uci(uci)
        lines.append(board)
    sampler = Sampler(model, max_games=16, seed=4)
    for _ in range(3):
        for board in lines:
            (choice,) = sampler.sample([("puzzle", board, 0.0)])
            assert choice.move in board.legal_moves, board.fen()
            (fresh,) = Sampler(model, max_games=16, seed=4).sample([("new", board, 0.0)])
            assert choice.move == fresh.move  # the arg-max of its own game, as a fresh cache gives


def test_a_transposition_under_a_reused_id_is_ranked_on_its_own_moves(model):
    """Another move order to the same position, with the same first and last moves: the board
    and both ends agree with the cache, only the middle differs. Every move of the cache's
    window is compared, so the model reads this game's moves, not the other order's."""
    lines = []
    for moves in ("e2e4 e7e5 g1f3 b8c6 f1c4", "e2e4 b8c6 g1f3 e7e5 f1c4", "e2e4 e7e5 g1f3 b8c6 f1c4 g8f6",
                  "e2e4 b8c6 g1f3 e7e5 f1c4 g8f6"):
        board = chess.Board()
        for uci in moves.split():
            board.push_uci(uci)
        lines.append(board)
    assert lines[0].board_fen() == lines[1].board_fen()  # a transposition
    want = position_logits(model, lines)
    assert np.abs(want[0] - want[1]).max() > 1e-3  # the move order matters to the model, if little
    sampler = Sampler(model, max_games=16, seed=4)
    for i in (0, 1, 0, 3, 2, 1):
        sampler.sample([("g", lines[i], 0.0)])
        np.testing.assert_allclose(sampler.last_logits[0], want[i], atol=5e-5, rtol=0, err_msg=str(i))


def test_an_id_reused_after_a_game_longer_than_the_cache(model):
    """A game past the cache's length sits on a window starting after move 0; the same id then
    given a short game (or a takeback) must refill from the game as it is, not the old window
    (its offsets broke the whole batch: illegal moves for other games, or a crash)."""
    rng = np.random.default_rng(7)
    long = random_board(rng, 0)
    sampler = Sampler(model, max_games=16, seed=5)
    while len(long.move_stack) < 90 and not long.is_game_over():  # max_len 64: a window
        long.push(sampler.sample([("g", long, 1.0)])[0].move)
    others = [random_board(rng, n) for n in (3, 11, 20)]
    for short in (random_board(rng, 4), random_board(rng, 30)):
        reqs = [("g", short, 0.0)] + [(f"o{i}", b, 0.0) for i, b in enumerate(others)]
        got = sampler.sample(reqs)
        want = Sampler(model, max_games=16, seed=5).sample(reqs)
        assert [c.move for c in got] == [c.move for c in want]
        assert all(c.move in b.legal_moves for c, (_, b, _) in zip(got, reqs))


def test_last_logits_cover_every_round_in_request_order(model):
    """More games than slots, and one id asked twice (about another board): several rounds, and
    last_logits holds every request's logits, in request order."""
    rng = np.random.default_rng(10)
    boards = [b for b in (random_board(rng, int(n)) for n in rng.integers(1, 30, 24)) if not b.is_game_over()][:20]
    reqs = [(f"g{i}", b, 1.0) for i, b in enumerate(boards)] + [("g0", boards[5], 1.0)]
    sampler = Sampler(model, max_games=16, seed=8)
    sampler.sample(reqs)
    assert sampler.calls == 2
    want = position_logits(model, [b for _, b, _ in reqs])
    np.testing.assert_allclose(sampler.last_logits, want, atol=2e-4, rtol=1e-4)


def test_hot_draws_follow_the_legal_softmax_and_free_draws_the_full_one(model):
    """At tau > 0 the played move is a draw from the softmax over the legal moves, and the free
    draw is illegal with the softmax's mass on illegal tokens (most of it on tokens that are not
    even the own pieces' moves: their best score enters as logsumexp + one Gumbel)."""
    from transcendence_jax.data.tokenizer import NUM_SPECIAL, VOCAB_SIZE

    board = random_board(np.random.default_rng(3), 10)
    logits = position_logits(model, [board])[0].astype(np.float64)
    legal = list(board.legal_moves)
    for temperature in (1.0, 0.05):
        p = np.exp((logits - logits.max()) / temperature)[NUM_SPECIAL:VOCAB_SIZE]
        p_legal = np.array([p[move_to_token(m) - NUM_SPECIAL] for m in legal]) / p.sum()
        sampler = Sampler(model, max_games=16, seed=int(100 * temperature))
        moves = [c.move for _ in range(40) for c in sampler.sample([(f"g{i}", board, temperature) for i in range(16)])]
        n = len(moves)
        free_illegal = sum(sampler.unmasked_illegal.values()) / n
        want = 1 - p_legal.sum()
        assert abs(free_illegal - want) < 4 * np.sqrt(want * (1 - want) / n) + 1e-3, (temperature, free_illegal, want)
        counts = collections.Counter(moves)
        for m, q in zip(legal, p_legal / p_legal.sum()):
            assert abs(counts[m] / n - q) < 4 * np.sqrt(q * (1 - q) / n) + 2 / n, (temperature, m, counts[m] / n, q)


def test_no_legal_candidate_falls_back_to_all_legal_moves(model):
    """With one candidate, positions in check often have none legal: the python-chess fallback
    still plays the masked arg-max, and legal moves at tau = 1."""
    rng = np.random.default_rng(8)
    boards = []
    while len(boards) < 8:
        b = random_board(rng, int(rng.integers(10, 80)))
        if b.is_check() and not b.is_game_over():
            boards.append(b)
    sampler = Sampler(model, max_games=16, top_k=1)
    choices = sampler.sample([(f"c{i}", b, 1e-4) for i, b in enumerate(boards)])
    for c, b, w in zip(choices, boards, position_logits(model, boards)):
        assert c.move == masked_argmax(w, b) and c.illegal == 0
    assert sampler.fallbacks > 0
    fallbacks = sampler.fallbacks
    choices = sampler.sample([(f"h{i}", b, 1.0) for i, b in enumerate(boards)])
    assert all(c.move in b.legal_moves for c, b in zip(choices, boards)) and sampler.fallbacks > fallbacks
    # The device ranks up to 16 pieces a side: a position with more is refused in one line.
    crowded = chess.Board("QQQQQQQQ/QQQQQQQQ/Q7/8/8/8/8/K6k w - - 0 1")
    with pytest.raises(ValueError, match="more than 16 pieces"):
        sampler.sample([("crowded", crowded, 1.0)])


def test_top_k_out_of_range_is_refused_and_no_requests_is_no_call(model):
    """The device ranks top_k of each position's 432 candidates (16 pieces x 27 tokens)."""
    for top_k in (0, 433):
        with pytest.raises(ValueError, match=r"top_k=-?\d+: expected 1\.\.432"):
            Sampler(model, max_games=16, top_k=top_k)
    sampler = Sampler(model, max_games=16, top_k=432)
    assert sampler.sample([]) == [] and sampler.calls == 0
    sampler.sample([("g", chess.Board(), 1.0)])
    assert sampler.last_logits.shape == (1, 2048)
    assert sampler.sample([]) == [] and sampler.last_logits is None  # not the call before's


@pytest.mark.parametrize("legal", ["mask", "paper"])
def test_a_finished_game_gets_no_move_and_counts_nothing(model, legal):
    """A caller may leave it to the sampler to find a game's end (benchmarks/sampler.py does): a
    board with no legal move gets MoveChoice(None, 0), with no unmasked-illegal move, illegal try
    or sampled move booked for it (all were booked before), and the other games are unaffected."""
    board = random_board(np.random.default_rng(9), 10)
    sampler = Sampler(model, max_games=16, legal=legal, seed=7)
    assert sampler.sample([("a", MATE, 1.0), ("b", STALEMATE, 0.0)]) == [MoveChoice(None, 0)] * 2
    assert not sampler.sampled and not sampler.unmasked_illegal and not sampler.illegal and not sampler.fallbacks
    for finished in (MATE, STALEMATE):
        live, over = sampler.sample([("live", board, 0.0), ("over", finished, 1.0)])
        assert over == MoveChoice(None, 0)
        assert live.move in board.legal_moves or legal == "paper"
    assert "over" not in sampler.sampled and "over" not in sampler.unmasked_illegal and "over" not in sampler.illegal
    assert sampler.sampled == {"live": 2}


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
    from transcendence_jax.sampling.sampler import Sampler
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
        assert one.unmasked_illegal == many.unmasked_illegal
        np.testing.assert_allclose(np.asarray(one.last_logits), np.asarray(many.last_logits), atol=1e-4)
        assert all(len(chunk.sharding.device_set) == 8 for chunk in many.cache.k[0])
        for board, c in zip(boards, a):
            board.push(c.move)
    print("sharded ok")
""")


def test_sharded_over_the_data_axis_matches_one_device():
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8", JAX_PLATFORMS="cpu")
    out = subprocess.run([sys.executable, "-c", SHARDED], cwd=REPO, env=env, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0 and "sharded ok" in out.stdout, out.stderr[-3000:]


def test_unmasked_illegal_is_the_free_arg_max_being_illegal(model):
    """At tau -> 0 the unmasked draw is the arg-max over every move token: the sampler books it
    illegal exactly when python-chess says so (it checks only its legal candidates)."""
    from transcendence_jax.data.tokenizer import NUM_SPECIAL, VOCAB_SIZE

    rng = np.random.default_rng(5)
    boards = [b for b in (random_board(rng, int(n)) for n in rng.integers(0, 40, 40)) if not b.is_game_over()]
    sampler = Sampler(model, max_games=len(boards), seed=0)
    sampler.sample([(f"g{i}", b, 1e-4) for i, b in enumerate(boards)])
    logits = sampler.last_logits[:, NUM_SPECIAL:VOCAB_SIZE]
    free = [MOVES[NUM_SPECIAL + int(t)] for t in logits.argmax(-1)]
    want = [int(not b.is_legal(m)) for b, m in zip(boards, free)]
    assert [sampler.unmasked_illegal[f"g{i}"] for i in range(len(boards))] == want
    assert sum(want) > 0  # a random model: its free arg-max is mostly illegal, so this compares something


def test_the_samplers_threefry_is_jaxs_and_its_gumbel_noise_is_standard():
    from jax.extend.random import threefry_2x32

    key = jnp.array([123, 456], jnp.uint32)
    counter = jnp.arange(1000, dtype=jnp.uint32)
    a, b = decode.threefry_2x32(key[0], key[1], counter, counter + np.uint32(1000))
    np.testing.assert_array_equal(np.concatenate([a, b]), threefry_2x32(key, jnp.arange(2000, dtype=jnp.uint32)))
    noise = np.asarray(jax.jit(decode.gumbel, static_argnums=1)(jax.random.key(3), (3, 100_001))).ravel()
    assert np.isfinite(noise).all()
    # Gumbel(0, 1): mean Euler's gamma, variance pi^2 / 6, P(G <= 0) = exp(-1).
    assert abs(noise.mean() - 0.5772) < 0.01 and abs(noise.var() - np.pi ** 2 / 6) < 0.03
    assert abs((noise <= 0).mean() - np.exp(-1)) < 0.005
