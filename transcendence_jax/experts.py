"""Synthetic imperfect experts: the controlled population that makes transcendence visible.

Every expert plays one shared, fast, learnable base policy (`base_policy`); each has one
learnable flaw: captures landing on its own set of blind squares are invisible to it, its
own (it misses them) and the opponent's (it leaves pieces there en prise, and moves pieces
onto them as if they were safe). With
"diverse" experts each square is blind for only one or two of them, so the mixture of their
policies (what a model trained on their games learns) still plays the base move everywhere,
and its arg-max is better than any single expert. With "clones" all experts share one blind
set at the same per-expert error rate, so the mixture keeps the flaw. See docs/EXPERTS.md.

The base policy, in order of preference (ties broken uniformly at random):
  1. the capture or promotion with the largest material gain, counting the mover as lost
     when the target square is attacked by the opponent, or the move that saves the most
     valuable hanging piece (attacked and undefended, or attacked by a cheaper piece) to a
     square the opponent does not attack;
  2. any safe move: a quiet move to a square the opponent does not attack, or an even trade;
  3. any legal move.
Attacks are read off the current board (no search), so the policy is a near-linear function
of the board that a small model learns quickly. It is scored with bitboard masks, a move
group at a time, so it runs several times faster than scoring `list(board.legal_moves)` one
move at a time while playing exactly the same moves (docs/EXPERTS.md has the figures).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import multiprocessing
import operator
import os
import time
from typing import Callable, Iterable, Sequence

import chess
import numpy as np

from transcendence_jax.data.records import GameRecord
from transcendence_jax.errors import UserError
from transcendence_jax.tokenizer import encode_game, game_boards

VALUE = (0, 1, 3, 3, 5, 9, 0)  # by chess piece type: none, P, N, B, R, Q, K
MAX_PLIES = 100
ADJUDICATE_LEAD = 3
BLIND_FRACTION = 0.1875  # 12 squares: 5 experts x 12 are disjoint; ~280 Elo below the base
Policy = Callable[[chess.Board, np.random.Generator], chess.Move]


# --- the base policy and the flaw ------------------------------------------------------
#
# Speed: the policy needs only its top-scoring moves, so moves are scored in groups with
# bitboard masks (all quiet moves of one piece to safe squares score alike) and only the top
# group is expanded, into integer sort keys that put it in python-chess's legal-move order;
# one chess.Move is built, for the move drawn. Legality is folded into the masks (pins, check
# evasions, king safety). So the seeded tie-break draws exactly the move that scoring
# `list(board.legal_moves)` one move at a time drew (tests/test_experts.py keeps that
# reference and checks equality on real games).

_PROMOTIONS = (chess.QUEEN, chess.ROOK, chess.BISHOP, chess.KNIGHT)  # python-chess's order
_BACK_RANKS = chess.BB_RANK_1 | chess.BB_RANK_8
_scan = chess.scan_forward
_KNIGHT, _KING = chess.BB_KNIGHT_ATTACKS, chess.BB_KING_ATTACKS
_DIAG, _DIAG_MASKS = chess.BB_DIAG_ATTACKS, chess.BB_DIAG_MASKS
_RANK, _RANK_MASKS, _FILE, _FILE_MASKS = chess.BB_RANK_ATTACKS, chess.BB_RANK_MASKS, chess.BB_FILE_ATTACKS, chess.BB_FILE_MASKS


def _pawn_attacks(pawns: int, color: chess.Color) -> int:
    if color == chess.WHITE:
        return ((pawns & ~chess.BB_FILE_A) << 7 | (pawns & ~chess.BB_FILE_H) << 9) & chess.BB_ALL
    return (pawns & ~chess.BB_FILE_A) >> 9 | (pawns & ~chess.BB_FILE_H) >> 7


def _pieces(board: chess.Board, color: chess.Color) -> list[tuple[int, int, int]]:
    """(square, attack mask, value) of each non-pawn piece of `color`, from the highest square
    down (python-chess's move-generation order)."""
    own, occ = board.occupied_co[color], board.occupied
    knights, bishops, rooks, queens = board.knights, board.bishops, board.rooks, board.queens
    out = []
    for sq in chess.scan_reversed(own & ~board.pawns):
        bb = 1 << sq
        if knights & bb:
            out.append((sq, _KNIGHT[sq], 3))
        elif bishops & bb:
            out.append((sq, _DIAG[sq][_DIAG_MASKS[sq] & occ], 3))
        elif rooks & bb:
            out.append((sq, _RANK[sq][_RANK_MASKS[sq] & occ] | _FILE[sq][_FILE_MASKS[sq] & occ], 5))
        elif queens & bb:
            out.append((sq, _DIAG[sq][_DIAG_MASKS[sq] & occ] | _RANK[sq][_RANK_MASKS[sq] & occ]
                        | _FILE[sq][_FILE_MASKS[sq] & occ], 9))
        else:
            out.append((sq, _KING[sq], 0))
    return out


def _attacks_by_value(board: chess.Board, color: chess.Color) -> tuple[int, int, int, int, int]:
    """Squares `color` attacks with its king, pawns, minor pieces, rooks and queens."""
    own, occ = board.occupied_co[color], board.occupied
    king = pawn = minor = rook = queen = 0
    for sq in _scan(board.kings & own):
        king |= _KING[sq]
    for sq in _scan(board.knights & own):
        minor |= _KNIGHT[sq]
    for sq in _scan(board.bishops & own):
        minor |= _DIAG[sq][_DIAG_MASKS[sq] & occ]
    for sq in _scan(board.rooks & own):
        rook |= _RANK[sq][_RANK_MASKS[sq] & occ] | _FILE[sq][_FILE_MASKS[sq] & occ]
    for sq in _scan(board.queens & own):
        queen |= _DIAG[sq][_DIAG_MASKS[sq] & occ] | _RANK[sq][_RANK_MASKS[sq] & occ] | _FILE[sq][_FILE_MASKS[sq] & occ]
    return king, _pawn_attacks(board.pawns & own, color), minor, rook, queen


def _capture(victim: int, mover: int, promo: int, attacked: int, rescue: int, blind_fr: int, blind_to: int,
             blind: int) -> tuple[float, float]:
    """(seen, true) score of a capture or promotion: the larger of the material won (the mover
    counted lost when the target is attacked) and the value of a hanging mover saved to a safe
    square. Blind on the target, a capture is invisible (-1) and a promotion looks safe."""
    cost = (VALUE[promo] if promo else mover) if attacked else 0
    gain = victim + (VALUE[promo] - 1 if promo else 0) - cost
    best = max(gain, (0 if attacked else rescue) - 0.5)
    true = 10.0 + best if best > 0 else (1.0 if gain == 0 else 0.0)
    if not blind:
        return true, true
    if blind_to:
        return (-1.0 if victim else 10.0 + VALUE[promo] - 1), true
    best = max(gain, (0 if attacked or blind_fr else rescue) - 0.5)
    return (10.0 + best if best > 0 else (1.0 if gain == 0 else 0.0)), true


def _quiet(add, category: int, fr: int, targets: int, rescue: int, theirs: int, blind: int) -> None:
    """Groups of quiet moves from `fr`: to a safe square (a rescue when the piece hangs), to an
    attacked one (a blunder), or to an attacked blind square (looks safe, is a blunder)."""
    true = 9.5 + rescue if rescue else 1.0
    seen = 1.0 if blind >> fr & 1 else true
    if targets & ~theirs:
        add((seen, true, category, fr, targets & ~theirs, 0))
    if targets & theirs & blind:
        add((seen, 0.0, category, fr, targets & theirs & blind, 0))
    if targets & theirs & ~blind:
        add((0.0, 0.0, category, fr, targets & theirs & ~blind, 0))


def _castling(board: chess.Board, us: chess.Color, king: int, theirs: int) -> list[tuple[int, int, int]]:
    """Legal castling moves as plain quiet moves (1, king, to-mask), kingside first like
    python-chess: king and rook at home, the squares between them empty, the squares the king
    crosses not attacked (the caller knows it is not in check)."""
    home = chess.E1 if us == chess.WHITE else chess.E8
    if board.chess960 or king != home:
        return [(1, m.from_square, 1 << m.to_square) for m in board.generate_castling_moves()]
    rights, out = board.castling_rights & board.rooks & board.occupied_co[us], []
    for rook, crossed in ((home + 3, chess.between(home, home + 3)), (home - 4, chess.between(home, home - 3))):
        if rights >> rook & 1 and not chess.between(home, rook) & board.occupied and not crossed & theirs:
            out.append((1, home, 1 << (home + 2 if rook > home else home - 2)))
    return out


def _top(board: chess.Board, blind: int) -> list[list]:
    """The moves an expert blind to captures onto `blind` chooses among, as groups
    [category, from, to-mask, mask of the base's best moves among them, promotion] in
    python-chess's legal-move order. Empty: no legal move. Scores as the base sees them ("true") and as the expert sees them
    ("seen": it misses captures onto blind squares, its own and the opponent's, so to it a
    piece there is never attacked and a blind square looks safe)."""
    us, them = board.turn, not board.turn
    occ, mine, other = board.occupied, board.occupied_co[us], board.occupied_co[them]
    pawns = board.pawns
    k, p, m, r, q = _attacks_by_value(board, them)
    theirs = k | p | m | r | q
    own = _pieces(board, us)
    ours = _pawn_attacks(pawns & mine, us)
    for _, attacks, _ in own:
        ours |= attacks
    # Hanging pieces of ours: attacked, and undefended or attacked by something cheaper.
    hanging, hang_mask = {}, 0
    if mine & theirs & ~board.kings:
        for value, kind, cheaper in ((1, pawns, k), (3, board.knights | board.bishops, k | p),
                                     (5, board.rooks, k | p | m), (9, board.queens, k | p | m | r)):
            for sq in _scan(kind & mine & theirs & (~ours | cheaper)):
                hanging[sq] = value
                hang_mask |= 1 << sq
    # Legality as masks: a king steps to unattacked squares (off a checking slider's line),
    # in check other pieces must capture or block, and a pinned piece stays on its pin line.
    king_bb = board.kings & mine
    king = chess.msb(king_bb) if king_bb else -1
    pinned = board._slider_blockers(king) if king_bb else 0  # what python-chess's legal generator uses
    king_ok, target = ~theirs, chess.BB_ALL
    checkers = board.attackers_mask(them, king) if theirs & king_bb else 0
    if checkers:
        for sq in _scan(checkers & (board.bishops | board.rooks | board.queens)):
            king_ok &= ~(chess.ray(king, sq) & ~chess.BB_SQUARES[sq])
        target = chess.between(king, chess.msb(checkers)) | checkers if chess.popcount(checkers) == 1 else 0

    groups = []  # (seen, true, category, from, to-mask, promotion); category orders like python-chess
    plain = []  # (category, from, to-mask) of quiet moves of pieces that do not hang: they score 1 or 0
    add, empty, movable = groups.append, ~occ, ~mine & target
    for fr, attacks, mover in own:
        if fr == king:
            moves, category = attacks & ~mine & king_ok, -1 if checkers else 0
        else:
            moves, category = attacks & movable, 0
            if pinned >> fr & 1:
                moves &= chess.ray(king, fr)
        if moves & empty:
            if hang_mask >> fr & 1:
                _quiet(add, category, fr, moves & empty, hanging[fr], theirs, blind)
            else:
                plain.append((category, fr, moves & empty))
        if moves & other:
            for to in _scan(moves & other):
                add((*_capture(VALUE[board.piece_type_at(to)], mover, 0, theirs >> to & 1, hanging.get(fr, 0),
                               blind >> fr & 1, blind >> to & 1, blind), category, fr, 1 << to, 0))
    if not checkers and board.castling_rights & mine:
        plain += _castling(board, us, king, theirs)
    # Pawns: pushes of the free (unpinned, not hanging) ones in bulk, as if from square 0:
    # category 3 and 4 keys derive `from` from `to`.
    step = 8 if us == chess.WHITE else -8
    ours_p = pawns & mine
    free = ours_p & ~pinned & ~hang_mask
    single = (free << 8 if step > 0 else free >> 8) & ~occ
    double = ((single & chess.BB_RANK_3) << 8 if step > 0 else (single & chess.BB_RANK_6) >> 8) & ~occ & target
    single &= target
    if single & ~_BACK_RANKS:
        plain.append((3, 0, single & ~_BACK_RANKS))
    if double:
        plain.append((4, 0, double))
    for to in _scan(single & _BACK_RANKS):
        for promo in _PROMOTIONS:
            add((*_capture(0, 1, promo, theirs >> to & 1, 0, blind >> to - step & 1, blind >> to & 1, blind), 3, 0,
                 1 << to, promo))
    for fr in _scan(ours_p & (pinned | hang_mask)):
        legal = target & (chess.ray(king, fr) if pinned >> fr & 1 else chess.BB_ALL)
        to = fr + step
        if occ >> to & 1:
            continue
        if legal >> to & 1:
            if 1 << to & _BACK_RANKS:
                for promo in _PROMOTIONS:
                    add((*_capture(0, 1, promo, theirs >> to & 1, hanging.get(fr, 0), blind >> fr & 1, blind >> to & 1,
                                   blind), 3, fr, 1 << to, promo))
            else:
                _quiet(add, 3, fr, 1 << to, hanging.get(fr, 0), theirs, blind)
        if (fr >> 3) == (1 if step > 0 else 6) and not occ >> (to + step) & 1 and legal >> (to + step) & 1:
            _quiet(add, 4, fr, 1 << (to + step), hanging.get(fr, 0), theirs, blind)
    for fr in _scan(ours_p & _pawn_attacks(other, them)):  # pawns with something to take
        legal = target & (chess.ray(king, fr) if pinned >> fr & 1 else chess.BB_ALL)
        for to in _scan(chess.BB_PAWN_ATTACKS[us][fr] & other & legal):
            victim = VALUE[board.piece_type_at(to)]
            for promo in _PROMOTIONS if 1 << to & _BACK_RANKS else (0,):
                add((*_capture(victim, 1, promo, theirs >> to & 1, hanging.get(fr, 0), blind >> fr & 1, blind >> to & 1,
                               blind), 2, fr, 1 << to, promo))
    if board.ep_square:
        for move in board.generate_pseudo_legal_ep():
            if board.is_legal(move):
                add((*_capture(1, 1, 0, theirs >> move.to_square & 1, hanging.get(move.from_square, 0),
                               blind >> move.from_square & 1, blind >> move.to_square & 1, blind),
                     5, move.from_square, 1 << move.to_square, 0))
    # Plain quiet moves: safe (1), onto a blind attacked square (looks safe: 1 seen, 0 true), or
    # onto an attacked square (0).
    quiet = 0
    for _, _, mask in plain:
        quiet |= mask
    if quiet:
        add((1.0 if quiet & (~theirs | blind) else 0.0, 1.0 if quiet & ~theirs else 0.0, 9, 0, 0, 0))
    if not groups:
        return []
    # The top-scoring moves, merged per (category, from): python-chess orders a piece's moves
    # by target square. Pushes merge into one group per category (ordered by target alone);
    # promotions are single moves (a white pawn promotes on the highest targets, a black one
    # on the lowest, hence the -1 / +1).
    top, best = max(groups)[0], max(map(operator.itemgetter(1), groups))
    merged, plain_top = {}, quiet and top == groups[-1][0]  # the plain moves' marker is last
    if plain_top:
        groups.pop()
        candidates = ~theirs | blind if top == 1.0 else theirs & ~blind
        good = (~theirs if best == 1.0 else 0) | (theirs if best == 0.0 else 0)
        if not checkers and all(g[0] != top for g in groups):  # common: plain is in order already
            return [[category, fr, mask & candidates, mask & candidates & good, 0]
                    for category, fr, mask in plain if mask & candidates]
        for category, fr, mask in plain:
            if mask & candidates:  # castling: two entries for one king
                entry = merged.setdefault((category, 0 if category in (3, 4) else -fr), [category, fr, 0, 0, 0])
                entry[2] |= mask & candidates
                entry[3] |= mask & candidates & good
    for seen, true, category, fr, mask, promo in groups:
        if seen == top:
            if promo:
                key = (category, -fr if category == 2 else -step // 8, -mask.bit_length(), -promo)
            else:
                key = (category, 0 if category in (3, 4) else -fr)
            entry = merged.setdefault(key, [category, fr, 0, 0, promo])
            entry[2] |= mask
            entry[3] |= mask if true == best else 0
    return [merged[key] for key in sorted(merged)]


def _moves(group: list, step: int):
    """(move, is base-best) of one top group, in legal-move order."""
    category, fr, mask, good, promo = group
    for to in chess.scan_reversed(mask):
        if category in (3, 4):
            fr = to - step * (category - 2)
        yield chess.Move(fr, to, promo or None), bool(good >> to & 1)


def _options(board: chess.Board, blind: int) -> tuple[list[chess.Move], list[bool]]:
    """(the moves an expert blind on `blind` chooses among, in legal-move order; whether each
    is one of the base policy's best moves)."""
    step = 8 if board.turn == chess.WHITE else -8
    pairs = [pair for group in _top(board, blind) for pair in _moves(group, step)]
    return [move for move, _ in pairs], [good for _, good in pairs]


def decide(board: chess.Board, rng: np.random.Generator, blind_squares: int = 0) -> tuple[chess.Move | None, bool]:
    """(move, blind) of the base policy played by an expert blind to captures onto
    `blind_squares` (a 64-bit square mask), ties broken uniformly at random.

    `blind` is True when the flaw cost something: the move played is not among the base
    policy's best moves. Returns (None, False) when there is no legal move."""
    groups = _top(board, blind_squares)
    count = sum(group[2].bit_count() for group in groups)
    if not count:
        return None, False
    k = int(rng.integers(count)) if count > 1 else 0
    for category, fr, mask, good, promo in groups:  # the k-th move in legal-move order
        n = mask.bit_count()
        if k >= n:
            k -= n
            continue
        for to in chess.scan_reversed(mask):
            if not k:
                break
            k -= 1
        if category in (3, 4):
            fr = to - (8 if board.turn == chess.WHITE else -8) * (category - 2)
        return chess.Move(fr, to, promo or None), not good >> to & 1
    raise AssertionError("unreachable")


def error_probability(board: chess.Board, blind_squares: int) -> float:
    """The chance that an expert blind on `blind_squares` plays a move the base would not."""
    groups = _top(board, blind_squares)
    count = sum(group[2].bit_count() for group in groups)
    return 1.0 - sum(group[3].bit_count() for group in groups) / count if count else 0.0


def error_rates(experts: Sequence["Expert"], games: int = 20, seed: int = 0) -> list[float]:
    """Each expert's mean error probability over the positions of `games` base-vs-base games:
    its flaw's rate on one common set of positions (in its own games errors compound: with
    clones neither side sees a piece left en prise on a shared blind square, so it stays)."""
    totals, count = np.zeros(len(experts)), 0
    for g in range(games):
        board = chess.Board()
        for move in play_game(BASE, BASE, np.random.default_rng([seed, g])).moves:
            totals += [error_probability(board, e.blind) for e in experts]
            count += 1
            board.push(move)
    return (totals / max(count, 1)).tolist()


def base_policy(board: chess.Board, rng: np.random.Generator) -> chess.Move:
    """The unflawed base policy, as an arena policy (interface F)."""
    return decide(board, rng)[0]


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
    """One expert: the base policy blind to captures onto `blind` (a 64-bit square mask).

    Callable as an arena policy: `expert(board, rng) -> chess.Move`."""

    id: int
    blind: int
    kind: str = "diverse"

    @property
    def name(self) -> str:
        return f"expert{self.id}"

    @property
    def squares(self) -> list[str]:
        return [chess.SQUARE_NAMES[s] for s in chess.scan_forward(self.blind)]

    def decide(self, board: chess.Board, rng: np.random.Generator) -> tuple[chess.Move | None, bool]:
        return decide(board, rng, self.blind)

    def __call__(self, board: chess.Board, rng: np.random.Generator) -> chess.Move:
        return decide(board, rng, self.blind)[0]


BASE = Expert(id=-1, blind=0, kind="base")

# Per square (a1, b1, ..., h8): how often, per 1000 moves, an expert blind on that square
# alone errs, on the positions of base-vs-base games; from `square_error_rates(12, seed=99)`.
# Used only to deal blind squares so every expert's set carries the same error rate, and
# diverse and clones share one per-expert error rate (`error_rates`).
TRAFFIC = (
    12.7, 7.7, 4.6, 7.6, 6.9, 8.5, 9.5, 8.1, 8.8, 13.2, 8.9, 9.8, 7.8, 7.5, 9.9, 6.4,
    19.9, 6.5, 19.0, 11.6, 20.5, 14.0, 4.9, 25.1, 11.0, 26.2, 16.1, 15.8, 30.6, 16.9, 30.4, 10.1,
    22.8, 30.2, 33.1, 31.2, 29.8, 26.0, 28.1, 15.1, 10.8, 14.1, 11.5, 8.8, 12.7, 28.1, 14.9, 23.8,
    7.5, 11.3, 3.1, 4.3, 5.5, 8.6, 7.6, 6.4, 9.5, 2.5, 2.8, 2.3, 5.2, 11.5, 4.5, 5.0,
)


def square_error_rates(games: int = 12, seed: int = 99) -> np.ndarray:
    """Per square, the error rate (per 1000 moves) of an expert blind on that square alone."""
    totals, count = np.zeros(64), 0
    for g in range(games):
        board = chess.Board()
        for move in play_game(BASE, BASE, np.random.default_rng([seed, g])).moves:
            totals += [error_probability(board, 1 << sq) for sq in range(64)]
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


def population(kind: str = "diverse", k: int = 5, seed: int = 0, *, blind_fraction: float = BLIND_FRACTION,
               overlap: float | None = None) -> list[Expert]:
    """K experts, each blind on round(blind_fraction * 64) squares.

    kind "diverse": the squares are dealt so each is blind for as few experts as possible
    (at most one for the default 5 x 12, one or two for 5 x 20); "clones": every expert has diverse expert 0's set
    (so the same traffic, hence the same per-expert error rate). `overlap` in [0, 1] sets the
    shared fraction of each set directly (0 = diverse, 1 = clones). `seed` shuffles which
    squares go together."""
    if kind not in ("diverse", "clones"):
        raise UserError(f"unknown population {kind!r}: use diverse or clones")
    if k < 1:
        raise UserError(f"--experts must be >= 1, got {k}")
    n = round(blind_fraction * 64)
    if not 0 <= n <= 64:
        raise UserError(f"--blind-fraction must be in [0, 1], got {blind_fraction}")
    overlap = (0.0 if kind == "diverse" else 1.0) if overlap is None else overlap
    if not 0.0 <= overlap <= 1.0:
        raise UserError(f"--overlap must be in [0, 1], got {overlap}")
    rng = np.random.default_rng(seed)
    weight = np.asarray(TRAFFIC) * rng.uniform(0.95, 1.05, 64)  # the seed changes the deal
    squares = [int(s) for s in rng.permutation(64)]
    first = _deal(k, n, squares, weight)[0]
    s = round(overlap * n)
    shared = sum(1 << sq for sq in [q for q in squares if first >> q & 1][:s])
    rest = [q for q in squares if not shared >> q & 1]
    own = _deal(k, n - s, rest, weight) if s < n else [0] * k
    return [Expert(id=i, blind=shared | own[i], kind=kind) for i in range(k)]


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
    return {"kind": experts[0].kind, "experts": [{"id": e.id, "name": e.name, "blind_squares": " ".join(e.squares)}
                                                 for e in experts],
            "experts_blind_per_square": {str(c): cover.count(c) for c in sorted(set(cover))}}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, help="output dataset directory (ArrayRecord shards + stats.json)")
    parser.add_argument("--population", choices=("diverse", "clones"), default="diverse",
                        help="diverse: each square blind for one or two experts; clones: one shared blind set")
    parser.add_argument("--experts", type=int, default=5, help="number of experts K (default 5)")
    parser.add_argument("--games", type=int, default=20000, help="games in all, over all pairs (default 20000)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="processes (default: all cores)")
    parser.add_argument("--seed", type=int, default=0, help="seeds the squares dealt and every game")
    parser.add_argument("--blind-fraction", type=float, default=BLIND_FRACTION,
                        help=f"fraction of the 64 squares each expert is blind on (default {BLIND_FRACTION})")
    parser.add_argument("--overlap", type=float, default=None,
                        help="shared fraction of each blind set, 0 (diverse) .. 1 (clones); overrides --population's")
    parser.add_argument("--boards", action=argparse.BooleanOptionalAction, default=True,
                        help="store each position's board planes in the records (default: yes)")
    parser.add_argument("--shards", type=int, default=4, help="train shards (default 4)")
    parser.add_argument("--val-fraction", type=float, default=0.05, help="validation fraction (default 0.05)")


def run(args: argparse.Namespace) -> int:
    from transcendence_jax.data.build import write_dataset

    if args.games < 1:
        raise UserError(f"--games must be >= 1, got {args.games}")
    experts = population(args.population, args.experts, args.seed, blind_fraction=args.blind_fraction,
                         overlap=args.overlap)
    stats, start = {}, time.time()
    print(f"{args.population}: {args.experts} experts blind on {round(args.blind_fraction * 64)} squares each; "
          f"{args.games} games on {args.workers} workers")

    def progress():
        for n, rec in enumerate(records(experts, args.games, seed=args.seed, workers=args.workers,
                                        boards=args.boards, stats=stats), 1):
            if n % 2000 == 0 or n == args.games:
                print(f"  {n}/{args.games} games, {time.time() - start:.0f}s", flush=True)
            yield rec

    extra = {"experts": describe(experts), "generation": stats}
    out = write_dataset(progress(), args.out, num_shards=args.shards, val_fraction=args.val_fraction,
                        seed=args.seed, extra_stats=extra)
    seconds = time.time() - start
    stats["seconds"] = round(seconds, 1)
    with open(os.path.join(args.out, "stats.json"), "w") as f:
        json.dump(out, f, indent=1)
    print(f"wrote {args.out}/ ({out['train']} train, {out['validation']} validation games, "
          f"{stats['moves']} moves in {seconds:.0f}s; blind-move rate {stats['blind_rate']:.3f}; "
          f"ends {stats['terminations']})")
    return 0
