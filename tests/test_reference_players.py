"""The reference players on real positions: `vote` and `mixture` play the experts' exact
distributions, and `model vote k` at k = 1 is the model's own sampler."""

import collections

import chess
import chess.pgn
import numpy as np
import pytest

from transcendence_jax.experts import population as E
from transcendence_jax.experts.reference import (
    MixturePolicy,
    VotePolicy,
    expert_distribution,
    mixture_distribution,
    vote_distribution,
)


@pytest.fixture(scope="module")
def positions(lichess_dir):
    """Positions of real Lichess games where the experts disagree (some expert is blind)."""
    experts = E.population("diverse", 5, 0)
    out = []
    with open(lichess_dir / "lichess_2021-10_head999.pgn") as f:
        while len(out) < 12 and (game := chess.pgn.read_game(f)) is not None:
            board = game.board()
            for move in game.mainline_moves():
                board.push(move)
                if board.is_game_over():
                    break
                if len({tuple(e.choices(board)[0]) for e in experts}) > 1:
                    out.append(board.copy(stack=False))
                    break
    assert len(out) == 12
    return experts, out


def _frequencies(policy, board, n, seed):
    rng = np.random.default_rng(seed)
    counts = collections.Counter(policy(board.copy(stack=False), rng) for _ in range(n))
    return {m: c / n for m, c in counts.items()}


def _close(sampled, exact, n):
    """Every move's frequency within 5 standard errors of its exact probability, and no other move."""
    assert set(sampled) <= set(exact)
    for move, p in exact.items():
        assert abs(sampled.get(move, 0.0) - p) <= 5 * np.sqrt(p * (1 - p) / n) + 1e-9, (move, sampled.get(move), p)


def test_mixture_plays_the_experts_average(positions):
    """Sampled through the experts' own `decide` (the policy their games were played with)."""
    experts, boards = positions
    for i, board in enumerate(boards):
        exact = mixture_distribution(experts, board)
        assert sum(exact.values()) == pytest.approx(1.0)
        _close(_frequencies(MixturePolicy(experts), board, 2000, i), exact, 2000)


def _consistent_experts(experts, boards, moves):
    """The experts that could have played every one of `moves` at `boards`."""
    return [e for e in experts if all(m in expert_distribution(e, b) for b, m in zip(boards, moves))]


def test_game_mixture_plays_one_expert_a_game(positions):
    """game-mixture: every move of a game is one expert's (the positions are where the experts
    disagree, so a random expert each move, as `mixture`, is seldom one expert's), each expert
    plays about a fifth of the games, and a game's expert is fixed by its id (replays agree)."""
    from transcendence_jax.experiment import reference_player
    from transcendence_jax.play.players import GameState

    experts, boards = positions
    game_mixture, mixture = (reference_player(name, experts, seed=3) for name in ("game-mixture", "mixture"))
    players = collections.Counter()
    one_expert = {"game-mixture": 0, "mixture": 0}
    for g in range(100):
        for player in (game_mixture, mixture):
            moves = [c.move for c in player.backend.choose([(player, GameState(f"g{g}", b)) for b in boards])]
            consistent = _consistent_experts(experts, boards, moves)
            one_expert[player.name] += bool(consistent)
            if player is game_mixture:
                assert consistent, g
                assert moves == [c.move for c in player.backend.choose([(player, GameState(f"g{g}", b))
                                                                        for b in boards])]
                players[game_mixture.policy_for(f"g{g}").name] += 1
    assert sorted(players) == [e.name for e in experts] and min(players.values()) >= 8, players
    assert one_expert["mixture"] < 50, one_expert


def test_vote_plays_the_majority_of_the_experts(positions):
    experts, boards = positions
    for i, board in enumerate(boards):
        exact = vote_distribution(experts, board)
        _close(_frequencies(VotePolicy(experts), board, 600, i), exact, 600)
        # Diverse experts: each square is blind for at most two of five, so the majority plays the
        # unflawed base policy's moves wherever the experts disagree.
        base = set(E.base_expert().choices(board)[0])
        assert set(exact) <= base, (board.fen(), set(exact) - base)
        # ... and the vote is the arg-max of the summed expert distributions.
        summed = collections.Counter()
        for expert in experts:
            summed.update(expert_distribution(expert, board))
        assert set(exact) == {m for m, p in summed.items() if p >= max(summed.values()) - 1e-12}


def test_clones_vote_keeps_their_shared_flaw(positions):
    """Clones err together: where they are blind, their vote is their shared error, not the base."""
    clones = E.population("clones", 5, 0)
    _, boards = positions
    flawed = [b for b in boards if clones[0].error_probability(b) > 0]
    for board in flawed:
        assert vote_distribution(clones, board) == expert_distribution(clones[0], board)


def _tiny_model():
    """An untrained one-layer decoder: a model whose distributions the sampler-backed players must follow."""
    from flax import nnx

    from transcendence_jax.config import load_config
    from transcendence_jax.model import Transformer

    cfg = load_config("tiny", ["model.num_layers=1", "model.embed_dim=32", "model.mlp_dim=64", "model.num_heads=2"])
    return Transformer(cfg.model, rngs=nnx.Rngs(3))


def _random_boards() -> list[chess.Board]:
    """Six positions after 0, 3, ..., 15 random plies (seeded)."""
    rng = np.random.default_rng(0)
    boards = []
    for n in range(6):
        board = chess.Board()
        for _ in range(n * 3):
            board.push(list(board.legal_moves)[rng.integers(board.legal_moves.count())])
        boards.append(board)
    return boards


def test_model_vote_of_one_is_the_models_sampler():
    """k = 1 plays exactly the Sampler's move (same seed, same games); k = 25 at tau 1 plays the
    model's arg-max far more often than one draw does."""

    from transcendence_jax.play.players import GameState, ModelPlayer, ModelVoteBackend, ModelVotePlayer
    from transcendence_jax.sampling.policy import move_probabilities
    from transcendence_jax.sampling.sampler import Sampler

    model = _tiny_model()
    boards = _random_boards()
    states = [GameState(f"g{i}", b) for i, b in enumerate(boards)]
    alone = Sampler(model, max_games=8, seed=7)
    one = ModelVoteBackend(Sampler(model, max_games=8, seed=7), seed=1)
    player, voter = ModelPlayer("m", alone, 1.0), ModelVotePlayer("v1", one, 1, 1.0)
    for _ in range(3):
        assert [c.move for c in one.choose([(voter, s) for s in states])] == \
            [c.move for c in alone.choose([(player, s) for s in states])]
    many = ModelVoteBackend(Sampler(model, max_games=8, seed=7), seed=1)
    voter25 = ModelVotePlayer("v25", many, 25, 1.0)
    hits = {1: 0, 25: 0}
    for _round in range(8):
        for k, backend, p in ((1, one, voter), (25, many, voter25)):
            for s, c in zip(states, backend.choose([(p, s) for s in states])):
                probs = move_probabilities(model, s.board, 1.0)
                hits[k] += c.move == max(probs, key=probs.get)
    assert hits[25] > hits[1], hits


def test_stockfish_values_see_what_the_diverse_vote_fixes(positions):
    """The state-level measure's values (Stockfish, fixed depth, WDL expectation) must be able to
    see the flaw: where some diverse expert is blind, the vote (the base's moves) gains expected
    score over the experts' average, and the clones' vote (their shared flaw) does not gain more."""
    from transcendence_jax.analysis import state_gains, stockfish_move_values

    experts, boards = positions
    clones = E.population("clones", 5, 0)
    values = stockfish_move_values(boards, depth=6)
    diverse = state_gains([vote_distribution(experts, b) for b in boards],
                          [mixture_distribution(experts, b) for b in boards], values)
    assert diverse.mean() > 0, diverse
    shared = state_gains([vote_distribution(clones, b) for b in boards],
                         [mixture_distribution(clones, b) for b in boards], values)
    assert shared.mean() < diverse.mean(), (shared, diverse)


def test_quiet_random_plays_the_model_where_a_capture_is_legal_and_random_moves_elsewhere():
    """Where a capture is legal: exactly the model's sampler (same seed, same games); where none
    is: a legal move that varies with the game, not the model's fixed arg-max."""

    from transcendence_jax.play.players import GameState, ModelPlayer, QuietRandomBackend, QuietRandomPlayer
    from transcendence_jax.sampling.sampler import Sampler

    model = _tiny_model()
    capture = chess.Board()
    for uci in ("e2e4", "d7d5"):  # exd5 is legal
        capture.push_uci(uci)
    quiet = chess.Board()  # the start: no capture
    states = [GameState(f"c{i}", capture.copy()) for i in range(4)] + [GameState(f"q{i}", quiet.copy())
                                                                       for i in range(12)]
    alone = Sampler(model, max_games=16, seed=7)
    backend = QuietRandomBackend(Sampler(model, max_games=16, seed=7), seed=1)
    model_player, player = ModelPlayer("m", alone, 0.001), QuietRandomPlayer("q", backend, 0.001)
    model_moves = [c.move for c in alone.choose([(model_player, s) for s in states])]
    moves = [c.move for c in backend.choose([(player, s) for s in states])]
    assert moves[:4] == model_moves[:4]
    assert len(set(model_moves[4:])) == 1  # the model's arg-max: one move in every game
    assert all(m in quiet.legal_moves for m in moves[4:]) and len(set(moves[4:])) >= 5


def test_a_fixed_tie_break_plays_one_arg_max_of_the_vote(positions):
    """The vote's fixed tie-breaks play one move of the vote's arg-max set, the same whatever the
    random stream; "position" and "square" choose differently somewhere; a bad name is refused."""
    experts, boards = positions
    boards = boards + [chess.Board()]  # the start: every legal move tied
    chosen = {}
    for tie_break in ("position", "square"):
        vote = VotePolicy(experts, tie_break)
        chosen[tie_break] = [vote(b, np.random.default_rng(0)) for b in boards]
        for board, move in zip(boards, chosen[tie_break]):
            assert move in vote_distribution(experts, board)
            assert all(vote(board, np.random.default_rng(seed)) == move for seed in range(1, 4))
    assert chosen["position"] != chosen["square"]
    with pytest.raises(ValueError, match="tie_break 'first'"):
        VotePolicy(experts, "first")


def test_support_player_samples_the_model_renormalized_on_the_support():
    """Every move inside the support, at the frequencies of the model's distribution renormalized
    there; a support holding every legal move is the model's own sampler (same seed, same moves)."""
    import collections

    from transcendence_jax.play.players import GameState, ModelPlayer, SupportBackend, SupportPlayer
    from transcendence_jax.sampling.policy import move_probabilities
    from transcendence_jax.sampling.sampler import Sampler

    model = _tiny_model()
    start = chess.Board()
    probs = move_probabilities(model, start, 1.0)
    ranked = sorted(probs, key=probs.get)
    allowed = {ranked[-1], ranked[0], ranked[1]}  # the likeliest move and the two least likely: far from uniform
    backend = SupportBackend(Sampler(model, max_games=64, seed=7), lambda board: allowed, seed=1)
    player = SupportPlayer("s", backend, 1.0)
    counts = collections.Counter()
    for r in range(10):
        states = [GameState(f"g{r}-{i}", start.copy()) for i in range(60)]
        counts.update(c.move for c in backend.choose([(player, s) for s in states]))
        for s in states:
            backend.release(s.game_id)
    assert set(counts) <= allowed and sum(counts.values()) == 600
    mass = sum(probs[m] for m in allowed)
    assert mass < 0.5  # most first draws fall outside and are redrawn from the restriction
    for move in allowed:
        assert abs(counts[move] / 600 - probs[move] / mass) < 0.07, (move, counts, probs[move] / mass)

    boards = _random_boards()
    states = [GameState(f"h{i}", b) for i, b in enumerate(boards)]
    alone = Sampler(model, max_games=8, seed=7)
    everything = SupportBackend(Sampler(model, max_games=8, seed=7), lambda board: set(board.legal_moves), seed=1)
    model_player, support_player = ModelPlayer("m", alone, 1.0), SupportPlayer("s", everything, 1.0)
    assert [c.move for c in everything.choose([(support_player, s) for s in states])] == \
        [c.move for c in alone.choose([(model_player, s) for s in states])]
