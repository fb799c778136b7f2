"""The one record format every game is stored in (ArrayRecord shards hold these bytes).

A record is a small JSON header (scalars and array shapes) followed by the raw arrays, so
decoding is a `json.loads` plus zero-copy `np.frombuffer` views: fast in grain workers, and
readable from any language. Lichess and synthetic-expert games share it.
"""

from __future__ import annotations

import dataclasses
import json
import struct

import numpy as np

RESULTS = ("1-0", "0-1", "1/2-1/2")
SCORE_OF_RESULT = {"1-0": 1.0, "0-1": 0.0, "1/2-1/2": 0.5}  # White's points
NO_RATING = -1  # the rating of a player the game names none for (engine / OTB PGNs, generated games)
_ARRAYS = {"tokens": np.uint16, "blind": np.uint8, "boards": np.uint8, "legal": np.uint16,
           "legal_counts": np.uint8}


@dataclasses.dataclass
class GameRecord:
    """One game. `tokens` is `[BOS, moves...]` (see `tokenizer.encode_game`).

    white_elo / black_elo: the players' ratings, NO_RATING where the game has none.
    white_id / black_id: expert ids for synthetic games, -1 for humans.
    blind: per move, 1 where the expert who played it was blind (synthetic games only).
    boards: optional [len(tokens), 64] board planes stored at build time.
    legal, legal_counts: optional legal-move tokens of every position (after BOS and after each
        move), concatenated, and how many each position has: stored by generators that
        already enumerate legal moves, so the training pipeline need not replay the game.
    """

    tokens: np.ndarray
    result: str
    white_elo: int = NO_RATING
    black_elo: int = NO_RATING
    source: str = ""
    white_id: int = -1
    black_id: int = -1
    blind: np.ndarray | None = None
    boards: np.ndarray | None = None
    legal: np.ndarray | None = None
    legal_counts: np.ndarray | None = None

    @property
    def num_moves(self) -> int:
        return len(self.tokens) - 1


def game_key(rec: GameRecord) -> bytes:
    """What identifies a game wherever it was read from: its moves, result and ratings, and for
    generated games the players and their blind flags. Not `source` (the file name) nor the board
    planes or legal moves (derived from the moves, stored or not at build time). Copies of a game
    share a key, so a split hashed on it never puts a game on one side and its copy on the other."""
    blind = b"" if rec.blind is None else np.ascontiguousarray(rec.blind, np.uint8).tobytes()
    numbers = [int(n) for n in (rec.white_elo, rec.black_elo, rec.white_id, rec.black_id, len(rec.tokens), len(blind))]
    head = json.dumps([rec.result, *numbers], separators=(",", ":")).encode()  # lengths: where tokens and blind end
    return head + np.ascontiguousarray(rec.tokens, "<u2").tobytes() + blind


def encode(rec: GameRecord) -> bytes:
    header = {f.name: getattr(rec, f.name) for f in dataclasses.fields(rec) if f.name not in _ARRAYS}
    blobs = []
    for name, dtype in _ARRAYS.items():
        arr = getattr(rec, name)
        if arr is None:
            continue
        arr = np.ascontiguousarray(arr, dtype=dtype)
        header[name] = list(arr.shape)
        blobs.append(arr.tobytes())
    head = json.dumps(header, separators=(",", ":")).encode()
    return struct.pack("<I", len(head)) + head + b"".join(blobs)


def decode(data: bytes) -> GameRecord:
    (n,) = struct.unpack_from("<I", data)
    header = json.loads(data[4 : 4 + n])
    offset = 4 + n
    for name, dtype in _ARRAYS.items():
        shape = header.get(name)
        if shape is None:
            continue
        count = int(np.prod(shape))
        header[name] = np.frombuffer(data, dtype, count, offset).reshape(shape)
        offset += count * np.dtype(dtype).itemsize
    return GameRecord(**header)


def read_records(files):
    """Every GameRecord of the given ArrayRecord files, in order (for analysis, not training)."""
    from array_record.python.array_record_module import ArrayRecordReader

    for path in files:
        reader = ArrayRecordReader(str(path))
        try:
            for i in range(reader.num_records()):
                yield decode(reader.read([i])[0])
        finally:
            reader.close()
