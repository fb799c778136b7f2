"""The grain input pipeline: ArrayRecord games -> fixed-length training rows -> batches.

ArrayRecord shards (`data build` output) -> a seeded global shuffle (new each epoch) -> shard by
JAX process (disjoint rows) -> decode -> rows of L+1 tokens -> batches of B rows per process
(the last partial batch is dropped: shapes stay static). With `worker_count` > 0, grain workers
batch their own rows, so batches depend on the worker count (not the rows of an epoch).

Batch format (numpy): `inputs`/`targets` int32[B, L] (tokens 0..L-1 / 1..L of the row);
`weights` float32[B, L] (0 on padding); with boards=True `boards` uint8[B, L, 64] (the board
after each input token, from the records if stored, else from the tokens); with legal=True
`legal` bool[B, L, V] (the legal moves at each input; "pack" also allows BOS; where the weight
is 0 the target is set too, so a loss restricted to the mask stays finite).

Packing: "pad" is one game per row, cut at L+1 tokens, then PAD. "pack" (the paper) puts
games end to end; a game cut at a row's end also starts again whole in the next row (one
longer than a row is only cut); the plan is fixed for a seed, its rows reshuffled each epoch.

Checkpointing: `it = iter(loader)`; `it.get_state()` / `it.set_state(state)` (or grain's
orbax `CheckpointSave` / `CheckpointRestore` args) resume at exactly the next batch. Restore
with the same files, packing, seq_len, seed, shuffle, num_epochs, worker_count (grain checks
these) and batch_size (unchecked).
"""

from __future__ import annotations

import json
import struct
from typing import Sequence

import chess
import grain
import numpy as np

from transcendence_jax.data import records, tokenizer
from transcendence_jax.data.boards import game_planes
from transcendence_jax.data.tokenizer import MOVE_OF_TOKEN, legal_move_tokens
from transcendence_jax.errors import UserError

PACKINGS = ("pad", "pack")
# Local ArrayRecord reads are cheap: reading threads and a prefetch buffer only add CPU
# overhead; worker_count is what gives parallelism.
READ_OPTIONS = grain.ReadOptions(num_threads=0, prefetch_buffer_size=0)


def _num_tokens(data: bytes) -> int:
    """len(tokens) of an encoded record, from its JSON header only."""
    (n,) = struct.unpack_from("<I", data)
    return json.loads(data[4 : 4 + n])["tokens"][0]


def pack_plan(lengths: np.ndarray, row_len: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(order, starts, ends): row r holds games order[starts[r]:ends[r]] of a seeded permutation.

    Games are packed greedily in permuted order; a game that does not fit
    whole ends the row and starts the next one, unless it began the row (too long to fit)."""
    order = np.random.default_rng(seed).permutation(len(lengths))
    starts, ends = [], []
    i, n = 0, len(order)
    lens = lengths[order].tolist()
    while i < n:
        j, used = i, 0
        while j < n and used + lens[j] <= row_len:
            used += lens[j]
            j += 1
        if j < n and used < row_len:  # the next game is cut at the row end
            starts.append(i), ends.append(j + 1)
            i = j if j > i else j + 1  # it starts again whole next row (if it ever fits)
        else:
            starts.append(i), ends.append(j)
            i = j
    return order, np.asarray(starts, np.int64), np.asarray(ends, np.int64)


class _GameSource(grain.sources.RandomAccessDataSource):
    """Element i of a run: the encoded games of row perm_e[i % rows] in epoch e = i // rows.

    The shuffle lives here, not in grain's IndexSampler: one cached numpy permutation per
    epoch is far cheaper than grain's per-index `index_shuffle`."""

    def __init__(self, files: Sequence[str], packing: str, row_len: int, seed: int, shuffle: bool, epochs: int):
        self._files = list(files)
        self._source = grain.sources.ArrayRecordDataSource(self._files)
        self._packing, self._row_len, self._seed, self._shuffle, self._epochs = packing, row_len, seed, shuffle, epochs
        if packing == "pack":
            lengths = np.fromiter((_num_tokens(self._source[i]) for i in range(len(self._source))), np.int64,
                                  count=len(self._source))
            self._order, self._starts, self._ends = pack_plan(lengths, row_len, seed)
        self.rows = len(self._source) if packing == "pad" else len(self._starts)
        self._perm = (-1, None)

    def __len__(self) -> int:
        return self.rows * self._epochs

    def __getitem__(self, i: int) -> list[bytes]:
        epoch, row = divmod(int(i), self.rows)
        if self._shuffle:
            if self._perm[0] != epoch:
                self._perm = (epoch, np.random.default_rng([self._seed, epoch]).permutation(self.rows))
            row = int(self._perm[1][row])
        if self._packing == "pad":
            return [self._source[row]]
        return [self._source[j] for j in self._order[self._starts[row] : self._ends[row]].tolist()]

    def __repr__(self) -> str:  # grain checks it when a state is restored
        return (f"_GameSource(files={self._files}, packing={self._packing!r}, row_len={self._row_len}, "
                f"seed={self._seed}, shuffle={self._shuffle}, epochs={self._epochs})")


class _ToRow(grain.transforms.Map):
    """Encoded games of one row -> the row's arrays (runs in the grain workers)."""

    def __init__(self, seq_len: int, packing: str, boards: bool, legal: bool, vocab_size: int):
        self.seq_len, self.packing, self.boards = seq_len, packing, boards
        self.legal, self.vocab_size = legal, vocab_size

    def map(self, games: list[bytes]) -> dict[str, np.ndarray]:
        L = self.seq_len
        row = np.zeros(L + 1, np.int32)
        boards_L64 = np.zeros((L, 64), np.uint8) if self.boards else None
        legal_rows, legal_cols = [], []
        pos = 0
        for data in games:
            rec = records.decode(data)
            n = min(len(rec.tokens), L + 1 - pos)  # tokens of this game in the row
            row[pos : pos + n] = rec.tokens[:n]
            m = min(n, L - pos)  # of which are inputs (have a board / legal set)
            if m > 0 and (self.boards or self.legal):
                self._positions(rec, m, pos, boards_L64, legal_rows, legal_cols)
            pos += n
            if pos > L:
                break
        inputs, targets = row[:-1], row[1:]
        weights = (targets != tokenizer.PAD).astype(np.float32)
        out = {"inputs": inputs, "targets": targets, "weights": weights}
        if self.boards:
            out["boards"] = boards_L64
        if self.legal:
            legal_LV = np.zeros((L, self.vocab_size), bool)
            if legal_rows:
                legal_LV[np.concatenate(legal_rows), np.concatenate(legal_cols)] = True
            if self.packing == "pack":
                legal_LV[inputs != tokenizer.PAD, tokenizer.BOS] = True
            off = np.flatnonzero(weights == 0)
            legal_LV[off, targets[off]] = True
            out["legal"] = legal_LV
        return out

    def _positions(self, rec, m, pos, boards_L64, legal_rows, legal_cols) -> None:
        """Boards and legal moves of the game's first m positions, written at row offset pos."""
        if self.boards:
            stored = rec.boards is not None
            boards_L64[pos : pos + m] = rec.boards[:m] if stored else game_planes(rec.tokens[:m].tolist())
        if self.legal and rec.legal is not None:  # stored at generation: no replay
            counts = rec.legal_counts[:m].astype(np.int64)
            legal_rows.append(np.repeat(np.arange(pos, pos + m), counts))
            legal_cols.append(rec.legal[: counts.sum()].astype(np.int64))
        elif self.legal:  # python lists, one numpy conversion per game
            board, rows, cols = chess.Board(), [], []
            for t, tok in enumerate(rec.tokens[:m].tolist()):
                if t:
                    board.push(MOVE_OF_TOKEN[tok])
                toks = legal_move_tokens(board)
                rows += [pos + t] * len(toks)
                cols += toks.tolist()
            legal_rows.append(np.asarray(rows, np.int64))
            legal_cols.append(np.asarray(cols, np.int64))


def make_loader(
    files: Sequence[str],
    *,
    seq_len: int,
    batch_size: int,
    packing: str = "pad",
    seed: int = 0,
    shuffle: bool = True,
    num_epochs: int | None = None,
    boards: bool = False,
    legal: bool = False,
    vocab_size: int = 2048,
    worker_count: int = 0,
    shard_index: int | None = None,
    shard_count: int | None = None,
) -> grain.DataLoader:
    """A grain DataLoader of training batches (see the module docstring for the format).

    batch_size is per process; shard_index / shard_count default to this JAX process's
    index / the process count. num_epochs=None repeats forever."""
    files = [str(f) for f in files]
    if not files:
        raise UserError("no dataset files given to the pipeline: "
                        "pass the shards of a `transcendence data build` output")
    if packing not in PACKINGS:
        raise UserError(f"unknown packing {packing!r}: use one of {', '.join(PACKINGS)}")
    if seq_len < 1 or batch_size < 1:
        raise UserError(f"seq_len and batch_size must be >= 1, got seq_len={seq_len}, batch_size={batch_size}")
    if legal and vocab_size < tokenizer.VOCAB_SIZE:
        raise UserError(f"vocab_size {vocab_size} is smaller than the {tokenizer.VOCAB_SIZE} tokens: "
                        "raise model.vocab_size")
    if shard_index is None or shard_count is None:
        import jax

        shard_index = jax.process_index() if shard_index is None else shard_index
        shard_count = jax.process_count() if shard_count is None else shard_count
    if worker_count > 0:  # grain's worker processes read absl flags
        from absl import flags

        if not flags.FLAGS.is_parsed():
            flags.FLAGS.mark_as_parsed()
    epochs = num_epochs if num_epochs is not None else 10**9  # "forever": ~1e9 passes
    try:
        source = _GameSource(files, packing, seq_len + 1, seed, shuffle, epochs)
    except (OSError, ValueError, RuntimeError) as e:
        raise UserError(f"cannot read the dataset files {files[:2]}...: {e}; "
                        "rebuild them with `transcendence data build`") from e
    if source.rows < shard_count * batch_size:
        raise UserError(f"{source.rows} rows in {files[0]}... cannot fill one batch of {batch_size} on each of "
                        f"{shard_count} processes: use a smaller batch_size or more games")
    shard_options = grain.sharding.ShardOptions(shard_index=shard_index, shard_count=shard_count, drop_remainder=True)
    sampler = grain.samplers.IndexSampler(len(source), shard_options=shard_options, shuffle=False, num_epochs=1)
    ops = [_ToRow(seq_len, packing, boards, legal, vocab_size), grain.transforms.Batch(batch_size, drop_remainder=True)]
    return grain.DataLoader(data_source=source, sampler=sampler, operations=ops, worker_count=worker_count,
                            shard_options=shard_options, read_options=READ_OPTIONS)
