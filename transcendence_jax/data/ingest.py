"""Stream games from PGN (.pgn / .pgn.zst / .pgn.bz2) and Lichess-transcript CSV into GameRecords.

- Monthly Lichess dumps are tens of GB: files are streamed line by line and only a few chunks
  of games are in flight at once (bounded back-pressure, unlike `Pool.imap`, which reads ahead).
- The parent only splits the text on game boundaries; worker processes filter on the headers
  first (the rating cap drops most games before any move is parsed), then parse the movetext
  (`data.pgn`).
- Every input game is either kept or counted under one named reason in `counts["dropped"]`,
  so `kept + sum(dropped) == input_games`. A compressed stream that breaks mid-way is recorded
  in `counts["file_errors"]` (its partial last game counts as "truncated") and the run goes
  on; a file that cannot be opened is a UserError.
"""

from __future__ import annotations

import bz2
import collections
import csv
import dataclasses
import io
import multiprocessing as mp
import os
import re
import sys
import time
from typing import IO, Iterator

import chess
import numpy as np

from transcendence_jax.data import pgn, tokenizer
from transcendence_jax.data.boards import game_boards
from transcendence_jax.data.records import NO_RATING, RESULTS, GameRecord
from transcendence_jax.errors import UserError

DROP_REASONS = (
    "no_headers",  # text that is not a PGN game (garbage between games)
    "variant",  # a Variant header other than standard chess
    "from_position",  # SetUp / FEN header or Variant "From Position"
    "unrated",  # Event says casual / unrated
    "missing_rating",  # WhiteElo or BlackElo absent or "?" while a max_rating cap is set
    "bad_rating",  # a rating that is not a non-negative integer
    "over_max_rating",  # max(WhiteElo, BlackElo) > the cap
    "no_result",  # Result is not 1-0 / 0-1 / 1/2-1/2
    "bad_move",  # an illegal or unparsable move
    "truncated",  # movetext without a termination marker (cut-off file)
    "no_moves",  # zero half-moves
    "too_short",  # fewer half-moves than min_moves
)
CHUNK_GAMES = 256
_STANDARD_VARIANTS = {"", "standard", "chess", "normal"}
_HEADER_RE = re.compile(r'^\[([A-Za-z0-9_]+)\s+"(.*)"\s*\]\s*$', re.M)


@dataclasses.dataclass(frozen=True)
class Filters:
    """Which games to keep. `max_rating=None` keeps every rating, and games without one (engine
    and OTB PGNs), stored as `records.NO_RATING`; a cap keeps only games with both ratings <= it."""

    max_rating: int | None = None
    min_moves: int = 1
    rated_only: bool = True


# --- reading files ----------------------------------------------------------------------


def _base_name(path: str) -> str:
    name = os.path.basename(path).lower()
    for ext in (".zst", ".bz2"):
        if name.endswith(ext):
            return name[: -len(ext)]
    return name


class _ZstdStream(io.RawIOBase):
    """Zstandard frames, decompressed incrementally. Unlike `stream_reader`, a file cut off
    mid-frame raises EOFError instead of silently ending early."""

    def __init__(self, f: IO[bytes]):
        import zstandard

        self._f, self._dctx = f, zstandard.ZstdDecompressor(max_window_size=2**31)
        self._obj, self._in_frame = self._dctx.decompressobj(), False
        self._buf, self._pos = b"", 0

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        while self._pos >= len(self._buf):
            raw = self._f.read(1 << 20)
            if not raw:
                if self._in_frame:
                    raise EOFError("compressed stream ends mid-frame (truncated .zst)")
                return 0
            out = []
            while raw:
                self._in_frame = True
                out.append(self._obj.decompress(raw))
                raw = b""
                if self._obj.eof:  # a frame ended: the rest of the input starts the next one
                    raw, self._obj, self._in_frame = self._obj.unused_data, self._dctx.decompressobj(), False
            self._buf, self._pos = b"".join(out), 0
        n = min(len(b), len(self._buf) - self._pos)
        b[:n] = self._buf[self._pos : self._pos + n]
        self._pos += n
        return n

    def close(self) -> None:
        self._f.close()
        super().close()


def open_binary(path: str) -> IO[bytes]:
    """The decompressed byte stream of `path` (by extension); UserError if it can't be opened."""
    try:
        f = open(path, "rb")
    except OSError as e:
        raise UserError(f"cannot open input {path!r}: {e.strerror or e}; check the path and permissions") from None
    lower = path.lower()
    if lower.endswith(".zst"):
        return io.BufferedReader(_ZstdStream(f), buffer_size=1 << 16)
    if lower.endswith(".bz2"):
        return bz2.BZ2File(f)
    return f


def open_text(path: str) -> IO[str]:
    """Text lines of `path`; undecodable bytes become U+FFFD (the game then fails to parse)."""
    return io.TextIOWrapper(open_binary(path), encoding="utf-8-sig", errors="replace", newline=None)


def _pgn_items(f: IO[str]) -> Iterator[tuple]:
    """Split a PGN text stream into ("pgn", header_text, movetext) items, without parsing.

    A game starts at a header line after movetext or after a blank line that follows
    headers. Text after a blank line that follows movetext starts a headerless item (garbage
    between games is then counted as "no_headers" rather than glued to the game before)."""
    headers: list[str] = []
    moves: list[str] = []
    blank = False
    for line in f:
        if line.startswith("["):
            if moves or (blank and headers):
                yield ("pgn", "".join(headers), "".join(moves))
                headers, moves = [], []
            headers.append(line)
            blank = False
        elif not line.strip():
            blank = True
        elif line.startswith("%"):
            continue  # PGN escape line
        else:
            if blank and moves:
                yield ("pgn", "".join(headers), "".join(moves))
                headers, moves = [], []
            moves.append(line)
            blank = False
    if headers or moves:
        yield ("pgn", "".join(headers), "".join(moves))


def _csv_items(f: IO[str], path: str) -> Iterator[tuple]:
    """("csv", headers, transcript) items of a Lichess-transcript CSV."""
    reader = csv.reader(f)
    try:
        columns = [c.strip().lower() for c in next(reader)]
    except StopIteration:
        return
    need = ("whiteelo", "blackelo", "result", "transcript")
    missing = [c for c in need if c not in columns]
    if missing:
        raise UserError(f"CSV {path!r} lacks column(s) {', '.join(missing)}: expected a header line "
                        "`url,WhiteElo,BlackElo,result,transcript`")
    idx = {c: columns.index(c) for c in need}
    for row in reader:
        if not row:
            continue
        cell = {c: row[i].strip() if i < len(row) else "" for c, i in idx.items()}
        headers = {"WhiteElo": cell["whiteelo"], "BlackElo": cell["blackelo"], "Result": cell["result"]}
        yield ("csv", headers, cell["transcript"])


def read_items(path: str, file_errors: list) -> Iterator[tuple]:
    """Raw game items of one file; a broken stream ends the file with a "truncated" item."""
    import zstandard

    f = open_text(path)
    try:
        yield from _csv_items(f, path) if _base_name(path).endswith(".csv") else _pgn_items(f)
    except (OSError, EOFError, zstandard.ZstdError, csv.Error) as e:
        file_errors.append({"file": path, "error": f"{type(e).__name__}: {e}"})
        yield ("truncated", None, None)
    finally:
        try:
            f.close()
        except Exception:  # closing a stream that already failed may fail again
            pass


# --- parsing one game (in a worker) -----------------------------------------------------


def parse_game(item: tuple, filters: Filters, boards: bool = False,
               source: str = "") -> tuple[str | None, GameRecord | None]:
    """(None, record) for a kept game, else (drop reason, None)."""
    kind, head, movetext = item
    if kind == "truncated":
        return "truncated", None
    if kind == "pgn":
        headers = dict(_HEADER_RE.findall(head))
        if not headers:
            return "no_headers", None
        variant = headers.get("Variant", "").strip().lower()
        if variant == "from position" or headers.get("SetUp", "0").strip() == "1" or "FEN" in headers:
            return "from_position", None
        if variant not in _STANDARD_VARIANTS:
            return "variant", None
        # Lichess names casual games "Casual ... game"; a player's export names arena games
        # after the tournament ("Hourly Blitz Arena"), which are rated: so drop only what
        # the Event marks as casual / unrated rather than keep only what says "Rated".
        event = headers.get("Event", "").lower()
        if filters.rated_only and ("casual" in event or "unrated" in event):
            return "unrated", None
    else:
        headers = head
        movetext = movetext.lstrip(";")
    elos = []
    for key in ("WhiteElo", "BlackElo"):
        raw = headers.get(key, "").strip()
        if raw in ("", "?", "-"):
            if filters.max_rating is not None:
                return "missing_rating", None
            elos.append(NO_RATING)
            continue
        try:
            elos.append(int(raw))
        except ValueError:
            return "bad_rating", None
        if elos[-1] < 0:
            return "bad_rating", None
    if filters.max_rating is not None and max(elos) > filters.max_rating:
        return "over_max_rating", None
    result = headers.get("Result", "").strip()
    if result not in RESULTS:
        return "no_result", None
    sans, terminated = pgn.movetext_sans(movetext)
    if kind == "pgn" and not terminated:
        return "truncated", None
    board = chess.Board()
    tokens = [tokenizer.BOS]
    moves = []
    try:
        for san in sans:
            move = pgn.play_san(board, san)
            tokens.append(tokenizer.move_token(move) or tokenizer.move_to_token(move))  # a null move raises
            if boards:
                moves.append(move)
    except (ValueError, KeyError):
        return "bad_move", None
    n = len(tokens) - 1
    if n == 0 and filters.min_moves > 0:
        return "no_moves", None
    if n < filters.min_moves:
        return "too_short", None
    rec = GameRecord(tokens=np.asarray(tokens, np.uint16), result=result, white_elo=elos[0], black_elo=elos[1],
                     source=source, boards=game_boards(moves) if boards else None)
    return None, rec


def _parse_chunk(args) -> list:
    items, filters, boards, source = args
    return [parse_game(item, filters, boards, source) for item in items]


# --- the driver -------------------------------------------------------------------------


def _chunks(paths: list[str], file_errors: list, per_file: collections.Counter,
            first: int | None = None) -> Iterator[tuple[str, list]]:
    """(path, up to CHUNK_GAMES raw items) of the inputs in order; only the first `first` items if set."""
    left = first
    for path in paths:
        chunk = []
        for item in read_items(path, file_errors):
            if left is not None:
                if left == 0:
                    break
                left -= 1
            per_file[path] += 1
            chunk.append(item)
            if len(chunk) == CHUNK_GAMES:
                yield path, chunk
                chunk = []
        if chunk:
            yield path, chunk


def _pool(workers: int):
    # fork is cheap; after jax is imported (threads) fork is unsafe, so use forkserver then.
    method = "forkserver" if "jax" in sys.modules else "fork"
    return mp.get_context(method).Pool(workers)


def ingest(
    paths: list[str],
    *,
    filters: Filters | None = None,
    workers: int | None = None,
    boards: bool = False,
    counts: dict | None = None,
    progress: IO[str] | None = None,
    first: int | None = None,
) -> Iterator[GameRecord]:
    """Yield the kept games of `paths` in input order; fill `counts` as it goes.

    counts: input_games, kept, dropped {reason: n}, dropped_total, files {path: games},
    file_errors [{file, error}], filters. workers: processes (None = all cores, 0 = in-process).
    first: read only the first N games of the inputs (a sample of a large dump, for estimates).
    """
    filters = filters or Filters()
    paths = [os.fspath(p) for p in paths]
    if not paths:
        raise UserError("no input files given: pass one or more .pgn / .pgn.zst / .pgn.bz2 / .csv files")
    for path in paths:  # fail fast, before hours of work, on a path that can't be opened
        open_binary(path).close()
    counts = {} if counts is None else counts
    dropped = collections.Counter({r: 0 for r in DROP_REASONS})
    file_errors: list = []
    per_file: collections.Counter = collections.Counter()
    counts.update(input_games=0, kept=0, dropped=dropped, dropped_total=0, files=per_file,
                  file_errors=file_errors, filters=dataclasses.asdict(filters))
    workers = (os.cpu_count() or 1) if workers is None else workers
    tasks = ((items, filters, boards, os.path.basename(path))
             for path, items in _chunks(paths, file_errors, per_file, first))
    start, last = time.perf_counter(), 0.0

    def report():
        rate = counts["input_games"] / max(time.perf_counter() - start, 1e-9)
        print(f"\r{counts['input_games']} games read, {counts['kept']} kept, {rate:.0f} games/s",
              end="", file=progress, flush=True)

    def account(results):
        nonlocal last
        for reason, rec in results:
            counts["input_games"] += 1
            if reason is None:
                counts["kept"] += 1
                yield rec
            else:
                dropped[reason] += 1
                counts["dropped_total"] += 1
        if progress is not None and time.perf_counter() - last > 1.0:
            last = time.perf_counter()
            report()

    try:
        if workers == 0:
            for task in tasks:
                yield from account(_parse_chunk(task))
        else:
            with _pool(workers) as pool:
                pending: collections.deque = collections.deque()
                for task in tasks:
                    pending.append(pool.apply_async(_parse_chunk, (task,)))
                    if len(pending) >= 2 * workers:
                        yield from account(pending.popleft().get())
                while pending:
                    yield from account(pending.popleft().get())
    finally:
        counts["dropped"] = dict(dropped)
        counts["files"] = dict(per_file)
        if progress is not None:
            report()
            print(file=progress)


def drops(dropped: dict) -> str:
    """`reason count, ...`, the largest first, the reasons with none left out."""
    return ", ".join(f"{k} {v}" for k, v in sorted(dropped.items(), key=lambda kv: -kv[1]) if v)


def summary(stats: dict, seconds: float | None = None) -> str:
    """A few human lines: games in, kept, drops by reason, speed."""
    games = stats.get("input_games", stats["kept"])
    unrated = stats.get("without_rating")
    lines = [f"{games} games read, {stats['kept']} kept" + (f" ({unrated} without a rating)" if unrated else "")
             + (f" in {seconds:.1f}s ({games / max(seconds, 1e-9):.0f} games/s)" if seconds else "")]
    if any(stats.get("dropped", {}).values()):
        lines.append("dropped: " + drops(stats["dropped"]))
    for err in stats.get("file_errors", []):
        lines.append(f"warning: {err['file']}: {err['error']} (read up to the error)")
    return "\n".join(lines)
