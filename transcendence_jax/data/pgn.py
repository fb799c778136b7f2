"""PGN movetext -> moves: the SAN words of a game and a fast `board.push_san`.

Ingestion parses every move of every kept game, so this avoids python-chess's PGN reader
(no GameNode tree) and, for the common SAN moves, its legal-move generation: `play_san`
finds the one piece that can make the move with bitboards and updates the board in place;
anything unusual falls back to `board.parse_san` + `board.push`.
"""

from __future__ import annotations

import re

import chess

_COMMENT_RE = re.compile(r"\{[^}]*\}")
_VARIATION_RE = re.compile(r"\([^()]*\)")
_LINE_COMMENT_RE = re.compile(r";[^\n]*")
_NAG_RE = re.compile(r"\$\d+")
_TERMINATIONS = {"1-0", "0-1", "1/2-1/2", "*"}


def movetext_sans(movetext: str) -> tuple[list[str], bool]:
    """The SAN words of a movetext and whether it ended with a termination marker."""
    s = movetext
    if "{" in s:
        s = _COMMENT_RE.sub(" ", s)
    while "(" in s:
        s2 = _VARIATION_RE.sub(" ", s)
        if s2 == s:
            break
        s = s2
    if ";" in s:
        s = _LINE_COMMENT_RE.sub(" ", s)
    if "$" in s:
        s = _NAG_RE.sub(" ", s)
    sans = []
    for word in s.split():
        if word in _TERMINATIONS:
            return sans, True
        if word[0].isdigit() and "." in word:
            word = word.rsplit(".", 1)[1]  # "12." "12..." "12.e4" (the paper's transcripts)
            if not word:
                continue
        word = word.rstrip("!?")
        if word:
            sans.append(word)
    return sans, False


_SAN_RE = re.compile(r"^([NBRQK])?([a-h])?([1-8])?(x)?([a-h][1-8])([+#])?$")
_SAN_CACHE: dict[str, tuple | None] = {}
_PIECE_OF = {"K": chess.KING, "N": chess.KNIGHT, "B": chess.BISHOP, "R": chess.ROOK, "Q": chess.QUEEN, None: chess.PAWN}


def _san_parts(san: str) -> tuple | None:
    """(piece type, from-square mask, to square, capture) of a plain SAN, or None for the
    moves left to `board.parse_san` (castling, promotions, anything unusual)."""
    m = _SAN_RE.match(san)
    if m is None:
        return None
    piece, file, rank, capture, to, _ = m.groups()
    mask = chess.BB_ALL
    if file:
        mask &= chess.BB_FILES[ord(file) - ord("a")]
    if rank:
        mask &= chess.BB_RANKS[int(rank) - 1]
    to_sq = chess.parse_square(to)
    if piece is None and (chess.square_rank(to_sq) in (0, 7) or (not capture and (file or rank))
                          or (capture and not file)):
        return None
    return _PIECE_OF[piece], mask, to_sq, bool(capture)


def _piece_sources(board: chess.Board, piece: int, ours: int, to: int) -> int:
    """The squares in `ours` from which a knight / bishop / rook / queen / king attacks `to`."""
    occ = board.occupied
    if piece == chess.KNIGHT:
        return ours & chess.BB_KNIGHT_ATTACKS[to]
    if piece == chess.KING:
        return ours & chess.BB_KING_ATTACKS[to]
    att = 0
    if piece != chess.ROOK:
        att |= chess.BB_DIAG_ATTACKS[to][chess.BB_DIAG_MASKS[to] & occ]
    if piece != chess.BISHOP:
        att |= (chess.BB_RANK_ATTACKS[to][chess.BB_RANK_MASKS[to] & occ]
                | chess.BB_FILE_ATTACKS[to][chess.BB_FILE_MASKS[to] & occ])
    return ours & att


def play_san(board: chess.Board, san: str) -> chess.Move:
    """`board.push_san(san)`, with a fast path for the common case.

    When one piece of the named type can reach the square, our side is not in check and the
    piece is not pinned, a pseudo-legal non-king move is legal (a king move: when its square
    is not attacked once the king has left): no legal-move generation is needed, and the
    board is updated in place without python-chess's undo stack (never popped here).
    Everything else (castling, promotions, en passant, ambiguity, errors) goes through
    `parse_san` + `push`, which raise ValueError on bad moves."""
    try:
        parts = _SAN_CACHE[san]
    except KeyError:
        parts = _SAN_CACHE[san] = _san_parts(san) if len(_SAN_CACHE) < 100_000 else None
    if parts is not None:
        piece, mask, to, capture = parts
        us = board.turn
        ours = board.pieces_mask(piece, us) & mask
        to_bb = chess.BB_SQUARES[to]
        theirs = board.occupied_co[not us]
        if piece == chess.PAWN:
            if capture:  # exd5: from the named file, one rank behind; en passant goes the slow way
                cands = ours & chess.BB_PAWN_ATTACKS[not us][to] if theirs & to_bb else 0
            else:
                step = -8 if us == chess.WHITE else 8
                one = to + step
                if board.occupied & to_bb:
                    cands = 0
                elif ours & chess.BB_SQUARES[one]:
                    cands = chess.BB_SQUARES[one]
                elif (chess.square_rank(to) == (3 if us == chess.WHITE else 4)
                      and not board.occupied & chess.BB_SQUARES[one]):
                    cands = ours & chess.BB_SQUARES[one + step]
                else:
                    cands = 0
        elif board.occupied_co[us] & to_bb or capture != bool(theirs & to_bb):
            cands = 0  # onto our own piece, or an "x" that doesn't match: let parse_san decide
        else:
            cands = _piece_sources(board, piece, ours, to)
        if cands and not cands & (cands - 1):
            frm = cands.bit_length() - 1
            if piece == chess.KING:  # legal when the square is not attacked once the king has left
                legal = not board.attackers_mask(not us, to, board.occupied ^ chess.BB_SQUARES[frm])
            else:
                king = board.king(us)
                legal = (king is not None and not board.attackers_mask(not us, king)
                         and (not chess.BB_RAYS[king][frm] or board.pin_mask(us, frm) == chess.BB_ALL))
            if legal:
                board.castling_rights &= ~(chess.BB_SQUARES[frm] | to_bb)  # a rook moved or was taken
                if piece == chess.KING:
                    board.castling_rights &= ~(chess.BB_RANK_1 if us == chess.WHITE else chess.BB_RANK_8)
                board.ep_square = (frm + to) // 2 if piece == chess.PAWN and abs(to - frm) == 16 else None
                board._remove_piece_at(frm)
                board._set_piece_at(to, piece, us)
                board.turn = not us
                return chess.Move(frm, to)
    move = board.parse_san(san)
    board.push(move)
    return move
