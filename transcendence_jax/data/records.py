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
_ARRAYS = {"tokens": np.uint16, "blind": np.uint8, "boards": np.uint8, "legal": np.uint16,
           "legal_counts": np.uint8}


@dataclasses.dataclass
class GameRecord:
    """One game. `tokens` is `[BOS, moves...]` (see `tokenizer.encode_game`).

    white_id / black_id: expert ids for synthetic games, -1 for humans.
    blind: per move, 1 where the expert who played it was blind (synthetic games only).
    boards: optional [len(tokens), 64] board planes stored at build time.
    legal, legal_counts: optional legal-move tokens of every position (after BOS and after each
        move), concatenated, and how many each position has: stored by generators that
        already enumerate legal moves, so the training pipeline need not replay the game.
    """

    tokens: np.ndarray
    result: str
    white_elo: int = -1
    black_elo: int = -1
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
