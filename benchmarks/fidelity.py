"""How faithfully trained models imitate the demo's experts, as distributions, on fresh games.

For every workdir (a `transcendence train` or demo population's train/ folder): on positions of
`--games` fresh games of the population (every 4th ply from ply 1, a seed the training data did not
use), the model's tau-1 distribution against the experts' exact mixture: KL(mixture || model) in
nats (0 for a perfect imitator; 95% CI over positions), cross-entropy of the moves actually played
(the mixture's own beside it), the mass the model's arg-max puts in the vote's arg-max set, and the
mass on captures where one is on (the mixture's beside it). The model's population must be the
demo's (`--population`, `--seed`: its experts' deal).

  python benchmarks/fidelity.py runs/demo/diverse/train /tmp/tied/train --population diverse
"""

import argparse
import math

import chess
import numpy as np
from machine import report_load  # benchmarks/machine.py

from transcendence_jax import analysis
from transcendence_jax.configs import demo
from transcendence_jax.experiment import make_population
from transcendence_jax.experts.population import play_game
from transcendence_jax.experts.reference import mixture_distribution, vote_distribution
from transcendence_jax.training.checkpoint import load_model


def positions(experts, games: int, seed: int):
    """(board, move played) every 4th ply from ply 1 of `games` games, all pairs in turn."""
    rng, out = np.random.default_rng(seed), []
    k = len(experts)
    for g in range(games):
        white, black = experts[g % k], experts[(g + 1 + g // k) % k]
        board = chess.Board()
        for t, move in enumerate(play_game(white, black, rng).moves):
            if t % 4 == 1:
                out.append((board.copy(), move))
            board.push(move)
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("workdirs", nargs="+")
    parser.add_argument("--population", default="diverse")
    parser.add_argument("--seed", type=int, default=0, help="the demo's seed: which experts' deal (default: 0)")
    parser.add_argument("--games", type=int, default=30, help="fresh games to take positions from (default: 30)")
    args = parser.parse_args()
    report_load()
    cfg = demo.get_config()
    cfg.seed = args.seed
    experts = make_population(cfg, args.population)
    pairs = positions(experts, args.games, seed=12345 + args.seed)
    boards = [b for b, _ in pairs]
    mixture = [mixture_distribution(experts, b) for b in boards]
    vote = [set(vote_distribution(experts, b)) for b in boards]
    captures = [[m for m in b.legal_moves if b.is_capture(m)] for b in boards]
    on = [s for s, c in enumerate(captures) if c]
    ce_mixture = -np.mean([math.log(mix[m]) for mix, (_, m) in zip(mixture, pairs)])
    print(f"{len(boards)} positions of {args.games} fresh {args.population} games (seed {args.seed}), "
          f"{len(on)} with a capture on; the mixture: cross-entropy {ce_mixture:.3f}, "
          f"capture mass {np.mean([analysis.mass_on(mixture[s], captures[s]) for s in on]):.3f}")
    rng = np.random.default_rng(0)
    for workdir in args.workdirs:
        model, config, step = load_model(workdir)
        pi = [p[1.0] for p in analysis.model_policies(model, boards, [1.0])]
        kl_S = np.array([analysis.kl_divergence(q, p) for q, p in zip(mixture, pi)])
        lo, hi = np.percentile(kl_S[rng.integers(0, len(kl_S), (1000, len(kl_S)))].mean(1), [2.5, 97.5])
        ce = -np.mean([math.log(max(p.get(m, 0.0), 1e-9)) for p, (_, m) in zip(pi, pairs)])
        top_in_vote = np.mean([max(p, key=p.get) in v for p, v in zip(pi, vote)])
        capture = np.mean([analysis.mass_on(pi[s], captures[s]) for s in on])
        print(f"{workdir} (step {step}, board_head {bool(config.model.get('board_head'))}): "
              f"KL(mixture || model@1) {kl_S.mean():.3f} [{lo:.3f}, {hi:.3f}] nats, cross-entropy {ce:.3f}, "
              f"arg-max in the vote's set {top_in_vote:.3f}, capture mass {capture:.3f}", flush=True)


if __name__ == "__main__":
    main()
