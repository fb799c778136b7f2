"""Specialists (experts/specialists.py): the base move inside their region, a uniform guess
outside it; the regions' coverage by K and overlap; the reference players and the experiment
built on them."""

import collections

import chess
import numpy as np
import pytest
from ml_collections import ConfigDict

from transcendence_jax import experiment
from transcendence_jax.errors import UserError
from transcendence_jax.experts import population as E
from transcendence_jax.experts import specialists as S
from transcendence_jax.experts.reference import MixturePolicy, VotePolicy, mixture_distribution, vote_distribution

QUEEN_HANGS = "q3k3/8/8/8/8/8/8/R3K3 w - - 0 1"  # Rxa8 (the only capture) wins the queen
RXA8 = chess.Move.from_uci("a1a8")
A8 = 1 << chess.A8


def _frequencies(policy, board, n, seed):
    rng = np.random.default_rng(seed)
    counts = collections.Counter(policy(board.copy(stack=False), rng) for _ in range(n))
    return {m: c / n for m, c in counts.items()}


def _close(sampled, exact, n):
    """Every move's frequency within 5 standard errors of its exact probability, and no other move."""
    assert set(sampled) <= set(exact), set(sampled) - set(exact)
    for move, p in exact.items():
        assert abs(sampled.get(move, 0.0) - p) <= 5 * np.sqrt(p * (1 - p) / n) + 1e-9, (move, sampled.get(move), p)


def _capture_positions(n=10):
    """Positions of specialist games where the base has a best capture (where specialists differ)."""
    experts, out = S.population(3, 0), []
    for g in range(20):
        board = chess.Board()
        for move in E.play_game(experts[g % 3], experts[(g + 1) % 3], np.random.default_rng([5, g])).moves:
            if len(out) < n and len(out) < g + 1 and any(board.generate_legal_captures()) and board.ply() > 10:
                out.append(board.copy(stack=False))
            board.push(move)
    assert len(out) == n
    return out


def test_specialist_plays_the_base_in_its_region_and_uniformly_elsewhere():
    board = chess.Board(QUEEN_HANGS)
    inside, outside = S.Specialist(0, blind=chess.BB_ALL & ~A8), S.Specialist(1, blind=A8)
    assert inside.region == A8 and _frequencies(inside, board, 200, 0) == {RXA8: 1.0}
    legal = list(board.legal_moves)
    _close(_frequencies(outside, board, 3000, 1), {m: 1 / len(legal) for m in legal}, 3000)
    assert inside.decide(board, np.random.default_rng(0)) == (RXA8, False)
    assert outside.error_probability(board) == pytest.approx(1 - 1 / len(legal))
    # On real positions: the base's moves where one lands on the region, else every legal move.
    rng = np.random.default_rng(2)
    for board in _capture_positions():
        best = set(E.BASE.choices(board)[0])
        for expert in S.population(5, 1):
            moves, good = expert.choices(board)
            covered = any(expert.region >> m.to_square & 1 for m in best)
            assert set(moves) == (best if covered else set(board.legal_moves)), board.fen()
            assert good == [m in best for m in moves]
            move, flag = expert.decide(board, rng)
            assert move in moves and flag == (move not in best)


def test_regions_cover_the_board_by_experts_and_overlap():
    for k, overlap, uncovered in [(3, 0.0, 16), (5, 0.0, 0), (9, 0.0, 0), (5, 0.5, 16), (9, 0.5, 0), (5, 1.0, 48)]:
        experts = S.population(k, 0, overlap=overlap)
        assert [bin(e.region).count("1") for e in experts] == [16] * k
        assert S.coverage(experts).count(0) == uncovered, (k, overlap)
    assert len({e.region for e in S.population(5, 0, overlap=1.0)}) == 1
    assert S.population(5, 0) != S.population(5, 1)  # the seed deals other regions
    with pytest.raises(UserError, match="region_fraction"):
        S.population(5, 0, region_fraction=0.0)


def test_vote_finds_the_covered_move_and_guesses_where_nobody_is_competent():
    """Where one specialist knows the move and the others guess uniformly, the plurality vote plays
    the base's move; where no specialist covers it, the vote is a uniform guess. The mixture is
    the experts' average, sampled through their own `decide`."""
    experts = S.population(3, 0)  # 3 x 16 squares: 16 squares nobody covers
    seen = collections.Counter()
    for i, board in enumerate(_capture_positions()):
        best = set(E.BASE.choices(board)[0])
        covered = any(S.coverage(experts)[m.to_square] for m in best)
        vote = vote_distribution(experts, board)
        assert set(vote) == (best if covered else set(board.legal_moves)), board.fen()
        _close(_frequencies(VotePolicy(experts), board, 600, i), vote, 600)
        _close(_frequencies(MixturePolicy(experts), board, 2000, i), mixture_distribution(experts, board), 2000)
        seen[covered] += 1
    assert seen[True] and seen[False]  # both cases met


def test_experiment_makes_specialists_by_config(tmp_path):
    cfg = ConfigDict(dict(populations={"spread": 0.0, "same": 1.0}, experts=3, seed=0, base="mvv-lva",
                          blind_fraction=None, expert_kind="specialist", region_fraction=0.25, games=6,
                          workers=1))
    spread = experiment.make_population(cfg, "spread")
    assert all(isinstance(e, S.Specialist) for e in spread) and S.coverage(spread).count(0) == 16
    assert len({e.region for e in experiment.make_population(cfg, "same")}) == 1
    stats = experiment.generate(cfg, "spread", str(tmp_path / "data"))
    assert stats["sources"] == {"experts-specialists": 6} and stats["experts"]["kind"] == "specialists"
    assert 0 < stats["generation"]["blind_rate"] < 1
    cfg.expert_kind = "oracle"
    with pytest.raises(UserError, match="expert_kind"):
        experiment.make_population(cfg, "spread")


def test_preset_sets_the_crowds_on_the_grid():
    from transcendence_jax.sweep.grid import load_sweep, points

    for size, n in (("reduced", 4), ("laptop", 12), ("gpu", 36)):
        every = points(load_sweep("specialists", size))
        assert len(every) == n
        for p in every:
            kind, k = p.labels["crowd"]
            assert (p.cfg.expert_kind, p.cfg.experts, p.cfg.populations.crowd) == (kind, k, p.labels["overlap"])
    kinds = {p.labels["crowd"] for p in points(load_sweep("specialists", "gpu"))}
    assert kinds == {(kind, k) for kind in ("specialist", "blind") for k in (3, 5, 9)}
    kinds = {p.labels["crowd"] for p in points(load_sweep("specialists", "laptop"))}  # diversity has the
    assert kinds == {("specialist", k) for k in (3, 5, 9)} | {("blind", 5)}             # generalists' K


@pytest.mark.slow
def test_a_reduced_point_plays_specialists_end_to_end(tmp_path, capsys):
    """`transcendence sweep specialists --size reduced --point 0`: specialists' games, training,
    tournament (vote and mixture of specialists) and the margins, in the point's folder."""
    import json

    from transcendence_jax import cli

    out = tmp_path / "sweep"
    assert cli.main(["sweep", "specialists", "--size", "reduced", "--out", str(out), "--point", "0",
                     "--config.base.workers=1"]) == 0
    (folder,) = [p for p in out.iterdir() if p.is_dir()]
    point = json.loads((folder / "point.json").read_text())
    assert point["setting"]["crowd"] == ["specialist", 3]
    (row,) = point["rows"]
    assert {"vote_minus_best_expert", "model_minus_best_expert"} <= set(row["measures"])
    stats = json.loads((folder / "crowd" / "data" / "stats.json").read_text())
    assert stats["sources"] == {"experts-specialists": 300} and stats["experts"]["kind"] == "specialists"
    players = {json.loads(line)["white"] for line in (folder / "crowd" / "tournament" / "games.jsonl").open()}
    assert {"expert0", "expert1", "expert2", "vote", "mixture", "model@0.001"} <= players
