"""Expert policy speed: games and single decisions per base policy, and the arena's per-ply costs.

For each base policy (mvv-lva, safe): `play_game` moves/s for the base and 5 diverse experts
(median over --rounds), and microseconds per `decide` call for the base and the experts (best
of 5). Also the arena's own per-ply costs around a Python player (board copies, seeding, end
checks). Times are CPU seconds of this process (less sensitive than wall time to other jobs on
shared cores). That the fast "safe" path plays the same moves as the per-move reference
scorer is tests/test_experts.py::test_fast_path_equals_the_reference.

    .venv/bin/python benchmarks/experts.py --games 30 --rounds 5
"""

import argparse
import statistics
import sys
import time

import chess
import numpy as np
from machine import report_load  # benchmarks/machine.py

from transcendence_jax.experts import policies
from transcendence_jax.experts import population as E


def play(base: str, games: int, seed: int) -> float:
    """Moves per CPU second of `games` games among the base and 5 diverse experts."""
    players = [E.base_expert(base)] + E.population("diverse", 5, 0, base=base)
    start = time.process_time()
    moves = sum(len(E.play_game(players[g % 6], players[(g + 1) % 6], np.random.default_rng([seed, g])).moves)
                for g in range(games))
    return moves / (time.process_time() - start)


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
        "the policy itself (policies.base_policy)": per(lambda b, m: policies.base_policy(b, np.random.default_rng(0))),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--games", type=int, default=20, help="games per round and base policy")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    report_load()
    bases = ("mvv-lva", "safe")
    speeds = {base: [] for base in bases}
    for r in range(args.rounds):  # the bases alternate so machine load hits both alike
        for base in bases if r % 2 == 0 else bases[::-1]:
            speeds[base].append(play(base, args.games, seed=r))
        print(f"round {r}: " + ", ".join(f"{b} {speeds[b][-1]:,.0f} moves/s" for b in bases), flush=True)
    for base in bases:
        print(f"play_game {base} (base + 5 diverse experts, {args.games} games x {args.rounds} rounds): "
              f"median {statistics.median(speeds[base]):,.0f} moves/s")

    boards, board = [], chess.Board()
    for move in E.play_game(E.BASE, E.population("diverse", 5, 0)[1], np.random.default_rng(7)).moves:
        boards.append(board.copy())
        board.push(move)
    for base in bases:
        masks = {"base": [0], "experts": [e.blind for e in E.population("diverse", 5, 0, base=base)]}
        for label, ms in masks.items():
            t = min(time_calls(lambda b, rng, m: policies.decide(b, rng, m, base), boards, ms) for _ in range(5))
            print(f"decide {base} ({label}, {len(boards)} positions, best of 5): {1e6 * t:.0f} us per call")
    print(f"arena per-ply costs around a Python policy (us, mean over the {len(boards)} positions of one game):")
    for name, us in arena_overheads(boards).items():
        print(f"  {name}: {us:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
