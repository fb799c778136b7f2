"""Opening books: the start positions of a match read from a PGN or EPD file, as engine testers use.

A model at tau 0.001 against a deterministic opponent plays the same game every time from the
start position; a book makes every pair of games start elsewhere. The arena plays opening k of
a book in games 2k and 2k+1 of each pair, colours swapped (`arena.grid`, `arena.round_robin`), so
neither side owes its score to a lopsided opening. `distinct_games` counts what a grid produced.

PGN: each game's main line is one opening (from its FEN header when it has one), kept as moves so
a model reads them as its prompt. EPD: each line is one position (no moves before it: only a
model with board input sees it as it is).
"""

from __future__ import annotations

import os

import chess
import chess.pgn

from transcendence_jax.errors import UserError

BOOK_SUFFIXES = (".pgn", ".epd")


def read_openings(path: str | os.PathLike) -> list[chess.Board]:
    """The book's openings in file order, each the board after the opening (its move stack holds
    the opening's moves from its root position). A bad game or line is an error naming it."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise UserError(f"opening book {path} not found: pass a .pgn or .epd file")
    if not path.lower().endswith(BOOK_SUFFIXES):
        raise UserError(f"opening book {path}: give a .pgn file (one opening a game) or an .epd file (one position "
                        "a line)")
    boards = _read_epd(path) if path.lower().endswith(".epd") else _read_pgn(path)
    if not boards:
        raise UserError(f"opening book {path} holds no openings")
    return boards


def _read_pgn(path: str) -> list[chess.Board]:
    boards = []
    with open(path, encoding="utf-8-sig", errors="replace") as f:
        while (game := chess.pgn.read_game(f)) is not None:
            where = f"opening book {path}, game {len(boards) + 1}"
            if game.errors:
                raise UserError(f"{where}: {game.errors[0]}; fix or remove that game")
            board = game.end().board()
            _check(board, where)
            boards.append(board)
    return boards


def _read_epd(path: str) -> list[chess.Board]:
    boards = []
    with open(path, encoding="utf-8-sig", errors="replace") as f:
        for number, line in enumerate(f, 1):
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            where = f"opening book {path}, line {number}"
            try:
                board, _ = chess.Board.from_epd(line.strip())
            except ValueError as e:
                raise UserError(f"{where}: not an EPD position ({e})") from None
            _check(board, where)
            boards.append(board)
    return boards


def _check(board: chess.Board, where: str) -> None:
    """An opening must be a legal position with a game left to play."""
    if not board.is_valid():
        raise UserError(f"{where}: not a legal chess position ({position_problems(board)})")
    if board.is_game_over():
        raise UserError(f"{where}: the game is already over there ({board.result()}); an opening must leave a game "
                        "to play")


def position_problems(board: chess.Board) -> str:
    """What makes a position invalid, in words (python-chess's status flags)."""
    return ", ".join(f.name.lower().replace("_", " ") for f in chess.Status if f and f in board.status())


def opening_name(board: chess.Board) -> str:
    """How a game's PGN names its opening: the opening's moves in SAN, else the start it was set up from."""
    if board.move_stack:
        return board.root().variation_san(board.move_stack)
    return "start position" if board.fen() == chess.STARTING_FEN else "set-up position (see FEN)"


def distinct_games(results) -> int:
    """How many different games (start position and moves) the result rows hold: a grid whose
    players are all deterministic from the start position plays one game per colour assignment,
    however many it is asked for."""
    return len({(r.get("start_fen"), r["moves"]) for r in results})
