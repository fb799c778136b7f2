"""`data build --stats-only`: what each rating cap keeps, counted in one pass that writes no
dataset, equal to what the builds at those caps write."""

import json

import pytest

from transcendence_jax import cli
from transcendence_jax.data import build, ingest

GAME = '[Event "Rated Blitz game"]\n[WhiteElo "{white}"]\n[BlackElo "{black}"]\n[Result "1-0"]\n\n{moves} 1-0\n\n'


def _built(inputs, out, cap) -> dict:
    stats = build.build(inputs, str(out), filters=ingest.Filters(max_rating=cap), workers=0, num_shards=1)
    return {k: stats[k] for k in ("kept", "train", "validation", "tokens")}


def _as_built(row: dict) -> dict:
    return {"kept": row["games"], "train": row["train"], "validation": row["validation"], "tokens": row["tokens"]}


def test_stats_only_counts_what_each_cap_builds(tmp_path, capsys):
    games = [GAME.format(white=w, black=b, moves=m) for w, b, m in [
        (900, 950, "1. e4 e5 2. Nf3"), (1200, 990, "1. d4"), (1400, 1500, "1. c4 c5 2. Nc3 Nc6"),
        (1600, 800, "1. e4"), ("?", 900, "1. e4 d5"), (1000, 1000, ""), (1300, 1250, "1. e4 e5")]]
    src = tmp_path / "games.pgn"
    src.write_text("".join(games * 3))
    assert cli.main(["data", "build", str(src), "--stats-only", "--caps", "1000,none,1300", "--max-rating", "1500",
                     "--workers", "0", "--out", str(tmp_path / "counts")]) == 0
    out = capsys.readouterr().out
    stats = json.loads((tmp_path / "counts" / "caps.json").read_text())
    assert sorted(p.name for p in (tmp_path / "counts").iterdir()) == ["caps.json"]  # no dataset written
    assert list(stats["caps"]) == ["none", "1000", "1300", "1500"]
    assert [stats["caps"][c]["games"] for c in stats["caps"]] == [18, 3, 9, 12]  # 1000: the first game x 3
    assert stats["caps"]["1000"]["tokens"] == 3 * 4 and stats["dropped"]["no_moves"] == 3
    for cap in (1000, 1300, 1500):
        assert _as_built(stats["caps"][str(cap)]) == _built([str(src)], tmp_path / f"b{cap}", cap)
    assert _as_built(stats["caps"]["none"]) == _built([str(src)], tmp_path / "all", None)
    assert "| <= 1300 | 9 |" in out and "| none | 18 |" in out
    # Without `none` the pass runs at the highest cap: the same counts, the rest dropped on their headers.
    fast = build.cap_stats([str(src)], [1000, 1300], workers=0)
    assert fast["caps"] == {c: stats["caps"][c] for c in ("1000", "1300")}
    assert fast["dropped"]["over_max_rating"] == 2 * 3 and fast["input_games"] == 21


def test_stats_only_first_games(tmp_path):
    src = tmp_path / "games.pgn"
    src.write_text("".join(GAME.format(white=900 + i, black=900, moves="1. e4 e5") for i in range(600)))
    for workers in (0, 2):
        stats = build.cap_stats([str(src)], [1000], workers=workers, first=250)
        assert stats["input_games"] == 250 and stats["caps"]["1000"]["games"] == 101  # 900..1000


def test_stats_only_on_real_lichess_games(tmp_path, lichess_dir, capsys):
    inputs = sorted(str(p) for p in lichess_dir.glob("*.pgn"))
    assert cli.main(["data", "build", *inputs, "--stats-only"]) == 0  # no --out: prints only
    out = capsys.readouterr().out
    stats = build.cap_stats(inputs, [1000, 1300, 1500], workers=2)
    for cap in ("1000", "1500"):
        assert _as_built(stats["caps"][cap]) == _built(inputs, tmp_path / cap, int(cap))
    row = stats["caps"]["1000"]
    assert row["games"] == 308 and f"| <= 1000 | {row['games']:,} | {row['train']:,} |" in out  # ../shared's table


def test_stats_only_user_errors(tmp_path, capsys):
    src = tmp_path / "g.pgn"
    src.write_text(GAME.format(white=900, black=900, moves="1. e4"))
    assert cli.main(["data", "build", str(src), "--stats-only", "--caps", "1000,abc"]) == 2
    assert "--caps '1000,abc': expected ratings separated by commas" in capsys.readouterr().err
    assert cli.main(["data", "build", str(src)]) == 2
    assert "needs --out DIR (or --stats-only" in capsys.readouterr().err


@pytest.mark.parametrize("caps", [[], [None, 1000]])
def test_cap_stats_library(tmp_path, caps):
    src = tmp_path / "g.pgn"
    src.write_text(GAME.format(white=900, black=1100, moves="1. e4 e5"))
    stats = build.cap_stats([str(src)], caps, workers=0)
    assert stats["caps"]["none"] == {"games": 1, "train": 1, "validation": 0, "tokens": 3, "train_tokens": 3}
    assert all(stats["caps"][str(c)]["games"] == 0 for c in caps if c)  # 1100 > 1000
