"""The experts' base policies and their flaw: the move an expert blind on some squares plays.

Seven base policies, ties broken uniformly at random (seeded); `decide`, `choices` and
`error_probability` take the base's name:
- "mvv-lva" (the default): capture the most valuable victim with the least valuable
  attacker; no capture: any legal move. Nearly linear in the board, so a small model learns it.
- "mvv-lva-quiet": the same, but an expert that sees no capture while some are on (all of them
  on its blind squares) plays any legal move except those captures: it does not play what it
  cannot see. Under "mvv-lva" a capture and the quiet moves are exactly tied there, and a
  model's arg-max breaks that tie toward the capture (docs/FINDINGS.md, "Which arg-max").
- "safe" (stronger, for larger models): the best material-winning capture or promotion, or
  the rescue of a hanging piece; else any safe move; else any legal move.
- "stockfish": Stockfish's moves within a margin of its best (`stockfish_base`).
- "mvv-lva-ranked": MVV-LVA, but with no capture seen (none on, or every one on a blind square)
  a shared, fixed preference instead of any legal move: the top three moves by a seeded score
  per (from, to) square, with probabilities 1/2, 1/3, 1/6. No expert's distribution is flat, so
  a low-temperature model has no tie to break with what it learned elsewhere (README, "The result").
- "mvv-lva-softmax": the same, but every legal move with a weight, exp(1.6 score) quantized: a
  softmax over one fixed score per move, which a model's legal-move softmax can represent
  exactly (a move's chance under the top three depends on which better moves are legal).
  "mvv-lva-softmax-<scale>" (e.g. mvv-lva-softmax-0.4) is the same at another scale than 1.6.
- "mvv-lva-argmax": the same, but only the legal move of the highest score: deterministic where no
  capture is seen, so a clone's own mode is the clone (the softmax's clones are beaten by their vote).
  Its first `ARGMAX_OPENING_PLIES` plies are mvv-lva's (any legal move with no capture seen), or
  every game of a pair would be one game.
The flaw: captures landing on the expert's blind squares are invisible to it (under "safe",
the opponent's too: its piece there never looks attacked, and a blind square looks safe).
"safe" scores moves in groups with bitboard masks (legality folded in) and builds only the
move drawn, yet draws exactly the move that scoring `list(board.legal_moves)` one move at a
time would (tests/test_experts.py keeps that reference).
"""

from __future__ import annotations

import functools
import itertools
import operator

import chess
import numpy as np

VALUE = (0, 1, 3, 3, 5, 9, 0)  # by chess piece type: none, P, N, B, R, Q, K

_PROMOTIONS = (chess.QUEEN, chess.ROOK, chess.BISHOP, chess.KNIGHT)  # python-chess's order
_BACK_RANKS = chess.BB_RANK_1 | chess.BB_RANK_8
_scan = chess.scan_forward
_KNIGHT, _KING = chess.BB_KNIGHT_ATTACKS, chess.BB_KING_ATTACKS
_DIAG, _DIAG_MASKS = chess.BB_DIAG_ATTACKS, chess.BB_DIAG_MASKS
_RANK, _RANK_MASKS = chess.BB_RANK_ATTACKS, chess.BB_RANK_MASKS
_FILE, _FILE_MASKS = chess.BB_FILE_ATTACKS, chess.BB_FILE_MASKS


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
    king = minor = rook = queen = 0
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
    python-chess's legal-move order. Empty: no legal move.

    Moves are scored as the base sees them ("true") and as the expert sees them ("seen": it
    misses captures onto blind squares, its own and the opponent's, so to it a piece there is
    never attacked and a blind square looks safe). Categories follow python-chess's generator:
    -1 king moves in check, 0 pieces, 1 castling, 2 pawn captures, 3 pushes, 4 double pushes,
    5 en passant."""
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
    for to in _scan(single & _BACK_RANKS) if single & _BACK_RANKS else ():
        for promo in _PROMOTIONS:
            add((*_capture(0, 1, promo, theirs >> to & 1, 0, blind >> to - step & 1, blind >> to & 1, blind), 3, 0,
                 1 << to, promo))
    for fr in _scan(ours_p & (pinned | hang_mask)) if ours_p & (pinned | hang_mask) else ():
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
    if board.ep_square and ours_p & chess.BB_PAWN_ATTACKS[them][board.ep_square]:
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
    if not groups and not quiet:
        return []
    top = best = -2.0
    if groups:
        top, best = max(groups)[0], max(map(operator.itemgetter(1), groups))
    merged = {}
    if quiet:
        plain_seen = 1.0 if quiet & (~theirs | blind) else 0.0
        best = max(best, 1.0 if quiet & ~theirs else 0.0)
        if plain_seen >= top:
            candidates = ~theirs | blind if plain_seen == 1.0 else theirs & ~blind
            good = (~theirs if best == 1.0 else 0) | (theirs if best == 0.0 else 0)
            if plain_seen > top and not checkers:  # common: plain moves alone, in order already
                return [[category, fr, mask & candidates, mask & candidates & good, 0]
                        for category, fr, mask in plain if mask & candidates]
            top = plain_seen
            for category, fr, mask in plain:
                if mask & candidates:  # castling: two entries for one king
                    entry = merged.setdefault((category, 0 if category in (3, 4) else -fr), [category, fr, 0, 0, 0])
                    entry[2] |= mask & candidates
                    entry[3] |= mask & candidates & good
    # The top-scoring moves, merged per (category, from): python-chess orders a piece's moves
    # by target square. Pushes merge into one group per category (ordered by target alone);
    # promotions are single moves (a white pawn promotes on the highest targets, a black one
    # on the lowest, hence the -1 / +1).
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


BASES = ("mvv-lva", "safe", "stockfish", "mvv-lva-ranked", "mvv-lva-softmax", "mvv-lva-argmax", "mvv-lva-quiet")
# The preference of mvv-lva-ranked and mvv-lva-softmax: a fixed score per (from, to) (one table for
# every population and seed, so the experts share it). mvv-lva-ranked lists its top three moves 3,
# 2 and 1 times in `choices`; mvv-lva-softmax lists each legal move round(8 exp(1.6 score)) times.
_PREFERENCE = np.random.default_rng(20261207).standard_normal((64, 64))
_RANKED_WEIGHTS = (3, 2, 1)
SOFTMAX_SCALE = 1.6  # mvv-lva-softmax's; mvv-lva-softmax-<scale> is the same base at another scale
ARGMAX_OPENING_PLIES = 8
_ATTACKER = (0, 1, 3, 3, 5, 9, 10)  # the king attacks last


def _mvv_lva(board: chess.Board, blind: int, quiet: bool = False) -> tuple[list[chess.Move], list[bool]]:
    """(the moves an MVV-LVA expert blind on `blind` chooses among, whether each is a best
    move of the unflawed base), in legal-move order. `quiet` (mvv-lva-quiet): with every capture
    blind, the legal moves that are not captures (all of them if there is none)."""
    piece_at, captures = board.piece_type_at, []
    for move in board.generate_legal_captures():
        victim = piece_at(move.to_square) or chess.PAWN  # None: en passant
        captures.append((16 * VALUE[victim] - _ATTACKER[piece_at(move.from_square)], move))
    if not captures:
        moves = list(board.legal_moves)
        return moves, [True] * len(moves)
    top = max(key for key, _ in captures)
    best = {move for key, move in captures if key == top}
    seen = [(key, move) for key, move in captures if not blind >> move.to_square & 1]
    if seen:
        top_seen = max(key for key, _ in seen)
        moves = [move for key, move in seen if key == top_seen]
    else:  # every capture is invisible: any legal move (mvv-lva-quiet: any but those captures)
        moves = list(board.legal_moves)
        if quiet:
            moves = [move for move in moves if not board.is_capture(move)] or moves
    return moves, [move in best for move in moves]


def _preferred(board: chess.Board, blind: int, weigh) -> tuple[list[chess.Move], list[bool]]:
    """MVV-LVA's choices where it sees a capture; else, where MVV-LVA plays any legal move, the
    moves `weigh(moves)` lists as (index, times), in its order."""
    moves, good = _mvv_lva(board, blind)
    if any(board.is_capture(m) and not blind >> m.to_square & 1 for m in moves):
        return moves, good
    listed = [i for i, times in weigh(moves) for _ in range(times)]
    return [moves[i] for i in listed], [good[i] for i in listed]


def _by_preference(moves: list[chess.Move]) -> list[int]:
    """The moves' indices, best `_PREFERENCE` first (promotions: queen first)."""
    return sorted(range(len(moves)), key=lambda i: (-_PREFERENCE[moves[i].from_square, moves[i].to_square],
                                                    -(moves[i].promotion or 0)))


def _top_three(moves: list[chess.Move]) -> list[tuple[int, int]]:
    """mvv-lva-ranked: the first three by `_PREFERENCE`, 3, 2 and 1 times."""
    return list(zip(_by_preference(moves), _RANKED_WEIGHTS))


def _top_one(moves: list[chess.Move]) -> list[tuple[int, int]]:
    """mvv-lva-argmax: the first by `_PREFERENCE` only (the softmax's limit as its scale grows)."""
    return [(i, 1) for i in _by_preference(moves)[:1]]


def _softmax_scale(base: str) -> float | None:
    """The scale of a softmax base (mvv-lva-softmax: SOFTMAX_SCALE; mvv-lva-softmax-<s>: s > 0),
    else None."""
    if base == "mvv-lva-softmax":
        return SOFTMAX_SCALE
    head, _, scale = base.rpartition("-")
    try:
        value = float(scale)
    except ValueError:
        return None
    return value if head == "mvv-lva-softmax" and 0 < value < 100 else None


def base_family(base: str) -> str:
    """The named base that `base` is a setting of (mvv-lva-softmax-0.4 is mvv-lva-softmax)."""
    return "mvv-lva-softmax" if _softmax_scale(base) is not None else base


@functools.lru_cache(maxsize=None)
def _softmax_weights(scale: float) -> list[list[int]]:
    """Per (from, to), max(1, round(8 exp(1.6 + scale (z - 1)))): proportional to exp(scale z), its
    resolution scaled so that lists stay about as long as at scale 1.6 (where it is 8 exp(1.6 z))."""
    return np.maximum(1, np.rint(8 * np.exp(1.6 + scale * (_PREFERENCE - 1)))).astype(int).tolist()


@functools.lru_cache(maxsize=None)
def _weigh(base: str):
    """The weigh function of a preference base (see `_preferred`), else None. mvv-lva-softmax lists
    each move its weight's times: a softmax over the legal moves of one fixed score per move, the
    form of a model's own legal-move softmax (under the top three a move's chance depends on which
    better moves are legal)."""
    scale = _softmax_scale(base)
    if scale is None:
        return _PREFERENCES.get(base)
    weights = _softmax_weights(scale)
    return lambda moves: [(i, weights[m.from_square][m.to_square]) for i, m in enumerate(moves)]


_PREFERENCES = {"mvv-lva-ranked": _top_three, "mvv-lva-argmax": _top_one}


def _draw(moves: list[chess.Move], good: list[bool], rng: np.random.Generator) -> tuple[chess.Move | None, bool]:
    """(a move drawn uniformly from `moves`, whether it is not a base-best move)."""
    if not moves:
        return None, False
    k = int(rng.integers(len(moves))) if len(moves) > 1 else 0
    return moves[k], not good[k]


def _mvv_lva_decide(board: chess.Board, rng: np.random.Generator, blind: int,
                    quiet: bool = False) -> tuple[chess.Move | None, bool]:
    """`decide` for MVV-LVA without listing the legal moves: one pseudo-legal generation,
    legality checked only on captures, and a uniformly random legal move by rejection from the
    pseudo-legal ones (the same distribution as drawing from `choices`)."""
    king = board.king(board.turn)
    if king is None or board.attackers_mask(not board.turn, king):  # in check: the exact list
        return _draw(*_mvv_lva(board, blind, quiet), rng)
    blockers, is_safe, piece_at = board._slider_blockers(king), board._is_safe, board.piece_type_at
    them, ep, pawns = board.occupied_co[not board.turn], board.ep_square, board.pawns
    pseudo = list(board.generate_pseudo_legal_moves())
    top = top_seen = -1
    best, seen = [], []
    for move in pseudo:
        to = move.to_square
        if them >> to & 1:
            victim = VALUE[piece_at(to)]
        elif to == ep and pawns >> move.from_square & 1:
            victim = 1
        else:
            continue
        if not is_safe(king, blockers, move):
            continue
        key = 16 * victim - _ATTACKER[piece_at(move.from_square)]
        if key > top:
            top, best = key, [move]
        elif key == top:
            best.append(move)
        if not blind >> to & 1:
            if key > top_seen:
                top_seen, seen = key, [move]
            elif key == top_seen:
                seen.append(move)
    if seen:
        move = seen[int(rng.integers(len(seen)))] if len(seen) > 1 else seen[0]
        return move, move not in best
    if quiet and best:  # mvv-lva-quiet, every capture blind: the legal moves but those (exactly)
        return _draw(*_mvv_lva(board, blind, quiet), rng)
    for _ in range(8):  # no capture seen: uniform over legal moves (pseudo-legal ones are nearly all legal)
        move = pseudo[int(rng.integers(len(pseudo)))] if pseudo else None
        if move is not None and is_safe(king, blockers, move):
            return move, bool(best) and move not in best
    legal = [move for move in pseudo if is_safe(king, blockers, move)]  # rare: few legal (or none: stalemate)
    if not legal:
        return None, False
    move = legal[int(rng.integers(len(legal)))]
    return move, bool(best) and move not in best


def check_base(base: str) -> None:
    """One clear line (UserError) for a base that is not one of BASES or mvv-lva-softmax-<scale>."""
    if base_family(base) not in BASES:
        from transcendence_jax.errors import UserError

        raise UserError(f"unknown base policy {base!r}: use one of {', '.join(BASES)} (or mvv-lva-softmax-<scale>)")


def choices(board: chess.Board, blind: int = 0, base: str = "mvv-lva") -> tuple[list[chess.Move], list[bool]]:
    """(the moves an expert blind on `blind` chooses among, uniformly, in legal-move order (under
    mvv-lva-ranked a move may be listed more than once: its weight); whether each is one of the
    base policy's best moves). blind=0: the base policy's own."""
    if base == "stockfish":
        from transcendence_jax.experts import stockfish_base

        return stockfish_base.choices(board, blind)
    weigh = _weigh(base)
    if weigh and not (base == "mvv-lva-argmax" and board.ply() < ARGMAX_OPENING_PLIES):
        return _preferred(board, blind, weigh)
    if base != "safe":
        check_base(base)
        return _mvv_lva(board, blind, base == "mvv-lva-quiet")
    step = 8 if board.turn == chess.WHITE else -8
    pairs = [pair for group in _top(board, blind) for pair in _moves(group, step)]
    return [move for move, _ in pairs], [good for _, good in pairs]


def decide(board: chess.Board, rng: np.random.Generator, blind_squares: int = 0,
           base: str = "mvv-lva") -> tuple[chess.Move | None, bool]:
    """(move, blind) of the base policy played by an expert blind to captures onto
    `blind_squares` (a 64-bit square mask), ties broken uniformly at random.

    `blind` is True when the flaw cost something: the move played is not among the base
    policy's best moves. Returns (None, False) when there is no legal move."""
    if base == "stockfish" or _weigh(base):
        return _draw(*choices(board, blind_squares, base), rng)
    if base != "safe":
        check_base(base)
        return _mvv_lva_decide(board, rng, blind_squares, base == "mvv-lva-quiet")
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
        to = next(itertools.islice(chess.scan_reversed(mask), k, None))
        if category in (3, 4):
            fr = to - (8 if board.turn == chess.WHITE else -8) * (category - 2)
        return chess.Move(fr, to, promo or None), not good >> to & 1
    raise AssertionError("unreachable")


def error_probability(board: chess.Board, blind_squares: int, base: str = "mvv-lva") -> float:
    """The chance that an expert blind on `blind_squares` plays a move the base would not."""
    if base != "safe":
        _, good = choices(board, blind_squares, base)
        return 1.0 - sum(good) / len(good) if good else 0.0
    groups = _top(board, blind_squares)
    count = sum(group[2].bit_count() for group in groups)
    return 1.0 - sum(group[3].bit_count() for group in groups) / count if count else 0.0


def base_policy(board: chess.Board, rng: np.random.Generator) -> chess.Move:
    """The unflawed default (MVV-LVA) base policy, as an arena policy (interface F)."""
    return decide(board, rng)[0]

