"""`data build`'s split, its output directory and its failures: real files, real shards, a real full disk."""

import bz2
import json
import os

import pytest
import zstandard

from transcendence_jax import cli
from transcendence_jax.data import build, ingest
from transcendence_jax.data.records import read_records

LICHESS = "lichess_2021-10_head999.pgn"


def _games_by_split(out) -> dict:
    """{split: set of games}, a game being what identifies it wherever it was read from."""
    return {split: {(r.tokens.tobytes(), r.result, r.white_elo, r.black_elo)
                    for r in read_records(build.dataset_files(str(out), split))}
            for split in build.SPLITS}


def test_split_is_keyed_by_the_game_not_the_file(tmp_path, lichess_dir):
    text = (lichess_dir / LICHESS).read_bytes()
    copies = {"a.pgn": text, "b.pgn": text, "c.pgn.zst": zstandard.ZstdCompressor().compress(text),
              "d.pgn.bz2": bz2.compress(text)}
    splits = []
    for name, data in copies.items():
        (tmp_path / name).write_bytes(data)
        build.build([str(tmp_path / name)], str(tmp_path / f"out-{name}"), filters=ingest.Filters(max_rating=1500),
                    workers=0, boards=name == "d.pgn.bz2", num_shards=1, val_fraction=0.2)
        splits.append(_games_by_split(tmp_path / f"out-{name}"))
    assert len(splits[0]["validation"]) > 30 and len(splits[0]["train"]) > 200
    assert all(s == splits[0] for s in splits[1:])  # whatever the name, compression or --boards
    # Two copies in one build: a game and its copy land on the same side, never one in each.
    build.build([str(tmp_path / "a.pgn"), str(tmp_path / "b.pgn")], str(tmp_path / "both"),
                filters=ingest.Filters(max_rating=1500), workers=0, num_shards=1, val_fraction=0.2)
    both = _games_by_split(tmp_path / "both")
    assert both == splits[0] and not both["train"] & both["validation"]


GAME = '[Event "Rated Blitz game"]\n[WhiteElo "{elo}"]\n[BlackElo "1100"]\n[Result "1-0"]\n\n1. e4 e5 2. Nf3 1-0\n\n'


def _dataset(tmp_path, games=12):
    """A built dataset in tmp_path/ds and {file name: bytes} of what it holds."""
    src = tmp_path / "games.pgn"
    src.write_text("".join(GAME.format(elo=1200 + i) for i in range(games)))
    out = tmp_path / "ds"
    assert cli.main(["data", "build", str(src), "--out", str(out), "--shards", "2", "--val-fraction", "0.3"]) == 0
    return src, out, {p.name: p.read_bytes() for p in out.iterdir()}


def _one_line_error(capsys) -> str:
    """The error line that ends stderr (after the progress line), and no traceback."""
    err = capsys.readouterr().err
    last = err.rstrip("\n").rsplit("\n", 1)[-1]
    assert last.startswith("error: ") and "Traceback" not in err and err.count("error: ") == 1, err
    return last


def test_build_that_keeps_no_game_is_an_error_and_keeps_the_old_dataset(tmp_path, capsys):
    src, out, before = _dataset(tmp_path)
    capsys.readouterr()
    assert cli.main(["data", "build", str(src), "--out", str(out), "--max-rating", "1000"]) == 2
    err = _one_line_error(capsys)
    assert "12 games" in err and "over_max_rating 12" in err and "--max-rating" in err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # the earlier dataset is untouched
    fresh = tmp_path / "fresh"
    assert cli.main(["data", "build", str(src), "--out", str(fresh), "--min-moves", "10"]) == 2
    assert "too_short 12" in _one_line_error(capsys) and not fresh.exists()


def test_out_that_is_a_file_or_unwritable_is_one_line(tmp_path, capsys):
    src = tmp_path / "games.pgn"
    src.write_text(GAME.format(elo=1200))
    a_file = tmp_path / "notes.txt"
    a_file.write_text("mine")
    for out, words in [(a_file, "is a file"), (a_file / "ds", "cannot create"), ("/sys", "cannot write")]:
        assert cli.main(["data", "build", str(src), "--out", str(out)]) == 2
        err = _one_line_error(capsys)
        assert str(out) in err and words in err and "--out" in err
    assert a_file.read_text() == "mine"


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs Linux's /dev/full")
def test_full_disk_is_one_line_and_keeps_the_old_dataset(tmp_path, capsys):
    src, out, before = _dataset(tmp_path)
    capsys.readouterr()
    # The kernel's full disk: every write to /dev/full fails with ENOSPC.
    stuck = out / "validation-00000-of-00001.array_record.tmp"
    os.symlink("/dev/full", stuck)
    assert cli.main(["data", "build", str(src), "--out", str(out), "--shards", "2", "--val-fraction", "0.3"]) == 2
    err = _one_line_error(capsys)
    assert "No space left on device" in err and stuck.name in err and "free" in err
    assert not os.path.lexists(stuck) and {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert json.loads(before["stats.json"])["kept"] == 12
