"""The reduced demo end to end: experts' data, training, tournament, ratings, state-level measure."""

import json

import chess
import pytest

from transcendence_jax.demo import demo, model_name, vote_name

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
        rows = [json.loads(line) for line in (out / kind / "tournament" / "games.jsonl").read_text().splitlines()]
        assert len(rows) == on_disk["populations"][kind]["games"]
        for row in rows:
            board = chess.Board(row["start_fen"])
            for uci in row["moves"].split():
                move = chess.Move.from_uci(uci)
                assert board.is_legal(move), (row["game_id"], uci)
                board.push(move)
            assert len(board.move_stack) == row["plies"]


def test_table_structure(demo_run, capsys):
    out, summary = demo_run
    cfg = summary["config"]
    players = {f"expert{i}" for i in range(cfg["experts"])} | {"base"} | {model_name(t) for t in cfg["temperatures"]}
    players |= set(cfg["reference_players"]) | {vote_name(k, cfg["vote_temperature"]) for k in cfg["model_votes"]}
    assert {"vote", "mixture", "model-vote5@1"} <= players  # every reference player plays in the reduced preset
    for kind, pop in summary["populations"].items():
        ratings = pop["ratings"]["players"]
        assert players <= set(ratings), kind
        for name in players:
            lo, hi = ratings[name]["ci95"]
            assert lo <= ratings[name]["elo"] <= hi
        d = pop["model_minus_best_expert"]
        assert d["lo"] <= d["diff"] <= d["hi"]
        assert pop["verdict"].startswith((f"{kind}: transcends: ", f"{kind}: does not transcend: "))
        assert pop["transcends"] == (d["lo"] > 0)
        fidelity = pop["fidelity"]
        assert {"model@1 minus mixture", "model@0.001 minus vote", "vote minus best expert"} <= set(fidelity)
        for label, (a, b) in {"model@1 minus mixture": ("model@1", "mixture"),
                              "model@0.001 minus vote": ("model@0.001", "vote")}.items():
            want = ratings[a]["elo"] - ratings[b]["elo"]
            assert abs(fidelity[label]["diff"] - want) < 1e-6 and fidelity[label]["lo"] <= want <= fidelity[label]["hi"]
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
    logs = "".join((out / k / "log.txt").read_text() for k in ("diverse", "clones"))
    assert "already built" in logs and "nothing to do" in logs  # data and training were not redone
