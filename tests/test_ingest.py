"""Ingestion and `data build`: real Lichess counts, and self-made bad input that always runs."""

import bz2
import json
import statistics

import chess
import chess.pgn
import grain
import numpy as np
import pytest
import zstandard

from transcendence_jax import cli
from transcendence_jax.data import build, ingest, tokenizer
from transcendence_jax.data.boards import game_boards
from transcendence_jax.data.pgn import play_san
from transcendence_jax.data.records import NO_RATING, decode
from transcendence_jax.errors import UserError

# Per file, as python-chess reads it: games; games with max(WhiteElo, BlackElo) <= cap; (min, median, max) length.
README_COUNTS = {
    "lichess_2021-10_head999.pgn": (999, {1000: 29, 1300: 165, 1500: 314, 2000: 777}, (0, 62, 302)),
    "lichess_2013-01_head100.pgn": (100, {1000: 0, 1300: 2, 1500: 9, 2000: 99}, (7, 56, 171)),
    "lichess_one_player_export_low_rated.pgn": (685, {1000: 279, 1300: 582, 1500: 656, 2000: 684}, (0, 52, 185)),
}


def _ingest(paths, **kw):
    counts = {}
    recs = list(ingest.ingest([str(p) for p in paths], counts=counts, **kw))
    assert (counts["input_games"] == counts["kept"] + sum(counts["dropped"].values())
            == len(recs) + counts["dropped_total"])
    return recs, counts


@pytest.mark.parametrize("name", list(README_COUNTS))
def test_real_counts_match_readme(lichess_dir, name):
    games, caps, (lo, med, hi) = README_COUNTS[name]
    recs, counts = _ingest([lichess_dir / name], filters=ingest.Filters(min_moves=0), workers=0)
    assert counts["input_games"] == games
    lengths = [r.num_moves for r in recs]
    assert (min(lengths), statistics.median(lengths), max(lengths)) == (lo, med, hi)
    rated = [r for r in recs if min(r.white_elo, r.black_elo) != NO_RATING]
    for cap, expected in caps.items():
        assert sum(max(r.white_elo, r.black_elo) <= cap for r in rated) == expected
    assert counts["dropped"]["missing_rating"] == 0 and len(rated) == len(recs) - name.startswith("lichess_2013")


def test_real_cap_filter_in_workers(lichess_dir):
    path = lichess_dir / "lichess_one_player_export_low_rated.pgn"
    recs, counts = _ingest([path], filters=ingest.Filters(max_rating=1300, min_moves=0), workers=2)
    assert len(recs) == 582 and counts["dropped"]["over_max_rating"] == 685 - 582
    assert all(max(r.white_elo, r.black_elo) <= 1300 for r in recs)
    # Same games, same order, same tokens as the in-process path.
    recs0, _ = _ingest([path], filters=ingest.Filters(max_rating=1300, min_moves=0), workers=0)
    assert [r.tokens.tolist() for r in recs] == [r.tokens.tolist() for r in recs0]


@pytest.mark.parametrize("name", ["lichess_2021-10_head999.pgn", "lichess_one_player_export_low_rated.pgn"])
def test_real_tokens_match_python_chess(lichess_dir, name):
    path = lichess_dir / name  # the fast SAN path gives python-chess's moves, game for game
    recs, _ = _ingest([path], filters=ingest.Filters(min_moves=0), workers=0)
    with open(path) as f:
        for rec in recs[:250]:
            game = chess.pgn.read_game(f)
            assert tokenizer.decode_game(rec.tokens) == (list(game.mainline_moves()), None)
            assert rec.result == game.headers["Result"] and rec.white_elo == int(game.headers["WhiteElo"])


# --- self-made input ------------------------------------------------------------------------

GOOD = """[Event "Rated Blitz game"]
[WhiteElo "1200"]
[BlackElo "1100"]
[Result "1-0"]

1. e4 { [%clk 0:03:00] } 1... e5?! 2. Nf3 $1 (2. f4 exf4 (2... d5)) 2... Nc6 3. Bb5 a6 ; a line comment
4. Ba4 Nf6 5. O-O Be7 1-0

"""


def _game(headers: dict, movetext: str) -> str:
    return "".join(f'[{k} "{v}"]\n' for k, v in headers.items()) + "\n" + movetext + "\n\n"


BASE = {"Event": "Rated Blitz game", "WhiteElo": "1200", "BlackElo": "1100", "Result": "0-1"}
BAD = [  # (reason, game text)
    ("variant", _game({**BASE, "Variant": "Chess960"}, "1. e4 e5 0-1")),
    ("from_position", _game({**BASE, "Variant": "From Position", "SetUp": "1", "FEN": "8/8/8/8/8/8/8/K6k w - - 0 1"},
                            "1. Kb1 0-1")),
    ("unrated", _game({**BASE, "Event": "Casual Blitz game"}, "1. e4 e5 0-1")),
    ("missing_rating", _game({k: v for k, v in BASE.items() if k != "BlackElo"}, "1. e4 e5 0-1")),
    ("bad_rating", _game({**BASE, "WhiteElo": "12x0"}, "1. e4 e5 0-1")),
    ("over_max_rating", _game({**BASE, "WhiteElo": "1600"}, "1. e4 e5 0-1")),
    ("no_result", _game({**BASE, "Result": "*"}, "1. e4 e5 *")),
    ("bad_move", _game(BASE, "1. e4 e5 2. Ke3 0-1")),
    ("bad_move", _game(BASE, "1. e4 Zz9 0-1")),
    ("no_moves", _game(BASE, "0-1")),
    ("no_headers", "\x00\x01garbage \xff bytes\n\n"),
]


def _expected():
    expected = {r: 0 for r in ingest.DROP_REASONS}
    for reason, _ in BAD:
        expected[reason] += 1
    return expected


def _write(path, text: str):
    data = text.encode("utf-8", "surrogateescape")
    if str(path).endswith(".zst"):
        data = zstandard.ZstdCompressor(write_checksum=True).compress(data)
    elif str(path).endswith(".bz2"):
        data = bz2.compress(data)
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("ext", [".pgn", ".pgn.zst", ".pgn.bz2"])
def test_bad_games_counted_by_reason(tmp_path, ext):
    text = GOOD + "".join(g for _, g in BAD) + GOOD.replace('"1-0"', '"1/2-1/2"').replace(" 1-0", " 1/2-1/2")
    path = _write(tmp_path / f"games{ext}", text)
    recs, counts = _ingest([path], filters=ingest.Filters(max_rating=1500), workers=0)
    assert counts["dropped"] == _expected() and counts["input_games"] == len(BAD) + 2
    assert [r.result for r in recs] == ["1-0", "1/2-1/2"]
    sans = "e4 e5 Nf3 Nc6 Bb5 a6 Ba4 Nf6 O-O Be7".split()  # comments, NAGs, variations stripped
    board = chess.Board()
    assert tokenizer.decode_game(recs[0].tokens)[0] == [board.push_san(s) for s in sans]
    assert (recs[0].white_elo, recs[0].black_elo, recs[0].source) == (1200, 1100, f"games{ext}")


@pytest.mark.parametrize("ext", [".pgn.zst", ".pgn.bz2"])
def test_truncated_and_corrupt_files_do_not_stop_the_run(tmp_path, ext):
    many = GOOD * 300
    full = _write(tmp_path / f"full{ext}", many)
    cut = tmp_path / f"cut{ext}"
    cut.write_bytes(full.read_bytes()[: len(full.read_bytes()) // 2])
    junk = tmp_path / f"junk{ext}"
    junk.write_bytes(b"this is not compressed data at all" * 10)
    good = _write(tmp_path / "good.pgn", GOOD)
    recs, counts = _ingest([cut, junk, good], workers=2)
    assert {e["file"] for e in counts["file_errors"]} == {str(cut), str(junk)}
    assert counts["dropped"]["truncated"] >= 2 and counts["files"][str(good)] == 1
    assert recs[-1].source == "good.pgn" and 0 < len(recs) < 301  # games before the cut are kept


def test_csv_transcripts(tmp_path):
    path = tmp_path / "games.csv"
    path.write_text(
        "url,WhiteElo,BlackElo,result,transcript\n"
        "https://lichess.org/a,900,950,1-0,\";1.e4 e5 2.Qh5 Nc6 3.Bc4 Nf6 4.Qxf7#\"\n"
        "https://lichess.org/b,900,,0-1,;1.d4 d5\n"
        "https://lichess.org/c,900,1000,0-1,;1.e4 e5 2.Ke3\n"
        "https://lichess.org/d,1400,1000,0-1,;1.e4\n"
        "https://lichess.org/e,800,800,1/2-1/2,1.e4 e5 2.Nf3 Nc6\n"
    )
    recs, counts = _ingest([path], filters=ingest.Filters(max_rating=1000), workers=0)
    assert [r.num_moves for r in recs] == [7, 4] and [r.result for r in recs] == ["1-0", "1/2-1/2"]
    d = counts["dropped"]
    assert (d["missing_rating"], d["bad_move"], d["over_max_rating"]) == (1, 1, 1)
    bad = tmp_path / "bad.csv"
    bad.write_text("url,white,black\n")
    with pytest.raises(UserError, match="bad.csv"):
        list(ingest.ingest([str(bad)], workers=0))


def test_games_without_ratings_are_kept_without_a_cap(tmp_path, capsys):
    engine = _game({"Event": "Engine match", "White": "Stockfish", "Black": "Stockfish", "Result": "1/2-1/2"},
                   "1. e4 e5 2. Nf3 Nc6 1/2-1/2")
    half = _game({**BASE, "BlackElo": "?"}, "1. d4 d5 0-1")
    path = _write(tmp_path / "engine.pgn", engine + half + GOOD)
    recs, counts = _ingest([path], workers=0)  # no cap: every rating, none included, is kept
    assert [(r.white_elo, r.black_elo) for r in recs] == [(NO_RATING, NO_RATING),
                                                          (1200, NO_RATING), (1200, 1100)]
    assert NO_RATING == -1 and counts["dropped"]["missing_rating"] == 0
    recs, counts = _ingest([path], filters=ingest.Filters(max_rating=1500), workers=0)
    assert len(recs) == 1 and counts["dropped"]["missing_rating"] == 2  # a cap needs both ratings
    out = tmp_path / "ds"
    assert cli.main(["data", "build", str(path), "--out", str(out), "--val-fraction", "0"]) == 0
    stats = json.loads((out / "stats.json").read_text())
    assert stats["kept"] == 3 and stats["without_rating"] == 2 and stats["rating_histogram"] == {"1200": 1}
    assert "2 without a rating" in capsys.readouterr().out


def test_unopenable_input_is_one_user_error(tmp_path, capsys):
    with pytest.raises(UserError, match="missing.pgn"):
        list(ingest.ingest([str(tmp_path / "missing.pgn")]))
    assert cli.main(["data", "build", str(tmp_path / "missing.pgn"), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "missing.pgn" in err and err.count("\n") == 1


def test_data_build_command(tmp_path, capsys):
    # Distinct games (ratings differ): identical games share a split by design.
    text = "".join(GOOD.replace('"1200"', f'"{1200 + i}"') + "".join(g for _, g in BAD) for i in range(20))
    src = _write(tmp_path / "games.pgn.zst", text)
    out = tmp_path / "ds"
    argv = ["data", "build", str(src), "--out", str(out), "--max-rating", "1300", "--shards", "2",
            "--val-fraction", "0.2", "--workers", "2", "--boards"]
    assert cli.main(argv) == 0
    assert "20 kept" in capsys.readouterr().out
    stats = json.loads((out / "stats.json").read_text())
    assert stats["input_games"] == 20 * (len(BAD) + 1) and stats["kept"] == 20
    assert stats["train"] + stats["validation"] == 20 and stats["validation"] > 0
    assert stats["dropped"] == {k: 20 * v for k, v in _expected().items()}
    assert stats["rating_histogram"] == {"1200": 20} and stats["length_histogram"] == {"0": 20}
    files = build.dataset_files(str(out), "train")
    assert [f.rsplit("/", 1)[1] for f in files] == ["train-00000-of-00002.array_record",
                                                    "train-00001-of-00002.array_record"]
    source = grain.sources.ArrayRecordDataSource(files + build.dataset_files(str(out), "validation"))
    recs = [decode(source[i]) for i in range(len(source))]
    assert len(recs) == 20
    moves, _ = tokenizer.decode_game(recs[3].tokens)
    assert np.array_equal(recs[3].boards, game_boards(moves))
    # Deterministic: rebuilding gives the same split, byte for byte.
    first = (out / "validation-00000-of-00001.array_record").read_bytes()
    assert cli.main(argv[:-3] + ["--workers", "0", "--boards"]) == 0
    assert (out / "validation-00000-of-00001.array_record").read_bytes() == first
    with pytest.raises(UserError, match="no train shards"):
        build.dataset_files(str(tmp_path), "train")


def test_tfds_builder_reads_without_tensorflow(tmp_path):
    import sys

    import tensorflow_datasets as tfds

    from transcendence_jax.data.tfds_lichess import LichessGames

    manual = tmp_path / "manual"
    manual.mkdir()
    text = "".join(GOOD.replace('"1200"', f'"{1200 + 50 * i}"') for i in range(6))  # max ratings 1200..1450
    _write(manual / "games.pgn.zst", text + "".join(g for _, g in BAD))
    builder = LichessGames(config="max_1300", data_dir=str(tmp_path / "tfds"))
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=str(manual)),
                                 file_format="array_record")
    source = tfds.data_source("lichess_games/max_1300", data_dir=str(tmp_path / "tfds"))["train"]
    examples = sorted((source[i] for i in range(len(source))), key=lambda e: e["white_elo"])
    recs, _ = _ingest([manual / "games.pgn.zst"], filters=ingest.Filters(max_rating=1300), workers=0)
    assert [e["white_elo"] for e in examples] == [r.white_elo for r in recs] == [1200, 1250, 1300]
    assert all(np.array_equal(e["tokens"], r.tokens) for e, r in zip(examples, recs))
    assert examples[0]["source"] == b"games.pgn.zst" and examples[0]["result"] == 0  # "1-0"
    assert "tensorflow" not in sys.modules


@pytest.mark.parametrize("fen, san, uci", [
    ("4k3/8/8/8/1b6/8/3N4/4K3 w - - 0 1", "Nf3", None),  # the only knight is pinned
    ("4k3/8/8/8/1b6/8/3N4/4K1N1 w - - 0 1", "Nf3", "g1f3"),  # two can reach f3, one is pinned
    ("4k3/8/8/8/8/8/3N4/4K1N1 w - - 0 1", "Nf3", None),  # ambiguous
    ("4k3/8/8/8/7b/8/8/R3K3 w - - 0 1", "Ra2", None),  # in check: must answer it
    ("4k3/8/8/8/7b/8/8/R3K3 w - - 0 1", "Kd1", "e1d1"),
    ("4k3/8/8/3pP3/8/8/8/4K3 w - d6 0 1", "exd6", "e5d6"),  # en passant
    ("4k3/8/8/8/8/8/4P3/4K3 w - - 0 1", "e4", "e2e4"),
    ("4k3/8/8/8/8/4p3/4P3/4K3 w - - 0 1", "e4", None),  # blocked double step
    ("4k3/8/8/8/8/8/8/R3K2R w KQ - 0 1", "Rb1", "a1b1"),
])
def test_play_san_agrees_with_python_chess(fen, san, uci):
    board = chess.Board(fen)
    if uci is None:
        with pytest.raises(ValueError):
            play_san(board, san)
        return
    expected = chess.Board(fen)
    expected.push_san(san)
    assert play_san(board, san).uci() == uci
    assert board.board_fen() == expected.board_fen() and board.turn == expected.turn
    assert board.castling_rights == expected.clean_castling_rights() and board.ep_square == expected.ep_square


@pytest.mark.parametrize("fen, san, uci", [
    ("4k3/8/8/8/8/8/8/r3K3 w - - 0 1", "Kd1", None),  # onto an attacked square
    ("4k3/8/8/8/8/8/3r4/4K3 w - - 0 1", "Kxd2", "e1d2"),  # capture of an undefended rook
    ("4k3/3r4/8/8/8/8/3r4/4K3 w - - 0 1", "Kxd2", None),  # defended
    ("4k3/8/8/8/8/8/8/r3K3 w - - 0 1", "Kf1", None),  # along the checking rank (x-ray behind the king)
    ("4k3/8/8/8/8/8/8/r3K3 w - - 0 1", "Ke2", "e1e2"),
    ("r3k2r/8/8/8/8/8/8/R3K2R w KQkq - 0 1", "Kd1", "e1d1"),  # gives up white's castling rights
    ("r3k2r/8/8/8/8/8/8/R3K2R b KQkq - 0 1", "Rxa1+", "a8a1"),  # takes a rook: both a-file rights go
])
def test_play_san_king_moves(fen, san, uci):
    test_play_san_agrees_with_python_chess(fen, san, uci)
