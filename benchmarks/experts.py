"""Expert policy speed: the bitboard fast path against the original per-move scorer, interleaved.

The baseline is experts.py as committed at --baseline (the last version that scored
`list(board.legal_moves)` one move at a time), loaded from git into its own module. Both play
the same seeded games (asserted identical, blind flags included); rounds alternate so machine
load hits both alike. Also times a policy call alone, and the arena's own per-ply costs for a
Python player (board copies, seeding, end checks), which are outside this module. Times are
CPU seconds of this process (less sensitive than wall time to other jobs on shared cores).
Run from the repository root (it reads the baseline with `git show`).

    .venv/bin/python benchmarks/experts.py --games 30 --rounds 5
"""

import argparse
import statistics
import subprocess
import sys
import time
import types

import chess
import numpy as np

from transcendence_jax.experts import population as E


def load_baseline(rev: str) -> types.ModuleType:
    source = subprocess.run(["git", "show", f"{rev}:transcendence_jax/experts.py"], capture_output=True, text=True,
                            check=True).stdout
    module = types.ModuleType("experts_baseline")
    sys.modules[module.__name__] = module  # dataclasses look their module up
    exec(compile(source, f"{rev}:experts.py", "exec"), module.__dict__)
    return module


def play(module, games: int, seed: int):
    experts = module.population("diverse", 5, 0)
    players = [module.BASE] + experts
    start = time.process_time()
    out = [module.play_game(players[g % 6], players[(g + 1) % 6], np.random.default_rng([seed, g]))
           for g in range(games)]
    seconds = time.process_time() - start
    return [([m.uci() for m in g.moves], g.blind, g.result, g.termination) for g in out], seconds


def time_calls(fn, boards, masks, repeat=1) -> float:
    """Seconds per call of fn(board, rng, mask) over every board and mask."""
    rng = np.random.default_rng(0)
    start = time.process_time()
    for _ in range(repeat):
        for board in boards:
            for mask in masks:
                fn(board, rng, mask)
    return (time.process_time() - start) / (repeat * len(boards) * len(masks))


def arena_overheads(boards) -> dict:
    """Microseconds per ply of what arena.play_games + PolicyBackend do around a policy call."""
    from transcendence_jax.play.players import seed_of

    moves = [next(iter(b.legal_moves)) for b in boards]

    def per(fn, n=2000):
        start = time.process_time()
        for i in range(n):
            fn(boards[i % len(boards)], moves[i % len(boards)])
        return 1e6 * (time.process_time() - start) / n

    return {
        "board.copy() (arena: twice a ply)": per(lambda b, m: b.copy()),
        "board.copy(stack=False)": per(lambda b, m: b.copy(stack=False)),
        "seed_of + default_rng": per(lambda b, m: np.random.default_rng(seed_of(0, "g12", b.ply()))),
        "move in board.legal_moves": per(lambda b, m: m in b.legal_moves),
        "board.outcome(claim_draw=False)": per(lambda b, m: b.outcome(claim_draw=False)),
        "the policy itself (E.base_policy)": per(lambda b, m: E.base_policy(b, np.random.default_rng(0))),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", default="b66fd61", help="git revision of the per-move scorer (default b66fd61)")
    parser.add_argument("--games", type=int, default=20, help="games per round and implementation")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    old = load_baseline(args.baseline)

    speeds = {"baseline": [], "fast": []}
    for r in range(args.rounds):
        for name, module in (("baseline", old), ("fast", E)) if r % 2 == 0 else (("fast", E), ("baseline", old)):
            games, seconds = play(module, args.games, seed=r)
            speeds[name].append(sum(len(g[0]) for g in games) / seconds)
            if name == "baseline":
                reference = games
            else:
                fast = games
        assert fast == reference, f"round {r}: the fast path played different games"
        print(f"round {r}: play_game baseline {speeds['baseline'][-1]:,.0f} moves/s, fast {speeds['fast'][-1]:,.0f} "
              f"moves/s ({speeds['fast'][-1] / speeds['baseline'][-1]:.2f}x); games identical", flush=True)
    b, f = statistics.median(speeds["baseline"]), statistics.median(speeds["fast"])
    ratio = statistics.median(np.divide(speeds["fast"], speeds["baseline"]))
    print(f"play_game (base + 5 diverse experts, {args.games} games x {args.rounds} rounds): baseline {b:,.0f} "
          f"moves/s, fast {f:,.0f} moves/s, median ratio {ratio:.2f}x")

    boards, board = [], chess.Board()
    for move in E.play_game(E.BASE, E.population("diverse", 5, 0)[1], np.random.default_rng(7)).moves:
        boards.append(board.copy())
        board.push(move)
    masks = {"base": [0], "experts": [e.blind for e in E.population("diverse", 5, 0)]}
    for label, ms in masks.items():  # interleaved; the fastest of 5 rounds each
        t_old = t_new = float("inf")
        for _ in range(5):
            t_old, t_new = min(t_old, time_calls(old.decide, boards, ms)), min(t_new, time_calls(E.decide, boards, ms))
        print(f"decide ({label}, {len(boards)} positions, best of 5): baseline {1e6 * t_old:.0f} us, "
              f"fast {1e6 * t_new:.0f} us per call ({t_old / t_new:.2f}x)")
    print(f"arena per-ply costs around a Python policy (us, mean over the {len(boards)} positions of one game):")
    for name, us in arena_overheads(boards).items():
        print(f"  {name}: {us:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
