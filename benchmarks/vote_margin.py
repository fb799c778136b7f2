"""The experts' vote against the experts themselves, per base policy, without a model: minutes.

The paper's Proposition 2: a model can transcend exactly when the arg-max of the experts' mixture
(the `vote`) beats the best expert. This measures that condition directly for a population
before anything is trained: each expert and the vote play every expert of the population
(`--games` a pair, colours alternating, the experts' own games: start position, 100 plies,
adjudicated by material), and the vote's Elo minus the best expert's and minus the experts' mean
is printed with a 95% bootstrap CI over the games. With clones it says whether the control can
hold: where a clone's own mode beats the clone, Proposition 2 allows their model to transcend.
`--tie-breaks` adds votes that break exact ties by a fixed rule instead of at random (as a trained
model's arg-max is fixed; `reference.VotePolicy`): where the experts' distributions are flat, which
arg-max is played is a choice the theory leaves open.

  .venv/bin/python benchmarks/vote_margin.py --bases mvv-lva mvv-lva-softmax-0.4 mvv-lva-softmax \\
      mvv-lva-softmax-3.2 mvv-lva-argmax --games 100
  .venv/bin/python benchmarks/vote_margin.py --bases mvv-lva --tie-breaks random position square
"""

import argparse
import multiprocessing

import numpy as np
from machine import report_load  # benchmarks/machine.py

from transcendence_jax.experts.population import play_game, population
from transcendence_jax.experts.reference import TIE_BREAKS, VotePolicy


class _Decides:
    """An arena policy as a game player of `population.play_game`: decide -> (move, not blind)."""

    def __init__(self, policy):
        self.policy = policy

    def decide(self, board, rng):
        return self.policy(board, rng), False


def scores(job) -> tuple[str, str, np.ndarray]:
    """(base, kind, points [candidate, game]): candidates are the experts, then a vote per tie-break."""
    base, kind, k, blind_fraction, seed, games, tie_breaks = job
    experts = population(kind, k, seed, base=base, blind_fraction=blind_fraction)
    candidates = list(experts) + [_Decides(VotePolicy(experts, t, seed)) for t in tie_breaks]
    points = np.zeros((len(candidates), k * games))
    for c, player in enumerate(candidates):
        for o, opponent in enumerate(experts):
            for g in range(games):
                white, black = (player, opponent) if g % 2 == 0 else (opponent, player)
                result = play_game(white, black, np.random.default_rng([seed, c, o, g])).result
                won = {"1-0": 1.0, "0-1": 0.0}.get(result, 0.5)
                points[c, o * games + g] = won if g % 2 == 0 else 1.0 - won
    return base, kind, points


def elo(score):
    score = np.clip(score, 1e-3, 1 - 1e-3)
    return 400 * np.log10(score / (1 - score))


def margins(points: np.ndarray, rng: np.random.Generator, votes: int = 1, draws: int = 2000) -> dict:
    """The last `votes` candidates' Elo minus the best expert's and minus the experts' mean (Elo
    from each one's score against the experts), with 95% CIs from resampling every candidate's
    games: {"best": [(value, low, high) per vote], "mean": [...], "scores": ...}."""
    def both(p):
        e = elo(p.mean(1))
        experts = e[:-votes]
        return np.concatenate([e[-votes:] - experts.max(), e[-votes:] - experts.mean()])

    n = points.shape[1]
    boot = np.array([both(points[:, rng.integers(n, size=n)]) for _ in range(draws)])
    lo, hi = np.percentile(boot, [2.5, 97.5], axis=0)
    value = both(points)
    cells = [(value[i], lo[i], hi[i]) for i in range(2 * votes)]
    return {"best": cells[:votes], "mean": cells[votes:], "scores": points.mean(1)}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bases", nargs="+", default=["mvv-lva", "mvv-lva-softmax"])
    ap.add_argument("--kinds", nargs="+", default=["diverse", "clones"])
    ap.add_argument("--experts", type=int, default=5)
    ap.add_argument("--blind-fraction", type=float, default=0.375, help="the demo's (default 0.375)")
    ap.add_argument("--seed", type=int, default=0, help="the population's deal and every game")
    ap.add_argument("--games", type=int, default=100, help="games of each candidate against each expert")
    ap.add_argument("--tie-breaks", nargs="+", default=["random"], choices=TIE_BREAKS,
                    help="the votes to play, by how each breaks exact ties (default: random, the theory's)")
    ap.add_argument("--workers", type=int, default=multiprocessing.cpu_count())
    a = ap.parse_args()
    report_load()
    jobs = [(b, k, a.experts, a.blind_fraction, a.seed, a.games, a.tie_breaks) for b in a.bases for k in a.kinds]
    rng = np.random.default_rng(a.seed)
    print(f"{'base':22s} {'population':10s} {'vote (ties)':12s} {'vote - best expert':>22s} "
          f"{'vote - experts mean':>22s}  scores (the experts, the votes)")
    with multiprocessing.get_context("spawn").Pool(a.workers) as pool:
        for base, kind, points in pool.imap(scores, jobs):
            m = margins(points, rng, len(a.tie_breaks))
            cell = lambda v: f"{v[0]:+5.0f} [{v[1]:+4.0f}, {v[2]:+4.0f}]"  # noqa: E731
            for i, tie_break in enumerate(a.tie_breaks):
                print(f"{base:22s} {kind:10s} {tie_break:12s} {cell(m['best'][i]):>22s} {cell(m['mean'][i]):>22s}  "
                      + " ".join(f"{s:.3f}" for s in m["scores"]), flush=True)


if __name__ == "__main__":
    main()
