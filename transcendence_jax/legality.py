"""The chess rules on the device: which move tokens a position allows, from its board planes.

Jitted, batched, with no python-chess in the loop: training's legal-move loss mask and the
sampler's move ranking run inside their jitted steps. `pseudo_legal`: from the board planes
(data.boards codes) and the side to move, a [B, V] superset of the legal moves (own piece, its
geometry, a clear path, pawn rules; pins, checks, castling rights and the en-passant square are
left out): training's mask. `candidates` is the same test on each position's own pieces' moves
only (16 pieces x 27 tokens, not V): the sampler ranks its moves with it. `king_safe` finishes
the job for the sampler's few top candidates: whether each leaves its king attacked
(python-chess's check test, on the device), and which are castling or en passant (left to
python-chess on the host).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from transcendence_jax.data.tokenizer import FROM_SQUARE, NUM_SPECIAL, PROMOTION, TO_SQUARE, VOCAB_SIZE, move_squares


def _geometry(V: int):
    """can_PV[piece code, token]: the token's geometry is a move of that piece (castling and
    pawn double steps included, capture rules left to the board); between_SV: the squares a
    slider's move passes over. Tokens >= VOCAB_SIZE (padding) and special tokens: never."""
    n = VOCAB_SIZE
    df = (TO_SQUARE % 8 - FROM_SQUARE % 8)[NUM_SPECIAL:]
    dr = (TO_SQUARE // 8 - FROM_SQUARE // 8)[NUM_SPECIAL:]
    fr, tr, pr = (FROM_SQUARE // 8)[NUM_SPECIAL:], (TO_SQUARE // 8)[NUM_SPECIAL:], PROMOTION[NUM_SPECIAL:]
    adf, adr = np.abs(df), np.abs(dr)
    plain = pr == 0
    knight = ((adf == 1) & (adr == 2)) | ((adf == 2) & (adr == 1))
    diag, line = (adf == adr) & (adf > 0), (adf == 0) ^ (adr == 0)
    king = (np.maximum(adf, adr) == 1) | ((adr == 0) & (adf == 2) & (FROM_SQUARE[NUM_SPECIAL:] % 8 == 4)
                                          & ((fr == 0) | (fr == 7)))
    can = np.zeros((13, V), bool)
    for color, fwd, home, last in ((0, 1, 1, 7), (6, -1, 6, 0)):
        pawn = (((adf == 0) & ((dr == fwd) | ((dr == 2 * fwd) & (fr == home)))) | ((adf == 1) & (dr == fwd)))
        can[color + 1, NUM_SPECIAL:n] = pawn & ((tr == last) == ~plain)
        for code, ok in ((2, knight), (3, diag), (4, line), (5, diag | line), (6, king)):
            can[color + code, NUM_SPECIAL:n] = ok & plain
    between = np.zeros((64, V), bool)
    for t in np.nonzero(diag | line)[0]:
        sf, st = int(FROM_SQUARE[NUM_SPECIAL + t]), int(TO_SQUARE[NUM_SPECIAL + t])
        step = int(np.sign(st % 8 - sf % 8) + 8 * np.sign(st // 8 - sf // 8))
        for sq in range(sf + step, st, step):
            between[sq, NUM_SPECIAL + t] = True
    return can, between


@functools.lru_cache(maxsize=None)
def _pseudo_tables(V: int):
    """Per token (padded to V): a bit per piece code that can make its move; its from and to
    squares, as indices and as one-hot [64, V] matrices; the squares a slider passes over as
    two 32-bit halves of a bitboard; its to-rank; whether it keeps its file (a pawn's push)."""
    can_PV, between_SV = _geometry(V)
    can_bits_V = (can_PV.astype(np.int32) << np.arange(13)[:, None]).sum(0).astype(np.int32)
    tok = np.arange(min(V, VOCAB_SIZE))
    from_V, to_V = np.zeros(V, np.int32), np.zeros(V, np.int32)
    from_V[tok], to_V[tok] = FROM_SQUARE[tok], TO_SQUARE[tok]
    to_SV, from_SV = move_squares(V)
    bit_S = np.uint32(1) << (np.arange(64) % 32).astype(np.uint32)
    between_lo_V = (between_SV[:32].astype(np.uint32) * bit_S[:32, None]).sum(0, dtype=np.uint32)
    between_hi_V = (between_SV[32:].astype(np.uint32) * bit_S[32:, None]).sum(0, dtype=np.uint32)
    straight_V = np.zeros(V, bool)
    straight_V[tok] = TO_SQUARE[tok] % 8 == FROM_SQUARE[tok] % 8
    return can_bits_V, (from_V, to_V), (from_SV, to_SV), bit_S, between_lo_V, between_hi_V, to_V // 8, straight_V


def _pseudo_rules(planes_B64, white_B, piece, dest, tables):
    """The pseudo-legal test of moves given the piece on each one's from and to squares (piece,
    dest: [B, N] codes) and each one's table entries (`_pseudo_tables` order, [N] or [B, N])."""
    can_bits, bit_S, between_lo, between_hi, to_rank, straight = tables
    occupied_B64 = jnp.where(planes_B64 > 0, bit_S, jnp.uint32(0))
    lo_B, hi_B = occupied_B64[:, :32].sum(1, dtype=jnp.uint32), occupied_B64[:, 32:].sum(1, dtype=jnp.uint32)
    white = white_B[:, None]
    own = lambda p: jnp.where(white, (p >= 1) & (p <= 6), p >= 7)
    enemy = lambda p: jnp.where(white, p >= 7, (p >= 1) & (p <= 6))
    ok = own(piece) & ~own(dest) & ((can_bits >> piece) & 1).astype(bool)
    ok &= ((lo_B[:, None] & between_lo) | (hi_B[:, None] & between_hi)) == 0  # nothing in the way
    pawn = (piece == 1) | (piece == 7)
    ep_rank_B = jnp.where(white_B, 5, 2)[:, None]  # where an en-passant capture lands
    pawn_ok = jnp.where(straight, dest == 0, enemy(dest) | ((dest == 0) & (to_rank == ep_rank_B)))
    return ok & (~pawn | pawn_ok)


def pseudo_legal(planes_B64, white_B, V: int):
    """[B, V] bool, a superset of each position's legal moves (training's legal-move loss mask).
    The piece rules are one bit test and a clear path one test of the occupied squares'
    bitboard. The pieces on each move's squares are read by one-hot matmuls (gathers: XLA:CPU
    lays them out transposed in a training step and computes the mask three times over)."""
    can_bits_V, _, onehot_SV, bit_S, between_lo_V, between_hi_V, to_rank_V, straight_V = _pseudo_tables(V)
    piece_BV, dest_BV = ((planes_B64.astype(jnp.float32) @ m_SV).astype(jnp.int32) for m_SV in onehot_SV)
    return _pseudo_rules(planes_B64, white_B, piece_BV, dest_BV,
                         (can_bits_V, bit_S, between_lo_V, between_hi_V, to_rank_V, straight_V))


@functools.lru_cache(maxsize=None)
def _piece_moves(V: int) -> np.ndarray:
    """[64, 13, M]: the move tokens whose geometry a piece (code) on a square (from) can make,
    padded with token 0 (no move); M = 27 (a queen in the centre)."""
    can_PV, _ = _geometry(V)
    by_piece = [np.nonzero(can)[0] for can in can_PV]
    lists = [[toks[FROM_SQUARE[toks] == sq] for toks in by_piece] for sq in range(64)]
    table = np.zeros((64, 13, max(len(t) for row in lists for t in row)), np.int32)
    for sq, row in enumerate(lists):
        for p, toks in enumerate(row):
            table[sq, p, :len(toks)] = toks
    return table


MAX_PIECES = 16  # a side's pieces in a chess position: `candidates` ranks the moves of this many


def num_candidates(V: int) -> int:
    """Entries a position gets from `candidates`: 16 pieces x the most moves a piece has (27)."""
    return MAX_PIECES * _piece_moves(V).shape[-1]


def candidates(planes_B64, white_B, V: int):
    """The sampler's sparse `pseudo_legal`: ([B, 16 * M] tokens, [B, 16 * M] bool) every move token
    of the side to move's pieces (up to 16; token 0 pads) and whether it is pseudo-legal. Every
    legal move is among the tokens, in 432 entries a position instead of V = 2048: the sampler's
    noise, mask and top-k run over these, not over [B, V]."""
    can_bits_V, (_, to_V), _, bit_S, between_lo_V, between_hi_V, to_rank_V, straight_V = _pseudo_tables(V)
    B = planes_B64.shape[0]
    planes = planes_B64.astype(jnp.int32)
    own_B64 = jnp.where(white_B[:, None], (planes >= 1) & (planes <= 6), planes >= 7)
    # The own pieces' squares (a float top-k: XLA:CPU sorts integer keys much more slowly), then 0
    # (empty: no moves) for the slots past the last piece.
    key_B16, square_B16 = jax.lax.top_k(jnp.where(own_B64, 64.0 - jnp.arange(64), 0.0), MAX_PIECES)
    piece_B16 = jnp.where(key_B16 > 0, jnp.take_along_axis(planes, square_B16, axis=1), 0)
    table = _piece_moves(V)
    tokens_BN = jnp.asarray(table)[square_B16, piece_B16].reshape(B, -1)
    piece_BN = jnp.repeat(piece_B16, table.shape[-1], axis=1)
    dest_BN = jnp.take_along_axis(planes, jnp.asarray(to_V)[tokens_BN], axis=1)
    at = lambda t_V: jnp.asarray(t_V)[tokens_BN]
    ok_BN = _pseudo_rules(planes_B64, white_B, piece_BN, dest_BN,
                          (at(can_bits_V), bit_S, at(between_lo_V), at(between_hi_V), at(to_rank_V), at(straight_V)))
    return tokens_BN, ok_BN & (tokens_BN > 0)


@functools.lru_cache(maxsize=None)
def _attack_tables():
    """Per square s (64 stands for off the board: read as empty): the squares a knight or king attacks
    from s (symmetric: also the squares it is attacked from), the squares of a black and of a
    white pawn that attack s, and the 8 rays outward from s (4 straight, then 4 diagonal)."""
    off = lambda f, r: r * 8 + f if 0 <= f < 8 and 0 <= r < 8 else 64
    knight, king = np.full((64, 8), 64, np.int32), np.full((64, 8), 64, np.int32)
    pawn_black, pawn_white = np.full((64, 2), 64, np.int32), np.full((64, 2), 64, np.int32)
    rays = np.full((64, 8, 7), 64, np.int32)
    steps = [(1, 0), (-1, 0), (0, 1), (0, -1), (1, 1), (1, -1), (-1, 1), (-1, -1)]
    jumps = [(1, 2), (2, 1), (-1, 2), (-2, 1), (1, -2), (2, -1), (-1, -2), (-2, -1)]
    for sq in range(64):
        f, r = sq % 8, sq // 8
        knight[sq] = [off(f + df, r + dr) for df, dr in jumps]
        king[sq] = [off(f + df, r + dr) for df, dr in steps]
        pawn_black[sq] = [off(f - 1, r + 1), off(f + 1, r + 1)]  # a black pawn takes one rank down
        pawn_white[sq] = [off(f - 1, r - 1), off(f + 1, r - 1)]
        for d, (df, dr) in enumerate(steps):
            rays[sq, d] = [off(f + df * i, r + dr * i) for i in range(1, 8)]
    return knight, king, pawn_black, pawn_white, rays


def king_safe(planes_B64, white_B, tokens_BK):
    """For K candidate move tokens a position (pseudo-legal ones): ([B, K] the move leaves its
    side's king unattacked, [B, K] the move is castling or en passant). The first is
    python-chess's `not is_into_check` for every other move (tested move by move); the host asks
    python-chess about the second kind (castling through check, the en-passant square)."""
    knight_S8, king_S8, pawn_black_S2, pawn_white_S2, rays_S87 = map(jnp.asarray, _attack_tables())
    B, K = tokens_BK.shape
    # (tokens past the move table, e.g. padding ranked at -inf, read the last move: never used)
    frm_BK, to_BK = (jnp.take(jnp.asarray(t), tokens_BK, mode="clip") for t in (FROM_SQUARE, TO_SQUARE))
    planes_B65 = jnp.concatenate([planes_B64.astype(jnp.int32), jnp.zeros((B, 1), jnp.int32)], axis=1)
    row_B11 = (jnp.arange(B) * 65)[:, None, None]
    at = lambda sq_BKN: planes_B65.reshape(-1)[row_B11 + sq_BKN.reshape(B, K, -1)].reshape(sq_BKN.shape)
    piece_BK, dest_BK = at(frm_BK), at(to_BK)
    enemy = jnp.where(white_B, 6, 0)[:, None]  # enemy piece codes: enemy + 1 (pawn) ... enemy + 6 (king)
    own_king = jnp.where(white_B, 6, 12)[:, None]
    moves_king_BK = piece_BK == own_king
    special_BK = ((moves_king_BK & (jnp.abs(to_BK - frm_BK) == 2))
                  | (((piece_BK == 1) | (piece_BK == 7)) & ((to_BK - frm_BK) % 8 != 0) & (dest_BK == 0)))
    king_BK = jnp.where(moves_king_BK, to_BK, jnp.argmax(planes_B64 == own_king, axis=1)[:, None])

    def after(sq_BKN):  # the pieces on these squares once the move is made
        frm, to = (x.reshape(B, K, *[1] * (sq_BKN.ndim - 2)) for x in (frm_BK, to_BK))
        return jnp.where(sq_BKN == frm, 0, jnp.where(sq_BKN == to, piece_BK.reshape(frm.shape), at(sq_BKN)))

    pawn_squares_BK2 = jnp.where(white_B[:, None, None], pawn_black_S2[king_BK], pawn_white_S2[king_BK])
    attacked_BK = ((after(knight_S8[king_BK]) == enemy[..., None] + 2).any(-1)
                   | (after(king_S8[king_BK]) == enemy[..., None] + 6).any(-1)
                   | (after(pawn_squares_BK2) == enemy[..., None] + 1).any(-1))
    ray_BK87 = after(rays_S87[king_BK])
    first_BK8 = jnp.take_along_axis(ray_BK87, jnp.argmax(ray_BK87 > 0, axis=-1)[..., None], axis=-1)[..., 0]
    slider_8 = jnp.where(jnp.arange(8) < 4, 4, 3)  # rook on the straight rays, bishop on the diagonals
    attacked_BK |= ((first_BK8 == enemy[..., None] + slider_8) | (first_BK8 == enemy[..., None] + 5)).any(-1)
    return ~attacked_BK, special_BK
