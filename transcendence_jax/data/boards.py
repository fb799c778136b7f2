"""The one board-planes routine: a position as the piece code on each of its 64 squares.

Codes: 0 empty, 1-6 white pawn, knight, bishop, rook, queen, king, 7-12 black (a1 = 0 ... h8 =
63). The model's optional board input and the device's legality rules read them. `board_planes`
reads a python-chess board; `apply_move_planes` updates planes by one move, the incremental
form that the pipeline (`game_planes`, from tokens) and the sampler (`planes_after`, from moves)
use so they never replay a chess.Board.
"""

from __future__ import annotations

from typing import Iterable, Sequence

import chess
import numpy as np

from transcendence_jax.data.tokenizer import FROM_SQUARE, PROMOTION, TO_SQUARE

NUM_PIECE_CODES = 13  # empty + 6 white + 6 black

_SQUARE_BITS = np.arange(64, dtype=np.uint64)
_PIECE_CODES = np.arange(1, NUM_PIECE_CODES, dtype=np.uint8)[:, None]


def board_planes(board: chess.Board) -> np.ndarray:
    """The piece code on each of the 64 squares, uint8, read from the 12 piece bitboards."""
    masks = np.array([board.pieces_mask(pt, color) for color in (chess.WHITE, chess.BLACK)
                      for pt in chess.PIECE_TYPES], np.uint64)
    bits = ((masks[:, None] >> _SQUARE_BITS) & np.uint64(1)).astype(np.uint8)
    return (bits * _PIECE_CODES).sum(0, dtype=np.uint8)


def apply_move_planes(sq, frm: int, to: int, promo: int = 0) -> None:
    """Update 64 piece codes (a list, bytearray or array) in place for the move frm -> to:
    castling moves the rook too, en passant takes the pawn passed, a promotion changes the piece."""
    piece = int(sq[frm])
    kind = piece if piece <= 6 else piece - 6  # 1 pawn ... 6 king
    if kind == 1 and (frm - to) % 8 and not sq[to]:  # en passant: the pawn beside `to`
        sq[to - 8 if piece == 1 else to + 8] = 0
    elif kind == 6 and abs(to - frm) == 2:  # castling: the rook jumps over the king
        rook_from, rook_to = (frm + 3, frm + 1) if to > frm else (frm - 4, frm - 1)
        sq[rook_to], sq[rook_from] = sq[rook_from], 0
    sq[to] = piece if not promo else promo + (piece - kind)
    sq[frm] = 0


def game_boards(moves: Sequence[chess.Move], board: chess.Board | None = None) -> np.ndarray:
    """Board planes before the first move and after every move: [len(moves) + 1, 64], by
    python-chess. Row t is the board the model sees at token t (BOS, then after move t)."""
    board = chess.Board() if board is None else board.copy(stack=False)
    out = np.empty((len(moves) + 1, 64), np.uint8)
    out[0] = board_planes(board)
    for t, move in enumerate(moves, 1):
        board.push(move)
        out[t] = board_planes(board)
    return out


_START = board_planes(chess.Board()).tolist()
_FROM_TO_PROMO = list(zip(FROM_SQUARE.tolist(), TO_SQUARE.tolist(), PROMOTION.tolist()))


def game_planes(tokens: Sequence[int]) -> np.ndarray:
    """`game_boards` of a game's `[BOS, move tokens...]` from the start position, without
    python-chess (the pipeline's form: the planes updated move by move)."""
    sq = list(_START)
    out = [sq[:]]
    for tok in tokens[1:]:
        apply_move_planes(sq, *_FROM_TO_PROMO[tok])
        out.append(sq[:])
    return np.asarray(out, np.uint8)


def planes_after(planes: bytes, moves: Sequence[chess.Move]) -> list[bytes]:
    """The planes after each move, from the planes (64 bytes) before the first. Bytes, not
    arrays: the sampler makes one per game and ply, where an array cost more than the update."""
    out, squares = [], bytearray(planes)
    for move in moves:
        apply_move_planes(squares, move.from_square, move.to_square, move.promotion or 0)
        out.append(bytes(squares))
    return out


def planes_array(planes: Iterable[bytes]) -> np.ndarray:
    """[n, 64] uint8 from n planes as bytes."""
    return np.frombuffer(b"".join(planes), np.uint8).reshape(-1, 64)


def next_planes(planes_64: np.ndarray, move: chess.Move) -> np.ndarray:
    """The board planes after `move`, from the planes before it."""
    return planes_array(planes_after(np.asarray(planes_64, np.uint8).tobytes(), [move]))[0]
