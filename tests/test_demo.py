"""The reduced demo end to end: experts' data, training, tournament, ratings, state-level measure."""

import json

import chess.pgn
import pytest

from transcendence_jax.demo import demo, model_name

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    summary = demo(str(out), scale="reduced", overrides=["workers=1"])
    return out, summary


def test_artefacts(demo_run):
    out, summary = demo_run
    assert (out / "transcendence.png").stat().st_size > 1000
    on_disk = json.loads((out / "results.json").read_text())
    assert set(on_disk["populations"]) == {"diverse", "clones"}
    for kind in ("diverse", "clones"):
        assert (out / kind / "train" / "metrics.jsonl").exists()
        assert (out / kind / "data" / "stats.json").exists()
        with open(out / kind / "tournament" / "games.pgn") as f:
            n = 0
            while (game := chess.pgn.read_game(f)) is not None:
                board = game.board()
                for move in game.mainline_moves():
                    assert board.is_legal(move)
                    board.push(move)
                n += 1
        assert n == on_disk["populations"][kind]["games"]


def test_table_structure(demo_run, capsys):
    out, summary = demo_run
    cfg = summary["config"]
    players = {f"expert{i}" for i in range(cfg["experts"])} | {"base"} | {model_name(t) for t in cfg["temperatures"]}
    for kind, pop in summary["populations"].items():
        ratings = pop["ratings"]
        assert players <= set(ratings["elo"]), kind
        for name in players:
            lo, hi = ratings["ci"][name]
            assert lo <= ratings["elo"][name] <= hi
        d = pop["model_minus_best_expert"]
        assert d["lo"] <= d["diff"] <= d["hi"]
        assert pop["verdict"].startswith(f"{kind}: ") and ("transcends" in pop["verdict"])
        assert pop["transcends"] == (d["lo"] > 0)
        states = pop["state_level"]["temperatures"]
        assert set(states) == {str(t) for t in cfg["temperatures"]}
        for v in states.values():
            assert 0.0 <= v["agreement_with_base"] <= 1.0


def test_rerun_resumes_without_replaying(demo_run, capsys):
    out, summary = demo_run
    before = {k: (out / k / "tournament" / "games.jsonl").read_text() for k in ("diverse", "clones")}
    again = demo(str(out), scale="reduced", overrides=["workers=1"])
    for k in ("diverse", "clones"):
        assert (out / k / "tournament" / "games.jsonl").read_text() == before[k]
        assert again["populations"][k]["ratings"] == summary["populations"][k]["ratings"]
    assert "already built" in capsys.readouterr().out
