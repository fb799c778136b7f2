"""`transcendence data build`: games -> ArrayRecord shards + stats.json.

`write_dataset` is the one writer every game source uses (Lichess ingestion here, the
synthetic experts elsewhere). Records are `records.encode` bytes; files are written with
`group_size:1` so grain / `tfds.data_source` can read any record without decoding its
neighbours. The train/validation split hashes each game's `records.game_key` (its moves, result
and ratings, not the file it came from) with the seed: it is the same whatever the file's name or
compression, the order or the number of workers, and a duplicated game never straddles it.
A build that fails (no game kept, a full disk) replaces nothing: an earlier dataset stays whole.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import errno
import glob
import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
from typing import Callable, Iterable

from array_record.python.array_record_module import ArrayRecordWriter

from transcendence_jax.data.records import NO_RATING, GameRecord, encode, game_key
from transcendence_jax.errors import UserError

SPLITS = ("train", "validation")
WRITER_OPTIONS = "group_size:1"
RATING_BIN = 100  # rating histogram: max(white, black) rating, floored to this
LENGTH_BIN = 20  # length histogram: half-moves, floored to this


def shard_name(split: str, index: int, count: int) -> str:
    return f"{split}-{index:05d}-of-{count:05d}.array_record"


class NoGames(UserError):
    """write_dataset got no record: it wrote nothing (an earlier dataset in its directory is kept)."""


def whole_record(rec: GameRecord) -> bytes:
    """The split key the synthetic experts' datasets keep: the encoded record, as they were first
    split (so the demo's published ratings stand). A generated game holds no file name (its source
    is the population), so a copy never straddles this split either; only storing the board planes
    or not would move a game."""
    return encode(rec)


def _is_validation(key: bytes, seed: int, val_fraction: float) -> bool:
    digest = hashlib.blake2b(key, digest_size=8, key=seed.to_bytes(8, "little", signed=True)).digest()
    return int.from_bytes(digest, "little") / 2.0**64 < val_fraction


class _Tally:
    """What stats.json says about the games written: counts, tokens and histograms."""

    def __init__(self):
        self.splits, self.results, self.sources = collections.Counter(), collections.Counter(), collections.Counter()
        self.rating_hist, self.length_hist = collections.Counter(), collections.Counter()
        self.tokens = self.bytes = self.without_rating = 0
        self.boards = False

    def add(self, rec: GameRecord, split: str, num_bytes: int) -> None:
        self.splits[split] += 1
        self.tokens += len(rec.tokens)
        self.bytes += num_bytes
        self.boards |= rec.boards is not None
        if rec.white_elo != NO_RATING and rec.black_elo != NO_RATING:
            self.rating_hist[max(rec.white_elo, rec.black_elo) // RATING_BIN * RATING_BIN] += 1
        else:
            self.without_rating += 1
        self.length_hist[rec.num_moves // LENGTH_BIN * LENGTH_BIN] += 1
        self.results[rec.result] += 1
        self.sources[rec.source] += 1

    def stats(self) -> dict:
        return {
            "kept": self.splits["train"] + self.splits["validation"],
            "train": self.splits["train"],
            "validation": self.splits["validation"],
            "tokens": self.tokens,
            "boards": self.boards,
            "results": dict(self.results),
            "sources": dict(self.sources),
            "rating_histogram": _sorted_hist(self.rating_hist),
            "rating_bin": RATING_BIN,
            "without_rating": self.without_rating,  # kept games with a NO_RATING: not in the histogram
            "length_histogram": _sorted_hist(self.length_hist),
            "length_bin": LENGTH_BIN,
        }


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
    split_by: Callable[[GameRecord], bytes] = game_key,
) -> dict:
    """Write `records` to `out_dir/{train-*-of-N, validation-00000-of-00001}.array_record`
    and `out_dir/stats.json`; return the stats.

    Streams: one record in memory at a time. Train records go round-robin over the shards.
    The split hashes `split_by(record)`: by default the game itself (`records.game_key`).
    Files are written under a `.tmp` name and renamed (stale shards removed) only once all are
    written, so an interrupted or failed build never leaves shards that look complete and
    never loses an earlier dataset. `extra_stats` (e.g. ingestion's drop counts) is merged into
    the stats; it is read after `records` is exhausted, so a generator may fill it.
    """
    if num_shards < 1:
        raise UserError(f"--shards must be >= 1, got {num_shards}")
    if not 0.0 <= val_fraction < 1.0:
        raise UserError(f"--val-fraction must be in [0, 1), got {val_fraction}")
    created = _prepare_out_dir(out_dir)
    paths = {("train", i): os.path.join(out_dir, shard_name("train", i, num_shards)) for i in range(num_shards)}
    paths[("validation", 0)] = os.path.join(out_dir, shard_name("validation", 0, 1))
    stats_path = os.path.join(out_dir, "stats.json")
    temps = [path + ".tmp" for path in paths.values()] + [stats_path + ".tmp"]
    tally = _Tally()
    writers: dict = {}
    writing = ""  # the file being written, for the error message
    try:
        for key, path in paths.items():
            writing = path + ".tmp"
            writers[key] = ArrayRecordWriter(writing, WRITER_OPTIONS)
        for rec in records:
            data = encode(rec)
            key = ("validation", 0) if _is_validation(split_by(rec), seed, val_fraction) else \
                ("train", tally.splits["train"] % num_shards)
            writing = paths[key] + ".tmp"
            writers[key].write(data)
            tally.add(rec, key[0], len(data))
        for key, w in writers.items():  # a full disk often shows only here, when buffers are flushed
            writing = paths[key] + ".tmp"
            w.close()
        stats = tally.stats()
        if not stats["kept"]:
            raise NoGames(f"no games to write to {out_dir!r}: nothing written")
        stats.update(num_shards=num_shards, val_fraction=val_fraction, seed=seed, split_by=split_by.__name__,
                     **(extra_stats or {}))
        writing = stats_path + ".tmp"
        with open(writing, "w") as f:
            json.dump(stats, f, indent=1)
    except BaseException as e:
        for w in writers.values():
            with contextlib.suppress(Exception):  # closed already, or failing again: the first error is raised
                w.close()
        for temp in temps:
            if os.path.lexists(temp):
                os.remove(temp)
        if created and not os.listdir(out_dir):
            os.rmdir(out_dir)
        if _disk_full(e):
            raise UserError(_disk_full_message(writing, out_dir, tally.bytes)) from None
        raise
    for split in SPLITS:  # stale shards of an earlier build would be read as part of this one
        for old in glob.glob(os.path.join(out_dir, f"{split}-*-of-*.array_record")):
            if old not in paths.values():
                os.remove(old)
    for path in [*paths.values(), stats_path]:
        os.replace(path + ".tmp", path)
    return stats


def _prepare_out_dir(out_dir: str) -> bool:
    """Check, before any work, that `out_dir` is a directory this process can write in (created
    if absent): one line naming the problem otherwise. True when it was created here."""
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise UserError(f"--out {out_dir!r} is a file, not a directory: name a directory (created if absent)")
    created = not os.path.isdir(out_dir)
    try:
        os.makedirs(out_dir, exist_ok=True)
    except OSError as e:
        raise UserError(f"cannot create the --out directory {out_dir!r}: {e.strerror or e}; "
                        "choose a path where you can create a directory") from None
    try:
        with tempfile.TemporaryFile(dir=out_dir, prefix=".write-check-"):
            pass
    except OSError as e:
        raise UserError(f"cannot write in the --out directory {out_dir!r}: {e.strerror or e}; "
                        "choose a directory you can write in") from None
    return created


def _disk_full(e: BaseException) -> bool:
    """A full disk or quota, as Python (OSError) or ArrayRecord's C++ writer (RuntimeError) reports it."""
    codes = (errno.ENOSPC, errno.EDQUOT)
    if isinstance(e, OSError):
        return e.errno in codes
    return isinstance(e, RuntimeError) and any(os.strerror(code) in str(e) for code in codes)


def _disk_full_message(path: str, out_dir: str, num_bytes: int) -> str:
    try:
        free = f"{_size(shutil.disk_usage(out_dir).free)} free"
    except OSError:
        free = "free space unknown"
    return (f"{os.strerror(errno.ENOSPC)} while writing {path!r} ({_size(num_bytes)} of records written, "
            f"{free}): free space on that disk or pass another --out, and rerun; "
            f"nothing was replaced (partial files removed, an earlier dataset in {out_dir!r} kept)")


def _size(num_bytes: float) -> str:
    return f"{num_bytes / 1e6:.1f} MB" if num_bytes >= 1e5 else f"{num_bytes / 1e3:.1f} kB"


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
    parser.add_argument("--out", help="output directory (shards + stats.json); with --stats-only, optional: "
                        "where caps.json goes")
    parser.add_argument("--stats-only", action="store_true",
                        help="write no dataset: stream the inputs once and print what a build would keep at each "
                        "of --caps (games, train / validation, tokens)")
    parser.add_argument("--caps", default="1000,1300,1500",
                        help="--stats-only: the rating caps to count, `none` for no cap (slower: every game's moves "
                        "are parsed); --max-rating's is added")
    parser.add_argument("--first", type=int, default=None,
                        help="--stats-only: count only the first N games of the inputs (a sample of a large dump)")
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
    if args.stats_only:
        return _stats_only(args, filters)
    if not args.out:
        raise UserError("data build needs --out DIR (or --stats-only to count without writing)")
    stats = build(args.inputs, args.out, filters=filters, workers=args.workers, boards=args.boards,
                  num_shards=args.shards, val_fraction=args.val_fraction, seed=args.seed, progress=True)
    secs = time.perf_counter() - start
    print(ingest.summary(stats, secs))
    print(f"wrote {args.out}/ ({stats['train']} train, {stats['validation']} validation; stats.json)")
    return 0


def _stats_only(args, filters) -> int:
    """`data build --stats-only`: print (and with --out, write to caps.json) what each cap keeps."""
    from transcendence_jax.data import ingest

    try:
        caps = [None if c.strip() == "none" else int(c) for c in args.caps.split(",") if c.strip()]
    except ValueError:
        raise UserError(f"--caps {args.caps!r}: expected ratings separated by commas, e.g. 1000,1300,1500") from None
    caps += [args.max_rating] * (args.max_rating is not None)
    if not caps or (args.first is not None and args.first < 1):
        raise UserError(f"--caps {args.caps!r} --first {args.first}: give at least one cap (or none) and --first >= 1")
    start = time.perf_counter()
    stats = cap_stats(args.inputs, caps, filters=filters, workers=args.workers, val_fraction=args.val_fraction,
                      seed=args.seed, first=args.first, progress=True)
    print(ingest.summary(stats, time.perf_counter() - start))
    print(format_caps(stats))
    if args.out:
        _prepare_out_dir(args.out)
        with open(os.path.join(args.out, "caps.json"), "w") as f:
            json.dump(stats, f, indent=1)
        print(f"wrote {args.out}/caps.json (no dataset)")
    return 0


def build(inputs, out_dir, *, filters=None, workers=None, boards=False, num_shards=4,
          val_fraction=0.05, seed=0, progress=False) -> dict:
    """Ingest `inputs` (paths) with `filters` and write the dataset: the library form of the command."""
    from transcendence_jax.data import ingest

    counts: dict = {}
    records = ingest.ingest(inputs, filters=filters, workers=workers, boards=boards, counts=counts,
                            progress=sys.stderr if progress else None)
    try:
        return write_dataset(records, out_dir, num_shards=num_shards, val_fraction=val_fraction, seed=seed,
                             extra_stats=counts)
    except NoGames:
        raise UserError(_nothing_kept(counts, inputs, out_dir)) from None


def cap_stats(inputs, caps, *, filters=None, workers=None, val_fraction=0.05, seed=0, first=None,
              progress=False) -> dict:
    """What `build` would keep at each rating cap (None: no cap; no caps: just None), from one
    streaming pass that writes nothing.

    A build with `Filters(max_rating=cap)` keeps exactly the games kept at a higher cap whose
    higher rating is <= cap, so one pass at the highest cap counts every cap (and drops most
    games on their headers, before any move is parsed; a None cap makes the pass parse every
    game). The split is the build's own (game-keyed), so the counts are what stats.json would
    say. `first`: count only the first N input games (a quick sample of a large dump).
    Returns ingest's counts (input_games, dropped at the pass's cap...) and `caps`:
    {"none" | str(cap): {games, train, validation, tokens, train_tokens}}. Tokens count BOS and
    the moves, as stats.json does."""
    from transcendence_jax.data import ingest

    caps = sorted(set(caps) or {None}, key=lambda c: (c is not None, c or 0))  # None (no cap) first
    filters = dataclasses.replace(filters or ingest.Filters(), max_rating=None if None in caps else max(caps))
    rows = {cap: collections.Counter(games=0, train=0, validation=0, tokens=0, train_tokens=0) for cap in caps}
    counts: dict = {}
    for rec in ingest.ingest(inputs, filters=filters, workers=workers, counts=counts, first=first,
                             progress=sys.stderr if progress else None):
        rated = rec.white_elo != NO_RATING and rec.black_elo != NO_RATING
        split = "validation" if _is_validation(game_key(rec), seed, val_fraction) else "train"
        for cap, row in rows.items():
            if cap is None or (rated and max(rec.white_elo, rec.black_elo) <= cap):
                row["games"] += 1
                row[split] += 1
                row["tokens"] += len(rec.tokens)
                row["train_tokens"] += len(rec.tokens) * (split == "train")
    return {**counts, "val_fraction": val_fraction, "seed": seed, "first": first,
            "caps": {"none" if cap is None else str(cap): dict(row) for cap, row in rows.items()}}


def format_caps(stats: dict) -> str:
    """cap_stats' counts as a Markdown table, one row a cap."""
    lines = ["| max rating | games kept | train | validation | tokens | train tokens | moves a game |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for cap, row in stats["caps"].items():
        per_game = (row["tokens"] - row["games"]) / row["games"] if row["games"] else 0.0  # less BOS
        lines.append(f"| {'none' if cap == 'none' else '<= ' + cap} | {row['games']:,} | {row['train']:,} | "
                     f"{row['validation']:,} | {row['tokens']:,} | {row['train_tokens']:,} | {per_game:.1f} |")
    return "\n".join(lines)


# What to change when every game is dropped for one reason (the others are about the input itself).
REMEDIES = {
    "over_max_rating": "raise --max-rating",
    "missing_rating": "leave out --max-rating to keep games without ratings",
    "too_short": "lower --min-moves",
    "no_moves": "pass --min-moves 0 to keep games without moves",
    "unrated": "pass --include-casual to keep casual games",
}


def _nothing_kept(counts: dict, inputs, out_dir: str) -> str:
    """The one line for a build that kept no game: what was read, what was dropped and why, the remedy."""
    from transcendence_jax.data import ingest

    dropped = counts.get("dropped", {})
    remedies = [REMEDIES[r] for r, n in sorted(dropped.items(), key=lambda kv: -kv[1]) if n and r in REMEDIES]
    why = f"dropped: {ingest.drops(dropped)}" if any(dropped.values()) else "the input holds no games"
    games = counts.get("input_games", 0)
    return (f"no game kept: {games} game{'s' * (games != 1)} read from {', '.join(map(str, inputs))} "
            f"({why}); nothing written to {out_dir!r}: "
            + ("; ".join(remedies) if remedies else "check that the inputs are the PGN / CSV games you meant"))
