"""`transcendence data build`: games -> ArrayRecord shards + stats.json.

`write_dataset` is the one writer every game source uses (Lichess ingestion here, the
synthetic experts elsewhere). Records are `records.encode` bytes; files are written with
`group_size:1` so grain / `tfds.data_source` can read any record without decoding its
neighbours. The train/validation split hashes each record's bytes with the seed: it is the
same whatever the order or number of workers, and a duplicated game never straddles it.
"""

from __future__ import annotations

import collections
import glob
import hashlib
import json
import os
import sys
import time
from typing import Iterable

from array_record.python.array_record_module import ArrayRecordWriter

from transcendence_jax.data.records import GameRecord, encode
from transcendence_jax.errors import UserError

SPLITS = ("train", "validation")
WRITER_OPTIONS = "group_size:1"
RATING_BIN = 100  # rating histogram: max(white, black) rating, floored to this
LENGTH_BIN = 20  # length histogram: half-moves, floored to this


def shard_name(split: str, index: int, count: int) -> str:
    return f"{split}-{index:05d}-of-{count:05d}.array_record"


def _is_validation(data: bytes, seed: int, val_fraction: float) -> bool:
    digest = hashlib.blake2b(data, digest_size=8, key=seed.to_bytes(8, "little", signed=True)).digest()
    return int.from_bytes(digest, "little") / 2.0**64 < val_fraction


def _hist_add(hist: collections.Counter, value: int, width: int) -> None:
    hist[value // width * width] += 1


def _sorted_hist(hist: collections.Counter) -> dict[str, int]:
    return {str(k): hist[k] for k in sorted(hist)}


def write_dataset(
    records: Iterable[GameRecord],
    out_dir: str,
    *,
    num_shards: int = 4,
    val_fraction: float = 0.05,
    seed: int = 0,
    extra_stats: dict | None = None,
) -> dict:
    """Write `records` to `out_dir/{train-*-of-N, validation-00000-of-00001}.array_record`
    and `out_dir/stats.json`; return the stats.

    Streams: one record in memory at a time. Train records go round-robin over the shards.
    Files are written under a `.tmp` name and renamed at the end, so an interrupted build
    never leaves shards that look complete. `extra_stats` (e.g. ingestion's drop counts) is
    merged into the stats; it is read after `records` is exhausted, so a generator may fill it.
    """
    if num_shards < 1:
        raise UserError(f"--shards must be >= 1, got {num_shards}")
    if not 0.0 <= val_fraction < 1.0:
        raise UserError(f"--val-fraction must be in [0, 1), got {val_fraction}")
    os.makedirs(out_dir, exist_ok=True)
    for split in SPLITS:  # stale shards of an earlier build would be read as part of this one
        for old in glob.glob(os.path.join(out_dir, f"{split}-*-of-*.array_record")):
            os.remove(old)
    paths = {("train", i): os.path.join(out_dir, shard_name("train", i, num_shards)) for i in range(num_shards)}
    paths[("validation", 0)] = os.path.join(out_dir, shard_name("validation", 0, 1))
    writers = {key: ArrayRecordWriter(path + ".tmp", WRITER_OPTIONS) for key, path in paths.items()}
    counts = collections.Counter()
    rating_hist, length_hist = collections.Counter(), collections.Counter()
    results, sources = collections.Counter(), collections.Counter()
    num_tokens, has_boards = 0, False
    try:
        for rec in records:
            data = encode(rec)
            if _is_validation(data, seed, val_fraction):
                writers[("validation", 0)].write(data)
                counts["validation"] += 1
            else:
                writers[("train", counts["train"] % num_shards)].write(data)
                counts["train"] += 1
            num_tokens += len(rec.tokens)
            has_boards |= rec.boards is not None
            if rec.white_elo >= 0 and rec.black_elo >= 0:
                _hist_add(rating_hist, max(rec.white_elo, rec.black_elo), RATING_BIN)
            _hist_add(length_hist, rec.num_moves, LENGTH_BIN)
            results[rec.result] += 1
            sources[rec.source] += 1
    finally:
        for w in writers.values():
            w.close()
    for path in paths.values():
        os.replace(path + ".tmp", path)
    stats = {
        "kept": counts["train"] + counts["validation"],
        "train": counts["train"],
        "validation": counts["validation"],
        "num_shards": num_shards,
        "val_fraction": val_fraction,
        "seed": seed,
        "tokens": num_tokens,
        "boards": has_boards,
        "results": dict(results),
        "sources": dict(sources),
        "rating_histogram": _sorted_hist(rating_hist),
        "rating_bin": RATING_BIN,
        "length_histogram": _sorted_hist(length_hist),
        "length_bin": LENGTH_BIN,
        **(extra_stats or {}),
    }
    with open(os.path.join(out_dir, "stats.json"), "w") as f:
        json.dump(stats, f, indent=1)
    return stats


def dataset_files(data_dir: str, split: str) -> list[str]:
    """The sorted ArrayRecord shards of `split` ("train" | "validation") in `data_dir`."""
    if split not in SPLITS:
        raise UserError(f"unknown split {split!r}: use one of {', '.join(SPLITS)}")
    files = sorted(glob.glob(os.path.join(data_dir, f"{split}-*-of-*.array_record")))
    if not files:
        raise UserError(
            f"no {split} shards ({split}-*-of-*.array_record) in {data_dir!r}: "
            "build the dataset first with `transcendence data build INPUT... --out DIR`"
        )
    return files


# --- the command ------------------------------------------------------------------------


def add_arguments(parser) -> None:
    parser.add_argument("inputs", nargs="+", metavar="INPUT",
                        help=".pgn, .pgn.zst, .pgn.bz2 or Lichess-transcript .csv files")
    parser.add_argument("--out", required=True, help="output directory (shards + stats.json)")
    parser.add_argument("--max-rating", type=int, default=None,
                        help="keep games with max(WhiteElo, BlackElo) <= N (the paper: 1000/1300/1500)")
    parser.add_argument("--min-moves", type=int, default=1, help="drop games with fewer half-moves (default 1)")
    parser.add_argument("--val-fraction", type=float, default=0.05, help="validation fraction (default 0.05)")
    parser.add_argument("--shards", type=int, default=4, help="train shards (default 4)")
    parser.add_argument("--workers", type=int, default=None,
                        help="parser processes (default: all cores; 0 = in-process)")
    parser.add_argument("--boards", action="store_true", help="store board planes in each record")
    parser.add_argument("--include-casual", action="store_true", help="keep games whose Event says casual / unrated")
    parser.add_argument("--seed", type=int, default=0, help="train/validation split seed")


def run(args) -> int:
    from transcendence_jax.data import ingest

    filters = ingest.Filters(max_rating=args.max_rating, min_moves=args.min_moves, rated_only=not args.include_casual)
    start = time.perf_counter()
    stats = build(args.inputs, args.out, filters=filters, workers=args.workers, boards=args.boards,
                  num_shards=args.shards, val_fraction=args.val_fraction, seed=args.seed, progress=True)
    secs = time.perf_counter() - start
    print(ingest.summary(stats, secs))
    print(f"wrote {args.out}/ ({stats['train']} train, {stats['validation']} validation; stats.json)")
    return 0


def build(inputs, out_dir, *, filters=None, workers=None, boards=False, num_shards=4,
          val_fraction=0.05, seed=0, progress=False) -> dict:
    """Ingest `inputs` (paths) with `filters` and write the dataset: the library form of the command."""
    from transcendence_jax.data import ingest

    counts: dict = {}
    records = ingest.ingest(inputs, filters=filters, workers=workers, boards=boards, counts=counts,
                            progress=sys.stderr if progress else None)
    return write_dataset(records, out_dir, num_shards=num_shards, val_fraction=val_fraction, seed=seed,
                         extra_stats=counts)
