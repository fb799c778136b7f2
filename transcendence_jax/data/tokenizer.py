"""The one move table: tokens <-> moves, and the paper's 32-character tokenizer.

Move tokens: the fixed table of all 1968 moves a piece can make on an empty board
(queen-like and knight-like moves from every square, plus the four promotions of every
pawn move onto the last rank), after five special tokens. A game is
`[BOS, move_1, ..., move_n]`, optionally followed by its result token. Everything that maps a
move to a token or back imports it from here: the checked `move_to_token` / `token_to_move`
for user input, the unchecked `move_token` and `MOVE_OF_TOKEN` for hot loops, the per-token
squares for the device's legality rules.
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

# Per token: its chess.Move (None for the special tokens), from and to squares and promotion
# piece (0: none); and the token at index (from * 64 + to) * 8 + promotion (0: no such move).
MOVE_OF_TOKEN: tuple[chess.Move | None, ...] = (None,) * NUM_SPECIAL + tuple(map(chess.Move.from_uci, MOVES))
FROM_SQUARE = np.array([m.from_square if m else 0 for m in MOVE_OF_TOKEN], np.int32)
TO_SQUARE = np.array([m.to_square if m else 0 for m in MOVE_OF_TOKEN], np.int32)
PROMOTION = np.array([(m.promotion or 0) if m else 0 for m in MOVE_OF_TOKEN], np.int32)
_TOKEN_AT = [0] * (64 * 64 * 8)  # a list: python list indexing beats a dict of tuples or numpy
for _token in range(NUM_SPECIAL, VOCAB_SIZE):
    _TOKEN_AT[(FROM_SQUARE[_token] * 64 + TO_SQUARE[_token]) * 8 + PROMOTION[_token]] = _token


class TokenizeError(ValueError):
    """A move or token that has no counterpart in the table."""


def move_squares(V: int = VOCAB_SIZE) -> np.ndarray:
    """[2, 64, V] float32 one-hot: each move token's to-square (row 0) and from-square (row 1);
    special tokens and a padded vocabulary's extra tokens have none. The model's board head and
    the device's legality rules read the pieces on a move's squares through it (matmuls)."""
    table = np.zeros((2, 64, V), np.float32)
    tok = np.arange(NUM_SPECIAL, min(V, VOCAB_SIZE))
    table[0, TO_SQUARE[tok], tok] = table[1, FROM_SQUARE[tok], tok] = 1.0
    return table


def move_to_token(move: chess.Move | str) -> int:
    uci = move if isinstance(move, str) else move.uci()
    try:
        tok = _TOKEN_OF[uci]
    except KeyError:
        raise TokenizeError(f"move {uci!r} is not in the 1968-move table") from None
    if tok < NUM_SPECIAL:
        raise TokenizeError(f"{uci!r} is a special token, not a move")
    return tok


def move_token(move: chess.Move) -> int:
    """`move_to_token` for the hot loops (a legal move is always in the table): no UCI string."""
    return _TOKEN_AT[(move.from_square * 64 + move.to_square) * 8 + (move.promotion or 0)]


def legal_move_tokens(board: chess.Board) -> np.ndarray:
    """Token ids of the legal moves in `board` (int32)."""
    table = _TOKEN_AT
    return np.array([table[(m.from_square * 64 + m.to_square) * 8 + (m.promotion or 0)]
                     for m in board.generate_legal_moves()], np.int32)


def legal_mask(board: chess.Board, vocab_size: int = VOCAB_SIZE) -> np.ndarray:
    """Boolean mask over the (possibly padded) vocabulary of the legal moves in `board`."""
    mask = np.zeros(vocab_size, bool)
    mask[legal_move_tokens(board)] = True
    return mask


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
