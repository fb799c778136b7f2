"""Synthetic imperfect experts: the controlled population that makes transcendence visible.

Every expert plays one shared, learnable base policy (`experts.policies`, MVV-LVA by default);
each has one learnable flaw: captures landing on its own set of blind squares are invisible to
it. With "diverse" experts each square is blind for only one or two of them, so the mixture of
their policies (what a model trained on their games learns) still plays the base move
everywhere, and its arg-max is better than any single expert. With "clones" all experts share
one blind set at the same per-expert error rate, so the mixture keeps the flaw. Here: the
population, its games and the `data experts` dataset. See docs/EXPERTS.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import multiprocessing
import os
import time
from typing import Callable, Iterable, Sequence

import chess
import numpy as np

from transcendence_jax.data.boards import game_boards
from transcendence_jax.data.records import GameRecord
from transcendence_jax.data.tokenizer import encode_game
from transcendence_jax.errors import UserError
from transcendence_jax.experts.policies import BASES, VALUE, base_family, check_base, choices, decide, error_probability

MAX_PLIES = 100
ADJUDICATE_LEAD = 3
DEFAULT_BASE = "mvv-lva"
# Per base policy, the share of the 64 squares each expert is blind on. mvv-lva: 20 squares
# (the study's: 5 x 20 covers each square once or twice); safe: 12 (5 x 12 are disjoint).
BLIND_FRACTION = {"mvv-lva": 0.3125, "safe": 0.1875, "stockfish": 0.3125, "mvv-lva-ranked": 0.3125,
                  "mvv-lva-softmax": 0.3125, "mvv-lva-argmax": 0.3125, "mvv-lva-quiet": 0.3125}
Policy = Callable[[chess.Board, np.random.Generator], chess.Move]


def error_rates(experts: Sequence["Expert"], games: int = 20, seed: int = 0) -> list[float]:
    """Each expert's mean error probability over the positions of `games` base-vs-base games:
    its flaw's rate on one common set of positions (in its own games errors compound: with
    clones neither side sees a piece left en prise on a shared blind square, so it stays)."""
    totals, count = np.zeros(len(experts)), 0
    for g in range(games):
        board = chess.Board()
        for move in play_game(BASE, BASE, np.random.default_rng([seed, g])).moves:
            totals += [e.error_probability(board) for e in experts]
            count += 1
            board.push(move)
    return (totals / max(count, 1)).tolist()


def material(board: chess.Board) -> int:
    """White's material minus Black's (pawn 1, knight/bishop 3, rook 5, queen 9)."""
    total = 0
    for pt in range(1, 6):
        total += VALUE[pt] * (len(board.pieces(pt, chess.WHITE)) - len(board.pieces(pt, chess.BLACK)))
    return total


def adjudicate(board: chess.Board, lead: int = ADJUDICATE_LEAD) -> str:
    """The result of a game stopped at `board`: mate and stalemate as chess scores them,
    otherwise a material lead of `lead` or more wins, anything else is a draw."""
    if board.is_checkmate():
        return "0-1" if board.turn == chess.WHITE else "1-0"
    diff = material(board)
    if board.is_stalemate() or abs(diff) < lead:
        return "1/2-1/2"
    return "1-0" if diff > 0 else "0-1"


@dataclasses.dataclass(frozen=True)
class Expert:
    """One expert: the `base` policy blind to captures onto `blind` (a 64-bit square mask).

    Callable as an arena policy: `expert(board, rng) -> chess.Move`."""

    id: int
    blind: int
    kind: str = "diverse"
    base: str = DEFAULT_BASE

    @property
    def name(self) -> str:
        return f"expert{self.id}"

    @property
    def squares(self) -> list[str]:
        return [chess.SQUARE_NAMES[s] for s in chess.scan_forward(self.blind)]

    def decide(self, board: chess.Board, rng: np.random.Generator) -> tuple[chess.Move | None, bool]:
        return decide(board, rng, self.blind, self.base)

    def choices(self, board: chess.Board) -> tuple[list[chess.Move], list[bool]]:
        return choices(board, self.blind, self.base)

    def error_probability(self, board: chess.Board) -> float:
        return error_probability(board, self.blind, self.base)

    def __call__(self, board: chess.Board, rng: np.random.Generator) -> chess.Move:
        return decide(board, rng, self.blind, self.base)[0]


def base_expert(base: str = DEFAULT_BASE) -> Expert:
    """The unflawed base policy as an expert (the tournament's reference player)."""
    return Expert(id=-1, blind=0, kind="base", base=base)


BASE = base_expert()

# Per square (a1, b1, ..., h8): how often, per 1000 moves, an expert blind on that square
# alone errs, on the positions of base-vs-base games, per base policy; from
# `square_error_rates(100, 99, "mvv-lva")` and `square_error_rates(12, 99, "safe")`. Used only
# to deal blind squares so every expert's set carries the same error rate, and diverse and
# clones share one per-expert error rate (`error_rates`). "stockfish" uses the MVV-LVA table:
# its blind spots are also captures onto squares.
MVV_TRAFFIC = (
    1.0, 1.2, 2.6, 0.4, 0.4, 1.0, 1.2, 1.5, 3.8, 1.8, 1.5, 4.3, 2.6, 2.6, 2.8, 4.6,
    7.5, 3.3, 4.9, 3.5, 3.4, 4.0, 2.8, 8.3, 3.5, 6.8, 6.1, 6.9, 6.3, 4.7, 8.4, 3.5,
    5.5, 5.3, 4.6, 6.6, 4.9, 5.1, 7.1, 3.7, 6.9, 3.1, 4.5, 3.9, 3.1, 5.6, 1.5, 6.7,
    3.6, 4.4, 3.0, 4.7, 3.9, 3.4, 2.5, 5.4, 2.2, 1.1, 1.3, 0.8, 0.3, 1.4, 1.9, 1.2,
)
TRAFFIC = {"mvv-lva": MVV_TRAFFIC, "stockfish": MVV_TRAFFIC, "mvv-lva-ranked": MVV_TRAFFIC,
           "mvv-lva-softmax": MVV_TRAFFIC, "mvv-lva-argmax": MVV_TRAFFIC, "mvv-lva-quiet": MVV_TRAFFIC, "safe": (
    12.7, 7.7, 4.6, 7.6, 6.9, 8.5, 9.5, 8.1, 8.8, 13.2, 8.9, 9.8, 7.8, 7.5, 9.9, 6.4,
    19.9, 6.5, 19.0, 11.6, 20.5, 14.0, 4.9, 25.1, 11.0, 26.2, 16.1, 15.8, 30.6, 16.9, 30.4, 10.1,
    22.8, 30.2, 33.1, 31.2, 29.8, 26.0, 28.1, 15.1, 10.8, 14.1, 11.5, 8.8, 12.7, 28.1, 14.9, 23.8,
    7.5, 11.3, 3.1, 4.3, 5.5, 8.6, 7.6, 6.4, 9.5, 2.5, 2.8, 2.3, 5.2, 11.5, 4.5, 5.0,
)}


def square_error_rates(games: int = 12, seed: int = 99, base: str = DEFAULT_BASE) -> np.ndarray:
    """Per square, the error rate (per 1000 moves) of an expert blind on that square alone."""
    totals, count, reference = np.zeros(64), 0, base_expert(base)
    for g in range(games):
        board = chess.Board()
        for move in play_game(reference, reference, np.random.default_rng([seed, g])).moves:
            totals += [error_probability(board, 1 << sq, base) for sq in range(64)]
            count += 1
            board.push(move)
    return 1000 * totals / max(count, 1)


def _deal(k: int, n: int, squares: list[int], weight: Sequence[float]) -> list[int]:
    """k masks of n squares each from `squares`, every square used as evenly as possible and
    every mask carrying about the same total `weight` (greedy: each pick keeps the mask's
    running total nearest its share)."""
    sets, total, used = [set() for _ in range(k)], [0.0] * k, {sq: 0 for sq in squares}
    target = sum(weight[s] for s in squares) / len(squares)  # per square dealt
    for j in range(n):
        for e in sorted(range(k), key=lambda e: (total[e], e)):
            sq = min((s for s in squares if s not in sets[e]),
                     key=lambda s: (used[s], abs(total[e] + weight[s] - target * (j + 1))))
            sets[e].add(sq)
            total[e] += weight[sq]
            used[sq] += 1
    return [sum(1 << s for s in st) for st in sets]


def population(kind: str = "diverse", k: int = 5, seed: int = 0, *, blind_fraction: float | None = None,
               overlap: float | None = None, base: str = DEFAULT_BASE) -> list[Expert]:
    """K experts playing the `base` policy, each blind on round(blind_fraction * 64) squares
    (default: BLIND_FRACTION[base]).

    kind "diverse": the squares are dealt so each is blind for as few experts as possible
    (at most one for 5 x 12, one or two for 5 x 20 or 5 x 24); "clones": every expert has the
    diverse set whose error rate (measured on 10 base-vs-base games) is the median, so the
    per-expert error rate matches the diverse experts' typical one. `overlap` in [0, 1] sets the
    shared fraction of each set directly (0 = diverse, 1 = clones). `seed` shuffles which
    squares go together."""
    if kind not in ("diverse", "clones"):
        raise UserError(f"unknown population {kind!r}: use diverse or clones")
    if k < 1:
        raise UserError(f"--experts must be >= 1, got {k}")
    check_base(base)
    blind_fraction = BLIND_FRACTION[base_family(base)] if blind_fraction is None else blind_fraction
    n = round(blind_fraction * 64)
    if not 0 <= n <= 64:
        raise UserError(f"--blind-fraction must be in [0, 1], got {blind_fraction}")
    overlap = (0.0 if kind == "diverse" else 1.0) if overlap is None else overlap
    if not 0.0 <= overlap <= 1.0:
        raise UserError(f"--overlap must be in [0, 1], got {overlap}")
    rng = np.random.default_rng(seed)
    weight = np.asarray(TRAFFIC[base_family(base)]) * rng.uniform(0.95, 1.05, 64)  # the seed changes the deal
    squares = [int(s) for s in rng.permutation(64)]
    sets = _deal(k, n, squares, weight)
    s = round(overlap * n)
    first = sets[0]
    if s:  # a shared part: taken from the set of median error rate
        rates = error_rates([Expert(i, m, base=base) for i, m in enumerate(sets)], games=10, seed=seed)
        first = sets[int(np.argsort(rates, kind="stable")[(k - 1) // 2])]
    shared = sum(1 << sq for sq in [q for q in squares if first >> q & 1][:s])
    rest = [q for q in squares if not shared >> q & 1]
    own = _deal(k, n - s, rest, weight) if s < n else [0] * k
    return [Expert(id=i, blind=shared | own[i], kind=kind, base=base) for i in range(k)]


# --- games -------------------------------------------------------------------------------


@dataclasses.dataclass
class Game:
    moves: list[chess.Move]
    blind: list[bool]
    result: str
    termination: str  # checkmate | stalemate | insufficient | cap


def play_game(white: Expert, black: Expert, rng: np.random.Generator, max_plies: int = MAX_PLIES) -> Game:
    """One game from the start position: mate and stalemate end it, bare kings draw, and at
    `max_plies` `adjudicate` scores it."""
    board, moves, blind = chess.Board(), [], []
    termination, insufficient = "cap", False  # material only changes on captures and promotions
    while len(moves) < max_plies:
        if insufficient:
            termination = "insufficient"
            break
        move, was_blind = (white if board.turn == chess.WHITE else black).decide(board, rng)
        if move is None:
            termination = "checkmate" if board.is_check() else "stalemate"
            break
        changes = move.promotion or board.is_capture(move)
        board.push(move)
        insufficient = changes and board.is_insufficient_material()
        moves.append(move)
        blind.append(was_blind)
    return Game(moves, blind, adjudicate(board), termination)


def schedule(k: int, games: int) -> list[tuple[int, int]]:
    """(white, black) of each game: all pairs in turn, colours alternating each round."""
    pairs = [(i, j) for i in range(k) for j in range(i + 1, k)]
    if not pairs:
        raise UserError(f"need at least 2 experts to play games, got {k}")
    return [pairs[g % len(pairs)][:: 1 if (g // len(pairs)) % 2 == 0 else -1] for g in range(games)]


def _play_chunk(job) -> list[tuple[int, Game]]:
    players, seed, chunk = job
    return [(g, play_game(players[w], players[b], np.random.default_rng([seed, g]))) for g, w, b in chunk]


def play_many(players: Sequence[Expert], pairings: Sequence[tuple[int, int]], *, seed: int = 0,
              workers: int = 1, chunk: int = 50) -> Iterable[tuple[int, Game]]:
    """Play every (white, black) pairing, yielding (index, Game) in order. Game g is seeded by
    (seed, g) alone, so the games are the same whatever the number of workers."""
    jobs = [(list(players), seed, [(g, w, b) for g, (w, b) in list(enumerate(pairings))[i : i + chunk]])
            for i in range(0, len(pairings), chunk)]
    if workers <= 1:
        for job in jobs:
            yield from _play_chunk(job)
        return
    # spawn, not fork: the caller may have started JAX threads.
    with multiprocessing.get_context("spawn").Pool(workers) as pool:
        for out in pool.imap(_play_chunk, jobs):
            yield from out


# --- datasets ----------------------------------------------------------------------------


def records(experts: Sequence[Expert], games: int, *, seed: int = 0, workers: int = 1, boards: bool = True,
            stats: dict | None = None) -> Iterable[GameRecord]:
    """The round robin of `experts` as GameRecords (white_id/black_id = expert ids, blind =
    per-move flag, source "experts-<kind>"); `stats`, when given, is filled with counts."""
    pairings = schedule(len(experts), games)
    source = f"experts-{experts[0].kind}"
    blind, moves, ends = np.zeros(len(experts)), np.zeros(len(experts)), {}
    for g, game in play_many(experts, pairings, seed=seed, workers=workers):
        w, b = pairings[g]
        flags = np.asarray(game.blind, np.uint8)
        blind[w] += flags[0::2].sum()
        blind[b] += flags[1::2].sum()
        moves[w] += len(flags[0::2])
        moves[b] += len(flags[1::2])
        ends[game.termination] = ends.get(game.termination, 0) + 1
        yield GameRecord(tokens=encode_game(game.moves), result=game.result, source=source,
                         white_id=experts[w].id, black_id=experts[b].id, blind=flags,
                         boards=game_boards(game.moves) if boards else None)
    if stats is not None:
        stats.update(games=len(pairings), terminations=ends, moves=int(moves.sum()),
                     blind_rate=float(blind.sum() / max(moves.sum(), 1)),
                     blind_rate_per_expert=(blind / np.maximum(moves, 1)).round(4).tolist())


def describe(experts: Sequence[Expert]) -> dict:
    """The population as JSON: each expert's blind squares and how many experts share each."""
    cover = [sum(e.blind >> sq & 1 for e in experts) for sq in range(64)]
    return {"kind": experts[0].kind, "base": experts[0].base,
            "experts": [{"id": e.id, "name": e.name, "blind_squares": " ".join(e.squares)} for e in experts],
            "experts_blind_per_square": {str(c): cover.count(c) for c in sorted(set(cover))}}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, help="output dataset directory (ArrayRecord shards + stats.json)")
    parser.add_argument("--population", choices=("diverse", "clones"), default="diverse",
                        help="diverse: each square blind for one or two experts; clones: one shared blind set")
    parser.add_argument("--experts", type=int, default=5, help="number of experts K (default 5)")
    parser.add_argument("--games", type=int, default=20000, help="games in all, over all pairs (default 20000)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="processes (default: all cores)")
    parser.add_argument("--seed", type=int, default=0, help="seeds the squares dealt and every game")
    parser.add_argument("--base", default=DEFAULT_BASE,
                        help=f"the shared base policy: one of {', '.join(BASES)} or mvv-lva-softmax-<scale> "
                             "(default mvv-lva: learnable by the tiny model; docs/EXPERTS.md)")
    parser.add_argument("--blind-fraction", type=float, default=None,
                        help="fraction of the 64 squares each expert is blind on "
                             f"(default per base: {BLIND_FRACTION})")
    parser.add_argument("--overlap", type=float, default=None,
                        help="shared fraction of each blind set, 0 (diverse) .. 1 (clones); overrides --population's")
    parser.add_argument("--boards", action=argparse.BooleanOptionalAction, default=True,
                        help="store each position's board planes in the records (default: yes)")
    parser.add_argument("--shards", type=int, default=4, help="train shards (default 4)")
    parser.add_argument("--val-fraction", type=float, default=0.05, help="validation fraction (default 0.05)")


def run(args: argparse.Namespace) -> int:
    from transcendence_jax.data.build import whole_record, write_dataset

    if args.games < 1:
        raise UserError(f"--games must be >= 1, got {args.games}")
    experts = population(args.population, args.experts, args.seed, blind_fraction=args.blind_fraction,
                         overlap=args.overlap, base=args.base)
    stats, start = {}, time.time()
    print(f"{args.population}: {args.experts} {args.base} experts blind on {experts[0].blind.bit_count()} squares "
          f"each; {args.games} games on {args.workers} workers")

    def progress():
        for n, rec in enumerate(records(experts, args.games, seed=args.seed, workers=args.workers,
                                        boards=args.boards, stats=stats), 1):
            if n % 2000 == 0 or n == args.games:
                print(f"  {n}/{args.games} games, {time.time() - start:.0f}s", flush=True)
            yield rec

    extra = {"experts": describe(experts), "generation": stats}
    out = write_dataset(progress(), args.out, num_shards=args.shards, val_fraction=args.val_fraction,
                        seed=args.seed, extra_stats=extra, split_by=whole_record)
    seconds = time.time() - start
    stats["seconds"] = round(seconds, 1)
    with open(os.path.join(args.out, "stats.json"), "w") as f:
        json.dump(out, f, indent=1)
    print(f"wrote {args.out}/ ({out['train']} train, {out['validation']} validation games, "
          f"{stats['moves']} moves in {seconds:.0f}s; blind-move rate {stats['blind_rate']:.3f}; "
          f"ends {stats['terminations']})")
    return 0
