"""TFDS builder `lichess_games`: the Lichess games of `data build`, one config per rating cap.

Each example holds the fields of a `GameRecord` (tokens, result, ratings, source); the games
are parsed by the same `ingest` code, so the content is identical to `data build`'s shards.
Files are ArrayRecord, so `tfds.data_source("lichess_games/max_1300", data_dir=...)` reads
them with random access and without TensorFlow installed.

Usage (the PGN / CSV files are read from the manual dir):

    builder = LichessGames(config="max_1300", data_dir=DATA_DIR)
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=PGN_DIR),
                                 file_format="array_record")
    ds = tfds.data_source("lichess_games/max_1300", data_dir=DATA_DIR)
"""

from __future__ import annotations

import glob
import hashlib
import os

import numpy as np
import tensorflow_datasets as tfds

from transcendence_jax.data import ingest
from transcendence_jax.data.records import RESULTS

RATING_CAPS = (1000, 1300, 1500, None)
INPUT_PATTERNS = ("*.pgn", "*.pgn.zst", "*.pgn.bz2", "*.csv", "*.csv.zst", "*.csv.bz2")


class LichessGamesConfig(tfds.core.BuilderConfig):
    def __init__(self, *, max_rating: int | None, min_moves: int = 1, **kwargs):
        name = f"max_{max_rating}" if max_rating is not None else "all"
        super().__init__(name=name, description=f"games with max(WhiteElo, BlackElo) <= {max_rating}", **kwargs)
        self.max_rating, self.min_moves = max_rating, min_moves


class LichessGames(tfds.core.GeneratorBasedBuilder):
    """Rated standard Lichess games, tokenized one token per move (`transcendence_jax.data.tokenizer`)."""

    VERSION = tfds.core.Version("1.0.0")
    BUILDER_CONFIGS = [LichessGamesConfig(max_rating=cap) for cap in RATING_CAPS]
    MANUAL_DOWNLOAD_INSTRUCTIONS = "Put Lichess .pgn / .pgn.zst / .pgn.bz2 / transcript .csv files in the manual dir."

    def _info(self) -> tfds.core.DatasetInfo:
        return self.dataset_info_from_configs(
            features=tfds.features.FeaturesDict({
                "tokens": tfds.features.Tensor(shape=(None,), dtype=np.uint16),
                "result": tfds.features.ClassLabel(names=list(RESULTS)),
                "white_elo": tfds.features.Scalar(dtype=np.int32),
                "black_elo": tfds.features.Scalar(dtype=np.int32),
                "source": tfds.features.Text(),
            }),
            homepage="https://database.lichess.org/",
        )

    def _split_generators(self, dl_manager):
        files = sorted({p for pat in INPUT_PATTERNS for p in glob.glob(os.path.join(dl_manager.manual_dir, pat))})
        if not files:
            raise FileNotFoundError(f"no game files in {dl_manager.manual_dir}: {self.MANUAL_DOWNLOAD_INSTRUCTIONS}")
        return {"train": self._generate_examples(files)}

    def _generate_examples(self, files):
        filters = ingest.Filters(max_rating=self.builder_config.max_rating, min_moves=self.builder_config.min_moves)
        for rec in ingest.ingest(files, filters=filters, workers=0):
            key = hashlib.blake2b(rec.tokens.tobytes() + f"{rec.source}{rec.white_elo}{rec.black_elo}".encode(),
                                  digest_size=12).hexdigest()
            yield key, {"tokens": rec.tokens, "result": rec.result, "white_elo": rec.white_elo,
                        "black_elo": rec.black_elo, "source": rec.source}
