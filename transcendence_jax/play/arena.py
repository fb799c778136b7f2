"""Many games at once between pluggable players; every finished game goes to PGN and JSONL.

Each round the arena collects every game waiting on a move, groups the requests by backend and
asks each backend once, all backends concurrently in threads (players.py: the Stockfish pool
searches while the model samples).

Results are appended as games end, and `play_games` skips game ids already in games.jsonl:
an interrupted run resumes with only the unfinished games.

Openings (`play_games(openings=...)`): N random plies, a list of FENs / move lists / boards, or an
opening book file (.pgn or .epd: play/openings.py). Games 2k and 2k+1 of a pair share opening k
with colours swapped; a list or book is played in order, opening k % len(book).
"""

from __future__ import annotations

import concurrent.futures
import datetime
import os
from typing import Callable, Iterable, Sequence, Union

import chess
import chess.pgn
import numpy as np

from transcendence_jax import jsonl
from transcendence_jax.data.records import SCORE_OF_RESULT
from transcendence_jax.errors import UserError
from transcendence_jax.play.openings import opening_name, position_problems, read_openings
from transcendence_jax.play.players import GameState, Opening, Pairing, random_policy, seed_of

Openings = Union[int, str, os.PathLike, Sequence[Union[Opening, chess.Board]], None]  # what play_games takes


def round_robin(players: Sequence, games_per_pair: int, *, headers: dict | None = None) -> list[Pairing]:
    """Every pair of players meets `games_per_pair` times, colours alternating."""
    pairings = []
    for i, a in enumerate(players):
        for b in players[i + 1:]:
            for g in range(games_per_pair):
                white, black = (a, b) if g % 2 == 0 else (b, a)
                extra = dict(headers or {}, OpeningKey=g // 2)
                pairings.append(Pairing(f"{a.name}-vs-{b.name}-{g:03d}", white, black, extra))
    return pairings


def grid(players: Sequence, opponents: Sequence, games: int, *, headers: dict | None = None) -> list[Pairing]:
    """Each player (e.g. the model at each temperature) meets each opponent `games` times,
    colours alternating. Game 2k and 2k+1 share opening k, for every player and opponent."""
    pairings = []
    for p in players:
        for o in opponents:
            for g in range(games):
                white, black = (p, o) if g % 2 == 0 else (o, p)
                extra = dict(headers or {}, Player=p.name, Opponent=o.name, OpeningKey=g // 2)
                if getattr(p, "temperature", None) is not None:
                    extra["Temperature"] = p.temperature
                pairings.append(Pairing(f"{p.name}-vs-{o.name}-{g:03d}", white, black, extra))
    return pairings


def opening_board(openings: Openings, key, seed: int) -> chess.Board:
    """The start of a game: the standard position, N random plies, or one of a list of openings
    (an int key, a pairing's OpeningKey, picks opening key % len in order; any other key by hash)."""
    if openings is None or openings == 0:
        return chess.Board()
    if isinstance(openings, (str, os.PathLike)):
        openings = read_openings(openings)
    if isinstance(openings, int):
        for attempt in range(100):
            rng = np.random.default_rng(seed_of("opening", seed, key, attempt))
            board = chess.Board()
            for _ in range(openings):
                board.push(random_policy(board, rng))
                if board.is_game_over():
                    break
            if not board.is_game_over():
                return board
        raise UserError(f"no {openings}-ply random opening without a finished game; use fewer plies")
    if not len(openings):
        raise UserError("an empty list of openings: give at least one, or None for the start position")
    index = key if isinstance(key, (int, np.integer)) else seed_of("opening", seed, key)
    opening = openings[index % len(openings)]
    if isinstance(opening, chess.Board):
        return opening.copy()
    if isinstance(opening, str) and "/" in opening:
        try:
            board = chess.Board(opening)
        except ValueError as e:
            raise UserError(f"opening {opening!r}: not a FEN ({e})") from None
        if not board.is_valid():
            raise UserError(f"opening {opening!r}: not a legal chess position ({position_problems(board)})")
        return board
    board = chess.Board()
    for move in opening.split() if isinstance(opening, str) else opening:
        try:
            board.push_uci(move) if len(move) >= 4 and move[1].isdigit() else board.push_san(move)
        except ValueError:
            raise UserError(f"opening {opening!r}: move {move!r} is not legal; give UCI or SAN moves") from None
    return board


class _Game:
    def __init__(self, game_id, white, black, headers, board):
        self.game_id, self.white, self.black, self.headers, self.board = game_id, white, black, headers, board
        self.start_ply = len(board.move_stack)
        self.start_fen = board.root().fen() if board.move_stack else board.fen()
        self.opening = opening_name(board)
        self.illegal = {chess.WHITE: 0, chess.BLACK: 0}
        self.moves = {chess.WHITE: 0, chess.BLACK: 0}
        self.result = self.termination = None

    def to_move(self):
        return self.white if self.board.turn == chess.WHITE else self.black

    def finish(self, result: str, termination: str) -> None:
        self.result, self.termination = result, termination


def outcome(board: chess.Board) -> tuple[str, str] | None:
    """(result, termination) as board.outcome(claim_draw=False) gives them, None while the game
    goes on; the cheap tests first: one legal move settles mate and stalemate, and a fivefold
    repetition needs 16 reversible plies."""
    if not any(board.generate_legal_moves()):
        if board.is_check():
            return ("0-1" if board.turn == chess.WHITE else "1-0"), "checkmate"
        return ("1/2-1/2", "insufficient_material") if board.is_insufficient_material() else ("1/2-1/2", "stalemate")
    if board.is_insufficient_material():
        return "1/2-1/2", "insufficient_material"
    if board.halfmove_clock >= 150:
        return "1/2-1/2", "seventyfive_moves"
    if board.halfmove_clock >= 16 and board.is_fivefold_repetition():
        return "1/2-1/2", "fivefold_repetition"
    return None


def _check_end(game: _Game, max_plies: int, adjudicate) -> None:
    ended = outcome(game.board)  # mate, stalemate, material, 75-move, fivefold
    if ended is not None:
        game.finish(*ended)
    elif len(game.board.move_stack) >= max_plies:
        result = adjudicate(game.board) if adjudicate else None  # None: the adjudicator leaves it a draw
        game.finish(result or "1/2-1/2", "adjudicated" if result else "max_plies")


def _record(game: _Game) -> dict:
    score = SCORE_OF_RESULT[game.result]
    extra = {k: v for k, v in game.headers.items()}
    return dict(game_id=game.game_id, white=game.white.name, black=game.black.name, result=game.result,
                score_white=score, plies=len(game.board.move_stack), termination=game.termination,
                illegal_white=game.illegal[chess.WHITE], illegal_black=game.illegal[chess.BLACK],
                moves_white=game.moves[chess.WHITE], moves_black=game.moves[chess.BLACK],
                opening_plies=game.start_ply, start_fen=game.start_fen, opening=game.opening,
                moves=" ".join(m.uci() for m in game.board.move_stack),  # from start_fen, opening included
                **{_snake(k): v for k, v in extra.items()})


def _snake(key: str) -> str:
    return "".join("_" + c.lower() if c.isupper() and i else c.lower() for i, c in enumerate(key))


_PGN_TERMINATION = {"max_plies": "adjudication", "adjudicated": "adjudication", "forfeit": "rules infraction"}


def _pgn(game: _Game, record: dict) -> str:
    pgn = chess.pgn.Game.from_board(game.board)
    pgn.headers.update(Event="transcendence-jax arena", Site="-",
                       Date=datetime.date.today().strftime("%Y.%m.%d"), Round="-",
                       White=game.white.name, Black=game.black.name, Result=game.result)
    pgn.headers["GameId"] = game.game_id
    pgn.headers["Opening"] = game.opening
    for key, value in game.headers.items():
        pgn.headers[key] = str(value)
    pgn.headers["IllegalWhite"] = str(record["illegal_white"])
    pgn.headers["IllegalBlack"] = str(record["illegal_black"])
    pgn.headers["Termination"] = _PGN_TERMINATION.get(game.termination, "normal")  # the PGN standard's words
    pgn.headers["TerminationDetail"] = game.termination  # ours, as in games.jsonl
    pgn.headers["PlyCount"] = str(record["plies"])
    return str(pgn) + "\n\n"


def load_results(out_dir: str) -> list[dict]:
    """Finished games in out_dir/games.jsonl (a torn last line is dropped: jsonl.read)."""
    return jsonl.read(os.path.join(out_dir, "games.jsonl"), repair=True)


def _drop_unrecorded_pgn(out_dir: str, done: set[str]) -> None:
    """Keep games.pgn in step with games.jsonl (a crash may fall between the two appends)."""
    path = os.path.join(out_dir, "games.pgn")
    if not os.path.exists(path):
        return
    keep, stale = [], False
    with open(path) as f:
        while (g := chess.pgn.read_game(f)) is not None:
            if g.headers.get("GameId") in done:
                keep.append(str(g) + "\n\n")
            else:
                stale = True
    if stale:
        jsonl.rewrite(path, keep)


def _append_text(path: str, text: str) -> None:
    """Append to a file, flushed; a failed write (a full disk) names the file, as a failed open does."""
    try:
        with open(path, "a") as f:
            f.write(text)
    except OSError as e:
        e.filename = e.filename or path
        raise


def play_games(pairings: Iterable[Pairing], *, out_dir: str, max_plies: int = 178,
               adjudicate: Callable[[chess.Board], str | None] | None = None,
               openings: Openings = None,
               seed: int = 0, progress: bool = True, max_active: int | None = None,
               pgn: bool = True) -> list[dict]:
    """Play every pairing not yet in out_dir/games.jsonl, all at once; returns all results.

    Each result row holds the game's UCI moves from its start FEN; `pgn` also appends every
    game to games.pgn as it ends (its SAN export is the costly part of recording a game).
    max_plies: the paper's 89-move cap (counting opening plies), scored a draw unless
    `adjudicate(board) -> "1-0" | "0-1" | "1/2-1/2"` says otherwise. openings: None, N random
    plies, a list of FENs / move lists / boards, or a .pgn / .epd opening book (opening k of the list
    for the pairings with OpeningKey k, in order; by a hash of the game id without one).
    max_active: at most this many games in flight (e.g. the model's cache slots); default all.
    A backend with a `release(game_id)` method is told when each of its games ends.
    """
    if max_active is not None and max_active < 1:
        raise UserError(f"max_active={max_active}: at least one game must be in flight")
    os.makedirs(out_dir, exist_ok=True)
    pairings = list(pairings)
    ids = [p[0] for p in pairings]
    if len(set(ids)) != len(ids):
        raise UserError("pairings repeat a game id; every game needs its own id")
    if isinstance(openings, (str, os.PathLike)):
        openings = read_openings(openings)  # once, not once a game
    previous = load_results(out_dir)
    done = {r["game_id"] for r in previous}
    _drop_unrecorded_pgn(out_dir, done)
    games = [_Game(gid, w, b, dict(h or {}), opening_board(openings, (h or {}).get("OpeningKey", gid), seed))
             for gid, w, b, h in pairings if gid not in done]
    bar = None
    if progress and games:
        from transcendence_jax import progress as progress_bar
        bar = progress_bar.bar(len(pairings), initial=len(pairings) - len(games), desc="games", unit="game")
    new = []
    pgn_path = os.path.join(out_dir, "games.pgn") if pgn else None
    games_path = os.path.join(out_dir, "games.jsonl")
    queue = games[::-1]
    active: list[_Game] = []
    executor = concurrent.futures.ThreadPoolExecutor(max(1, len({id(p.backend) for g in games
                                                                  for p in (g.white, g.black)})))
    try:
        while active or queue:
            while queue and (max_active is None or len(active) < max_active):
                active.append(queue.pop())
                _check_end(active[-1], max_plies, adjudicate)  # an opening may already be at the cap
            waiting = {}
            for game in active:
                if game.result is None:
                    player = game.to_move()
                    waiting.setdefault(id(player.backend), (player.backend, []))[1].append(game)
            # Backends get the live boards, read-only: no move is pushed until every backend answered.
            futures = {key: executor.submit(backend.choose, [(g.to_move(), GameState(g.game_id, g.board))
                                                              for g in gs])
                       for key, (backend, gs) in waiting.items()}
            for key, (_, gs) in waiting.items():
                for game, choice in zip(gs, futures[key].result()):
                    color = game.board.turn
                    game.illegal[color] += choice.illegal
                    if choice.move is None or not game.board.is_legal(choice.move):
                        if choice.move is not None:
                            game.illegal[color] += 1
                        game.finish("0-1" if color == chess.WHITE else "1-0", "forfeit")
                        continue
                    game.board.push(choice.move)
                    game.moves[color] += 1
                    _check_end(game, max_plies, adjudicate)
            still = []
            for game in active:
                if game.result is None:
                    still.append(game)
                    continue
                record = _record(game)
                if pgn_path is not None:
                    _append_text(pgn_path, _pgn(game, record))
                jsonl.append(games_path, [record])  # written last: it marks the game done
                new.append(record)
                for backend in {id(p.backend): p.backend for p in (game.white, game.black)}.values():
                    if hasattr(backend, "release"):
                        backend.release(game.game_id)
                if bar is not None:
                    bar.update(1)
            active = still
    finally:
        executor.shutdown(wait=True)
        if bar is not None:
            bar.close()
    return previous + new
