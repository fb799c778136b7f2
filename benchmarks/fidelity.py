"""How faithfully trained models imitate the demo's experts, as distributions, on fresh games.

For every workdir (a `transcendence train` or demo population's train/ folder): on positions of
`--games` fresh games of the population (every 4th ply from ply 1, a seed the training data did not
use), the model's tau-1 distribution against the experts' exact mixture: KL(mixture || model) in
nats (0 for a perfect imitator; 95% CI over positions), cross-entropy of the moves actually played
(the mixture's own beside it), the mass the model's arg-max puts in the vote's arg-max set, the
mass on captures where one is on (the mixture's beside it), and the mass on moves no expert plays
(the mixture's zeros: a tau-1 error that neither the mixture nor game-mixture makes). The
model's population must be the demo's (`--population`, `--seed`: its experts' deal). Where the
experts' mixture is flat (every legal move equally likely: no capture on, or every capture on
blind squares), a low-temperature model plays whichever move it learned to prefer: its arg-max's
material after the unflawed base's reply is set against a uniform legal move's (what the vote
plays there), separately for the two kinds of flat positions, with the arg-max's capture rate
where the captures are all blind.

  python benchmarks/fidelity.py runs/demo/diverse/train /tmp/tied/train --population diverse
  python benchmarks/fidelity.py runs/demo_bh3/clones/train --population clones --base mvv-lva
"""

import argparse
import math

import chess
import numpy as np
from machine import report_load  # benchmarks/machine.py

from transcendence_jax import analysis
from transcendence_jax.configs import demo
from transcendence_jax.experiment import make_population
from transcendence_jax.experts.policies import VALUE
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


def net_material(board: chess.Board, move: chess.Move) -> int:
    """Material the mover wins with `move`, less the most valuable victim the opponent can then
    capture (the unflawed MVV-LVA reply; one ply, no recapture)."""
    def victim(b, m):
        return VALUE[b.piece_type_at(m.to_square) or chess.PAWN] + (VALUE[m.promotion] - 1 if m.promotion else 0)
    gain = victim(board, move) if board.is_capture(move) else (VALUE[move.promotion] - 1 if move.promotion else 0)
    board.push(move)
    reply = max((victim(board, m) for m in board.generate_legal_captures()), default=0)
    board.pop()
    return gain - reply


def flat_choices(boards, pi, vote, captures, rng) -> str:
    """The model's arg-max against a uniform legal move where the experts are flat (see above)."""
    parts, top = [], [max(p, key=p.get) for p in pi]
    for kind, wanted in (("no capture on", False), ("every capture blind", True)):
        flat = [s for s, b in enumerate(boards) if bool(captures[s]) == wanted
                and len(vote[s]) > 1 and len(vote[s]) == b.legal_moves.count()]
        if not flat:
            continue
        diff = np.array([net_material(boards[s], top[s])
                         - np.mean([net_material(boards[s], m) for m in boards[s].legal_moves]) for s in flat])
        lo, hi = np.percentile(diff[rng.integers(0, len(diff), (1000, len(diff)))].mean(1), [2.5, 97.5])
        part = f"{kind} ({len(flat)}): arg-max minus uniform {diff.mean():+.2f} [{lo:+.2f}, {hi:+.2f}] pawns"
        if wanted:
            takes = np.mean([boards[s].is_capture(top[s]) for s in flat])
            share = np.mean([len(captures[s]) / boards[s].legal_moves.count() for s in flat])
            mass = np.mean([analysis.mass_on(pi[s], captures[s]) for s in flat])
            part += f", arg-max a capture {takes:.2f}, model@1's capture mass {mass:.2f} (uniform {share:.2f})"
        parts.append(part)
    return "; ".join(parts)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("workdirs", nargs="+")
    parser.add_argument("--population", default="diverse")
    parser.add_argument("--seed", type=int, default=0, help="the demo's seed: which experts' deal (default: 0)")
    parser.add_argument("--base", default=None, help="the experts' base policy (default: the demo config's; "
                        "mvv-lva for runs made before 2026-12-07's switch to mvv-lva-quiet)")
    parser.add_argument("--games", type=int, default=30, help="fresh games to take positions from (default: 30)")
    args = parser.parse_args()
    report_load()
    cfg = demo.get_config()
    cfg.seed = args.seed
    cfg.base = args.base or cfg.base
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
        outside = np.array([sum(q for m, q in p.items() if m not in mix) for p, mix in zip(pi, mixture)])
        lo_out, hi_out = np.percentile(outside[rng.integers(0, len(outside), (1000, len(outside)))].mean(1),
                                       [2.5, 97.5])
        print(f"{workdir} (step {step}, board_head {bool(config.model.get('board_head'))}): "
              f"KL(mixture || model@1) {kl_S.mean():.3f} [{lo:.3f}, {hi:.3f}] nats, KL(posterior || model@1) "
              f"{kl_post.mean():.3f} [{lo_post:.3f}, {hi_post:.3f}], cross-entropy {ce:.3f}, "
              f"arg-max in the vote's set {top_in_vote:.3f}, capture mass {capture:.3f}", flush=True)
        print(f"  mass on moves no expert plays (a tau-1 error the experts do not make): {outside.mean():.3f} "
              f"[{lo_out:.3f}, {hi_out:.3f}] a position; with a capture on {outside[on].mean():.3f}, "
              f"none on {np.delete(outside, on).mean():.3f}; a game of 100 plies samples "
              f"{outside.mean() * 50:.1f} such moves a side", flush=True)
        print(f"  where the experts are flat: {flat_choices(boards, pi, vote, captures, rng)}", flush=True)


if __name__ == "__main__":
    main()
