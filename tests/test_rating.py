"""Ratings: Glickman's worked example, recovery of known Elo gaps, order and draw invariances."""

import json
import random

import numpy as np
import pytest

from transcendence_jax import rating as R
from transcendence_jax import rating_figure
from transcendence_jax.errors import UserError


def simulate(true_elo: dict, games_per_pair: int, seed: int, draw_band: float = 0.2):
    """A round robin with colours alternating; outcomes drawn from the Bradley-Terry model,
    draws taking `draw_band` of probability without changing the expected score."""
    rng = np.random.default_rng(seed)
    names, games = list(true_elo), []
    for a in range(len(names)):
        for b in range(a + 1, len(names)):
            p = 1 / (1 + 10 ** (-(true_elo[names[a]] - true_elo[names[b]]) / 400))
            band = min(draw_band, 2 * p, 2 * (1 - p))
            for k in range(games_per_pair):
                u = rng.random()
                s = 1.0 if u < p - band / 2 else 0.5 if u < p + band / 2 else 0.0
                games.append((names[a], names[b], s) if k % 2 == 0 else (names[b], names[a], 1 - s))
    return games


def test_glickman_worked_example():
    # Glickman, "Example of the Glicko-2 system": 1500/200/0.06 vs 1400/30, 1550/100, 1700/300.
    # He rounds intermediates and prints 1464.06; the exact computation gives 1464.0507.
    p = R.glicko2_update(R.Glicko2Rating(1500, 200, 0.06), [(1400, 30), (1550, 100), (1700, 300)], [1, 0, 0], tau=0.5)
    assert p.rating == pytest.approx(1464.06, abs=0.02)
    assert p.rd == pytest.approx(151.52, abs=0.01)
    assert p.volatility == pytest.approx(0.05999, abs=1e-5)


def test_glicko2_paper_anchors_fixed_and_sequential():
    anchors = {f"sf{lvl}": r for lvl, r in R.PAPER_STOCKFISH_ELO.items()}
    games = [("model", "sf1", 1.0), ("sf3", "model", 0.5), ("model", "sf5", 0.0), ("sf1", "model", 0.0)]
    out = R.glicko2_paper(games, anchors)
    assert {n: (out[n].rating, out[n].rd) for n in anchors} == {n: (r, 0.0) for n, r in anchors.items()}
    # Same as updating by hand, one rating period per game, from 1500 / 500 / 0.06.
    p = R.Glicko2Rating(1500, 500, 0.06)
    for opp, s in [("sf1", 1.0), ("sf3", 0.5), ("sf5", 0.0), ("sf1", 1.0)]:
        p = R.glicko2_update(p, [(anchors[opp], 0.0)], [s])
    assert out["model"] == p and p.games == 4
    assert 1500 < p.rating < 2142 and p.rd < 500
    # ... and unlike the MLE it depends on the order of the games.
    assert R.glicko2_paper(games[::-1], anchors)["model"].rating != pytest.approx(p.rating, abs=0.5)


def test_mle_recovers_known_gaps_and_ci_coverage():
    true = {"a": 0.0, "b": 100.0, "c": 300.0}
    covered, diffs_covered, n = 0, 0, 0
    for seed in range(12):
        r = R.elo_mle(simulate(true, 200, seed), anchor={"a": 0.0}, bootstrap=300, seed=seed)
        assert r.elo["a"] == 0.0 and r.ci["a"] == (0.0, 0.0)
        for p in ("b", "c"):
            lo, hi = r.ci[p]
            assert lo < r.elo[p] < hi and hi - lo < 150
            covered += lo <= true[p] <= hi
            n += 1
        d, lo, hi = r.diff("c", "b")
        assert d == pytest.approx(r.elo["c"] - r.elo["b"])
        diffs_covered += lo <= 200 <= hi
    assert covered / n >= 0.8, f"95% CIs covered the truth {covered}/{n} times"
    assert diffs_covered >= 10


def test_mle_order_invariant():
    games = simulate({"a": 0, "b": 50, "c": 120, "d": -80}, 30, seed=1)
    r1 = R.elo_mle(games, bootstrap=100, seed=3)
    shuffled = games[:]
    random.Random(0).shuffle(shuffled)
    r2 = R.elo_mle(shuffled, bootstrap=100, seed=3)
    for p in r1.players:
        assert r1.elo[p] == pytest.approx(r2.elo[p], abs=1e-9)
        assert r1.ci[p] == pytest.approx(r2.ci[p], abs=1e-9)


def test_draws_count_as_halves():
    base = simulate({"a": 0, "b": 150, "c": 300}, 20, seed=2, draw_band=0.0)
    two_draws = base + [("a", "c", 0.5), ("c", "a", 0.5)] * 5
    win_and_loss = base + [("a", "c", 1.0), ("c", "a", 1.0)] * 5
    r1, r2 = R.elo_mle(two_draws, bootstrap=0), R.elo_mle(win_and_loss, bootstrap=0)
    for p in "abc":
        assert r1.elo[p] == pytest.approx(r2.elo[p], abs=1e-6)
    # A player who only ever draws against one opponent is rated equal to it (up to the ridge
    # prior's pull towards the mean: a fraction of an Elo point after 20 games).
    games = base + [("x", "b", 0.5), ("b", "x", 0.5)] * 10
    r = R.elo_mle(games, bootstrap=0)
    assert r.elo["x"] == pytest.approx(r.elo["b"], abs=0.5)
    r = R.elo_mle(games, bootstrap=0, prior_sd=1e7)
    assert r.elo["x"] == pytest.approx(r.elo["b"], abs=1e-4)


def test_anchor_mean_set_and_perfect_score_stays_finite():
    games = simulate({"e1": 0, "e2": 40, "e3": 80, "m": 200}, 40, seed=4)
    games += [("god", "e1", 1.0)] * 30  # a perfect score: the prior keeps it finite
    r = R.elo_mle(games, anchor=["e1", "e2", "e3"], bootstrap=100)
    assert np.mean([r.elo[e] for e in ("e1", "e2", "e3")]) == pytest.approx(0.0, abs=1e-6)
    assert np.isfinite(r.elo["god"]) and r.elo["god"] > r.elo["e1"] + 400
    assert r.elo["m"] - r.elo["e2"] == pytest.approx(160, abs=80)
    payload = json.loads(r.to_json())
    assert payload["players"]["m"]["games"] == r.games["m"] == 120
    with pytest.raises(UserError, match="anchor player"):
        R.elo_mle(games, anchor={"stockfish-1": 1552})
    with pytest.raises(UserError, match="score_white"):
        R.elo_mle([("a", "b", 2)])


def test_mle_fast_enough_for_a_big_round_robin():
    rng = np.random.default_rng(0)
    names = [f"p{k}" for k in range(20)]
    games = [(names[a], names[(a + 1 + b) % 20], float(s)) for a, b, s in
             zip(rng.integers(0, 20, 10_000), rng.integers(0, 19, 10_000), rng.integers(0, 3, 10_000) / 2)]
    r = R.elo_mle(games, anchor=names[:5], bootstrap=500)
    assert r.samples_BP.shape == (500, 20) and all(lo <= r.elo[p] <= hi for p, (lo, hi) in r.ci.items())


def test_table_and_plot(tmp_path):
    rows = [dict(white="model", black="sf1", score_white=1.0, plies=40, illegal_white=2, illegal_black=0,
                 moves_white=20, moves_black=20),
            dict(white="sf1", black="model", score_white=0.5, plies=30, illegal_white=0, illegal_black=0,
                 moves_white=15, moves_black=15)]
    path = tmp_path / "games.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    games = R.read_games(str(path))
    table = R.format_table(R.elo_mle(games, anchor={"sf1": 1552}, bootstrap=50), games)
    lines = table.splitlines()
    assert lines[0].split() == ["player", "games", "W/D/L", "score", "Elo", "95%", "CI", "illegal"]
    model_row = next(line for line in lines if line.startswith("model"))
    assert "1/1/0" in model_row and "75.0%" in model_row and "5.41%" in model_row  # 2 / (2 + 35)
    assert "Glicko-2" in R.format_table(R.glicko2_paper(games, {"sf1": 1552}), games)
    with pytest.raises(UserError, match="not found"):
        R.read_games(str(tmp_path / "missing.jsonl"))

    out = rating_figure.plot_rating_vs_temperature(
        {"ChessFormer": [(0.001, 1420, 1380, 1460), (1.0, 855, 800, 900), (0.1, 1495, 1450, 1540)]},
        str(tmp_path / "rating.png"), band=(1400, 1450))
    data = open(out, "rb").read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
