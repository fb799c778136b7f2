"""Tokenizers: one token per UCI move (the default), or the paper's 32 characters.

Move tokens: the fixed table of all 1968 moves a piece can make on an empty board
(queen-like and knight-like moves from every square, plus the four promotions of every
pawn move onto the last rank), after five special tokens. A game is
`[BOS, move_1, ..., move_n]`, optionally followed by its result token.

Board planes: the piece on each of the 64 squares (0 empty, 1-6 white PNBRQK, 7-12 black),
the input of the model's optional board features.
"""

from __future__ import annotations

from typing import Iterable, Sequence

import chess
import numpy as np

PAD, BOS, WHITE_WINS, BLACK_WINS, DRAW = 0, 1, 2, 3, 4
SPECIAL_TOKENS = ("<pad>", "<bos>", "1-0", "0-1", "1/2-1/2")
RESULT_TOKEN = {"1-0": WHITE_WINS, "0-1": BLACK_WINS, "1/2-1/2": DRAW}
NUM_SPECIAL = len(SPECIAL_TOKENS)


def _all_moves() -> list[str]:
    """The 1968 UCI moves of searchless_chess's action table, in a fixed order."""
    moves = []
    for sq in chess.SQUARES:
        f0, r0 = chess.square_file(sq), chess.square_rank(sq)
        targets = set()
        for df, dr in [(1, 0), (-1, 0), (0, 1), (0, -1), (1, 1), (1, -1), (-1, 1), (-1, -1)]:
            f, r = f0 + df, r0 + dr
            while 0 <= f < 8 and 0 <= r < 8:
                targets.add(chess.square(f, r))
                f, r = f + df, r + dr
        for df, dr in [(1, 2), (2, 1), (-1, 2), (-2, 1), (1, -2), (2, -1), (-1, -2), (-2, -1)]:
            f, r = f0 + df, r0 + dr
            if 0 <= f < 8 and 0 <= r < 8:
                targets.add(chess.square(f, r))
        for to in sorted(targets):
            moves.append(chess.Move(sq, to).uci())
            # Pawn moves onto the last rank (one step, straight or diagonal) promote.
            for last, prev in ((7, 6), (0, 1)):
                if r0 == prev and chess.square_rank(to) == last and abs(chess.square_file(to) - f0) <= 1:
                    moves.extend(chess.Move(sq, to).uci() + p for p in "qrbn")
    return moves


MOVES: tuple[str, ...] = tuple(_all_moves())
assert len(MOVES) == 1968, len(MOVES)
VOCAB: tuple[str, ...] = SPECIAL_TOKENS + MOVES
VOCAB_SIZE = len(VOCAB)  # 1973; models pad it to a multiple of 128
_TOKEN_OF = {m: i for i, m in enumerate(VOCAB)}


class TokenizeError(ValueError):
    """A move or token that has no counterpart in the table."""


def move_to_token(move: chess.Move | str) -> int:
    uci = move if isinstance(move, str) else move.uci()
    try:
        tok = _TOKEN_OF[uci]
    except KeyError:
        raise TokenizeError(f"move {uci!r} is not in the 1968-move table") from None
    if tok < NUM_SPECIAL:
        raise TokenizeError(f"{uci!r} is a special token, not a move")
    return tok


def token_to_move(token: int) -> chess.Move:
    if not NUM_SPECIAL <= int(token) < VOCAB_SIZE:
        raise TokenizeError(f"token {token} is not a move token")
    return chess.Move.from_uci(VOCAB[int(token)])


def encode_game(moves: Iterable[chess.Move | str], result: str | None = None) -> np.ndarray:
    """`[BOS, move tokens..., (result token)]` as uint16."""
    tokens = [BOS] + [move_to_token(m) for m in moves]
    if result is not None:
        tokens.append(RESULT_TOKEN[result])
    return np.asarray(tokens, dtype=np.uint16)


def decode_game(tokens: Sequence[int]) -> tuple[list[chess.Move], str | None]:
    """Inverse of `encode_game`: (moves, result or None); padding is ignored."""
    moves, result = [], None
    for t in map(int, tokens):
        if t in (PAD, BOS):
            continue
        if t < NUM_SPECIAL:
            result = SPECIAL_TOKENS[t]
            break
        moves.append(token_to_move(t))
    return moves, result


# --- boards ---------------------------------------------------------------------------

NUM_PIECE_CODES = 13  # empty + 6 white + 6 black


_SQUARE_BITS = np.arange(64, dtype=np.uint64)
_PIECE_CODES = np.arange(1, NUM_PIECE_CODES, dtype=np.uint8)[:, None]


def board_planes(board: chess.Board) -> np.ndarray:
    """The piece code on each of the 64 squares (a1=0 ... h8=63), uint8.

    Read from the 12 piece bitboards (2-3x faster than piece_map: the sampler calls it per ply)."""
    masks = np.array([board.pieces_mask(pt, color) for color in (chess.WHITE, chess.BLACK)
                      for pt in chess.PIECE_TYPES], np.uint64)
    bits = ((masks[:, None] >> _SQUARE_BITS) & np.uint64(1)).astype(np.uint8)
    return (bits * _PIECE_CODES).sum(0, dtype=np.uint8)


def apply_move_planes(sq, frm: int, to: int, promo: int = 0) -> None:
    """Update 64 piece codes (a list or an array) in place for the move frm -> to: castling
    moves the rook too, en passant takes the pawn passed, a promotion changes the piece.
    The incremental form of `board_planes` used by the pipeline and the sampler."""
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
    """Board planes before the first move and after every move: [len(moves) + 1, 64].

    Row t is the board the model sees at token t (BOS, then the board after move t)."""
    board = chess.Board() if board is None else board.copy(stack=False)
    out = np.empty((len(moves) + 1, 64), np.uint8)
    out[0] = board_planes(board)
    for t, move in enumerate(moves, 1):
        board.push(move)
        out[t] = board_planes(board)
    return out


def legal_move_tokens(board: chess.Board) -> np.ndarray:
    """Token ids of the legal moves in `board` (int32)."""
    return np.fromiter((_TOKEN_OF[m.uci()] for m in board.legal_moves), np.int32)


def legal_mask(board: chess.Board, vocab_size: int = VOCAB_SIZE) -> np.ndarray:
    """Boolean mask over the (possibly padded) vocabulary of the legal moves in `board`."""
    mask = np.zeros(vocab_size, bool)
    mask[legal_move_tokens(board)] = True
    return mask


# --- the paper's character tokenizer --------------------------------------------------

CHARS = " #+-.0123456789;=BKNOQRabcdefghx"
assert len(CHARS) == 32
_CHAR_ID = {c: i for i, c in enumerate(CHARS)}


def transcript(moves: Sequence[chess.Move], board: chess.Board | None = None) -> str:
    """The paper's transcript: `;1.e4 e5 2.Nf3 Nc6` (no space after the move number)."""
    board = chess.Board() if board is None else board.copy(stack=False)
    parts = []
    for move in moves:
        san = board.san(move)
        if board.turn == chess.WHITE:
            parts.append(f"{board.fullmove_number}.{san}")
        else:
            parts.append(san)
        board.push(move)
    return ";" + " ".join(parts)


def parse_transcript(text: str) -> list[chess.Move]:
    """Inverse of `transcript`: the moves of `;1.e4 e5 2.Nf3 ...`."""
    board, moves = chess.Board(), []
    for word in text.lstrip(";").split():
        san = word.split(".")[-1]
        if not san:
            continue
        move = board.parse_san(san)
        moves.append(move)
        board.push(move)
    return moves


def encode_chars(text: str) -> np.ndarray:
    try:
        return np.asarray([_CHAR_ID[c] for c in text], np.uint8)
    except KeyError as e:
        raise TokenizeError(f"character {e.args[0]!r} is not in the 32-character vocabulary") from None


def decode_chars(ids: Sequence[int]) -> str:
    return "".join(CHARS[int(i)] for i in ids)
