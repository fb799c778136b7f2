"""Generations (generations.py) at a reduced size: generation g+1 trains on generation g's own
self-play games (source and game ids recorded), a killed chain resumes without redoing finished
generations, and every generation is rated on one scale with its held-out entropy."""

import json
import subprocess
import sys
import time

import chess
import numpy as np
import pytest
from ml_collections import ConfigDict

from transcendence_jax import generations
from transcendence_jax.data.build import dataset_files
from transcendence_jax.data.records import read_records
from transcendence_jax.data.tokenizer import decode_game
from transcendence_jax.errors import UserError
from transcendence_jax.sweep.grid import load_sweep, points

pytestmark = pytest.mark.slow

RUN = ("import json, sys; from ml_collections import ConfigDict; from transcendence_jax import generations; "
       "generations.run(ConfigDict(json.load(open(sys.argv[1]))), sys.argv[2])")


def reduced() -> ConfigDict:
    """The preset's reduced size (configs/sweeps/generations.py), one chain (tau 0.5) of two generations."""
    cfg = load_sweep("generations", "reduced").base
    cfg.workers, cfg.max_plies, cfg.analysis_positions = 1, 30, 6
    cfg.self_play_temperatures, cfg.self_play_games = [0.5], 32
    return cfg


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    """The chain killed once generation 2 has started, then rerun to the end; what the kill left."""
    tmp = tmp_path_factory.mktemp("generations")
    out, root = tmp / "out", tmp / "out" / "generations"
    cfg = reduced()
    (tmp / "cfg.json").write_text(json.dumps(cfg.to_dict()))
    proc = subprocess.Popen([sys.executable, "-c", RUN, str(tmp / "cfg.json"), str(out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 600
        while not (root / "tau0.5" / "gen2").exists() and proc.poll() is None and time.time() < deadline:
            time.sleep(0.5)
    finally:
        proc.kill()
        proc.wait()
    assert (root / "tau0.5" / "gen2").exists() and not (root / "results.json").exists()
    kept = {p: (root / p).read_text() for p in ("gen0/data/stats.json", "gen0/train/metrics.jsonl",
                                                "tau0.5/gen1/data/stats.json", "tau0.5/gen1/train/metrics.jsonl",
                                                "tau0.5/gen1/selfplay/games.jsonl")}
    summary = generations.run(cfg, str(out))
    return cfg, root, summary, kept


def _records(data_dir):
    return list(read_records(dataset_files(str(data_dir), "train") + dataset_files(str(data_dir), "validation")))


def test_killed_chain_resumes_without_redoing_finished_generations(chain):
    cfg, root, summary, kept = chain
    for path, text in kept.items():
        assert (root / path).read_text() == text, path  # neither replayed nor retrained
    assert (root / "results.json").exists() and (root / "generations.png").stat().st_size > 1000
    assert json.loads((root / "results.json").read_text()) == json.loads(json.dumps(summary))


def test_each_generation_trains_on_the_previous_models_games(chain):
    cfg, root, summary, _ = chain
    for g, previous in ((1, "gen0/train"), (2, "tau0.5/gen1/train")):
        where = root / "tau0.5" / f"gen{g}"
        stats = json.loads((where / "data" / "stats.json").read_text())
        source = stats["source"]
        assert source["model"] == previous and source["generation"] == g - 1 and source["temperature"] == 0.5
        assert source["step"] == cfg.training.train.steps == summary["chains"]["0.5"][g - 1]["step"]
        assert stats["sources"] == {f"self-play-gen{g - 1}@0.5": cfg.self_play_games}
        rows = [json.loads(line) for line in (where / "selfplay" / "games.jsonl").read_text().splitlines()]
        assert all(r["white"] == r["black"] == "self-play@0.5" for r in rows)
        assert sorted(source["game_ids"]) == sorted(r["game_id"] for r in rows) and len(rows) == cfg.self_play_games
        # The dataset holds exactly those games, move for move.
        played = sorted(r["moves"] for r in rows)
        stored = sorted(" ".join(m.uci() for m in decode_game(rec.tokens)[0]) for rec in _records(where / "data"))
        assert stored == played
        assert summary["chains"]["0.5"][g]["data"]["model"] == previous
    gen0 = json.loads((root / "gen0" / "data" / "stats.json").read_text())
    assert gen0["sources"] == {"experts-diverse": cfg.games}


def test_every_generation_on_one_scale_with_its_entropy(chain):
    cfg, root, summary, _ = chain
    rows = summary["chains"]["0.5"]
    assert [r["generation"] for r in rows] == [0, 1, 2]
    players = summary["ratings"]["players"]
    names = {"gen0@0.5", "gen0@1", "gen1-tau0.5@1", "gen2-tau0.5@1", "base"} | {f"expert{i}" for i in range(5)}
    assert set(players) == names
    games = [json.loads(line) for line in (root / "tournament" / "games.jsonl").read_text().splitlines()]
    assert len(games) == summary["games"] == len(names) * (len(names) - 1) // 2 * cfg.games_per_pair
    for row in rows:
        elo, lo, hi = row["elo@1"]
        assert lo <= elo <= hi and 0 < row["entropy"] < np.log(218) and 0 <= row["base_agreement"] <= 1
    assert np.mean([players[f"expert{i}"]["elo"] for i in range(5)]) == pytest.approx(0, abs=1e-6)


def test_policy_measures_match_the_models_distribution(chain):
    from transcendence_jax.experts.population import base_expert
    from transcendence_jax.sampling.policy import move_probabilities
    from transcendence_jax.training.checkpoint import load_model

    _, root, _, _ = chain
    model = load_model(str(root / "gen0" / "train"))[0]
    board = chess.Board()
    for uci in ("e2e4", "d7d5"):
        board.push_uci(uci)
    probs = move_probabilities(model, board, 1.0)
    p = np.array(list(probs.values()))
    got = generations.policy_measures(model, [board], base_expert())
    assert got["entropy"] == pytest.approx(-(p * np.log(p)).sum(), rel=1e-4)
    assert got["base_agreement"] == pytest.approx(probs[chess.Move.from_uci("e4d5")], rel=1e-4)  # the only capture
    # The CI's draws: means of positions resampled with replacement (here of two positions).
    two = generations.policy_measures(model, [board, chess.Board()], base_expert(), bootstrap=50)
    alone = generations.policy_measures(model, [chess.Board()], base_expert())["entropy"]
    means = {round(v, 4) for v in (got["entropy"], alone, (got["entropy"] + alone) / 2)}
    assert set(two["draws"]["entropy"]) <= means and len(set(two["draws"]["entropy"])) > 1


@pytest.mark.parametrize("field, value", [("generations", 0), ("self_play_games", 0),
                                          ("self_play_temperatures", [0.0]), ("rate_temperatures", [float("inf")])])
def test_bad_generation_fields_are_one_line(tmp_path, field, value):
    cfg = reduced()
    cfg[field] = value
    with pytest.raises(UserError, match=field.split("_")[0]) as err:
        generations.run(cfg, str(tmp_path))
    assert "\n" not in str(err.value) and not list(tmp_path.iterdir())  # refused before anything ran


def test_sweep_point_rows(chain):
    """The sweep's "generations" kind: the finished chain resumed (nothing redone), one row per
    generation with its Elo draws, labels tau and generation."""
    cfg, root, summary, _ = chain
    games = (root / "tournament" / "games.jsonl").read_text()
    rows = generations.sweep_point(cfg, str(root.parent))
    assert (root / "tournament" / "games.jsonl").read_text() == games
    assert [r["labels"] for r in rows] == [dict(tau=0.5, generation=g) for g in range(3)]
    for row, want in zip(rows, summary["chains"]["0.5"]):
        m = row["measures"]
        assert m["entropy"]["value"] == want["entropy"] and m["elo@1"]["value"] == want["elo@1"][0]
        assert m["entropy"]["samples"] == want["draws"]["entropy"]
        assert len(m["elo@1"]["samples"]) == 500 and len(m["minus_best_expert@1"]["samples"]) == 500
        lo, hi = np.percentile(m["minus_best_expert@1"]["samples"], [2.5, 97.5])
        assert lo == pytest.approx(want["minus_best_expert@1"][1], abs=0.05)
        assert hi == pytest.approx(want["minus_best_expert@1"][2], abs=0.05)
        assert row["info"]["step"] == cfg.training.train.steps


def test_preset_sizes():
    for size, gens, games, seeds in (("reduced", 2, 24, 1), ("laptop", 2, 6000, 1), ("gpu", 3, 50_000, 2)):
        sweep = load_sweep("generations", size)
        assert sweep.experiment == "generations" and len(points(sweep)) == seeds
        cfg = points(sweep)[0].cfg
        assert cfg.generations == gens and cfg.self_play_games == games and list(cfg.self_play_temperatures) == [
            0.5, 1.0, 1.5]
        assert cfg.games == (200 if size == "reduced" else games)  # each generation the same recipe
        generations.check(cfg)
