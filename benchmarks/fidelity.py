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
from transcendence_jax.experts.reference import expert_distribution, mixture_distribution, vote_distribution
from transcendence_jax.training.checkpoint import load_model


def positions(experts, games: int, seed: int):
    """(board, move played, posterior) every 4th ply from ply 1 of `games` games, all pairs in
    turn; posterior: the probability of each expert being the mover, given the mover's own earlier
    moves in the game (uniform prior; exact, from the experts' distributions)."""
    rng, out = np.random.default_rng(seed), []
    k = len(experts)
    for g in range(games):
        white, black = experts[g % k], experts[(g + 1 + g // k) % k]
        board = chess.Board()
        log_like = {chess.WHITE: np.zeros(k), chess.BLACK: np.zeros(k)}
        for t, move in enumerate(play_game(white, black, rng).moves):
            if t % 4 == 1:
                w = np.exp(log_like[board.turn] - log_like[board.turn].max())
                out.append((board.copy(), move, w / w.sum()))
            with np.errstate(divide="ignore"):
                log_like[board.turn] += np.log([expert_distribution(e, board).get(move, 0.0) for e in experts])
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
    boards = [b for b, _, _ in pairs]
    mixture = [mixture_distribution(experts, b) for b in boards]
    posterior = [mixture_distribution(experts, b, w) for b, _, w in pairs]  # what a perfect sequence model predicts
    vote = [set(vote_distribution(experts, b)) for b in boards]
    captures = [[m for m in b.legal_moves if b.is_capture(m)] for b in boards]
    on = [s for s, c in enumerate(captures) if c]
    ce_mixture = -np.mean([math.log(mix[m]) for mix, (_, m, _) in zip(mixture, pairs)])
    ce_posterior = -np.mean([math.log(q[m]) for q, (_, m, _) in zip(posterior, pairs)])
    print(f"{len(boards)} positions of {args.games} fresh {args.population} games (seed {args.seed}), "
          f"{len(on)} with a capture on; the mixture: cross-entropy {ce_mixture:.3f}, capture mass "
          f"{np.mean([analysis.mass_on(mixture[s], captures[s]) for s in on]):.3f}; the posterior predictive "
          f"(who moves, read from the game so far): cross-entropy {ce_posterior:.3f}, capture mass "
          f"{np.mean([analysis.mass_on(posterior[s], captures[s]) for s in on]):.3f}, its likeliest mover's "
          f"mean probability {np.mean([w.max() for _, _, w in pairs]):.3f}")
    rng = np.random.default_rng(0)
    for workdir in args.workdirs:
        model, config, step = load_model(workdir)
        pi = [p[1.0] for p in analysis.model_policies(model, boards, [1.0])]
        kl_S = np.array([analysis.kl_divergence(q, p) for q, p in zip(mixture, pi)])
        lo, hi = np.percentile(kl_S[rng.integers(0, len(kl_S), (1000, len(kl_S)))].mean(1), [2.5, 97.5])
        kl_post = np.array([analysis.kl_divergence(q, p) for q, p in zip(posterior, pi)])
        lo_post, hi_post = np.percentile(kl_post[rng.integers(0, len(kl_post), (1000, len(kl_post)))].mean(1),
                                         [2.5, 97.5])
        ce = -np.mean([math.log(max(p.get(m, 0.0), 1e-9)) for p, (_, m, _) in zip(pi, pairs)])
        top_in_vote = np.mean([max(p, key=p.get) in v for p, v in zip(pi, vote)])
        capture = np.mean([analysis.mass_on(pi[s], captures[s]) for s in on])
        print(f"{workdir} (step {step}, board_head {bool(config.model.get('board_head'))}): "
              f"KL(mixture || model@1) {kl_S.mean():.3f} [{lo:.3f}, {hi:.3f}] nats, KL(posterior || model@1) "
              f"{kl_post.mean():.3f} [{lo_post:.3f}, {hi_post:.3f}], cross-entropy {ce:.3f}, "
              f"arg-max in the vote's set {top_in_vote:.3f}, capture mass {capture:.3f}", flush=True)


if __name__ == "__main__":
    main()
