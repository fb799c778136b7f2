"""The reduced demo end to end: experts' data, training, tournament, ratings, state-level measure."""

import json

import chess
import pytest

from transcendence_jax.demo import demo
from transcendence_jax.experiment import model_name, vote_name

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


def test_figure_panel_of_state_level_gains_is_the_json_s(demo_run):
    """The figure's second panel: each group's state-level gain at each temperature, as results.json has it."""
    from transcendence_jax.demo import state_level_series

    _, summary = demo_run
    for kind in ("diverse", "clones"):
        states = summary["populations"][kind]["state_level"]
        drawn = state_level_series(kind, states)
        for group, name in (("blind", "some expert blind"), ("none_blind", "none blind")):
            expected = [(float(t), v["gain_over_experts"]["groups"][group]["mean"])
                        for t, v in states["temperatures"].items() if group in v["gain_over_experts"].get("groups", {})]
            assert [p[:2] for p in drawn.get(f"{kind}: {name}", [])] == expected
        assert any(drawn.values())


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
            assert v["kl_from_mixture"] >= 0.0 and 0.0 <= v["mass_on_vote"] <= 1.0 + 1e-9
        # Sharpening moves the model away from the mixture.
        low, high = states[str(min(cfg["temperatures"]))], states[str(max(cfg["temperatures"]))]
        assert low["kl_from_mixture"] > high["kl_from_mixture"]
        assert pop["state_level"]["values"] == "stockfish"  # the paper's values, not rollouts
        assert set(pop["state_level"]["vote_gain_over_experts"]) >= {"mean", "ci95", "share_top"}


def test_rerun_resumes_without_replaying(demo_run, capsys):
    out, summary = demo_run
    before = {k: (out / k / "tournament" / "games.jsonl").read_text() for k in ("diverse", "clones")}
    again = demo(str(out), scale="reduced", overrides=["workers=1"])
    for k in ("diverse", "clones"):
        assert (out / k / "tournament" / "games.jsonl").read_text() == before[k]
        assert again["populations"][k]["ratings"] == summary["populations"][k]["ratings"]
    logs = "".join((out / k / "log.txt").read_text() for k in ("diverse", "clones"))
    assert "already built" in logs and "nothing to do" in logs  # data and training were not redone


TINY = ["games=120", "games_per_pair=2", "head_to_head=2", "max_plies=30", "analysis_positions=4", "workers=1",
        "training.train.steps=10", "training.train.eval_every=10", "training.train.checkpoint_every=10",
        "training.train.batch_size=8", "training.train.eval_batches=1", "training.train.log_every=5"]


def test_seeds_are_independent_replicates_and_reproduce(tmp_path):
    """seeds=2: a second replicate with its own seed (its own experts' games, training and games),
    the verdict over both with a CI from seeds and games; a replicate rerun alone from scratch
    plays the same games."""
    from transcendence_jax.experiment import run_population

    out = tmp_path / "two"
    summary = demo(str(out), scale="reduced", populations=["diverse"], parallel=False,
                   overrides=[*TINY, "seeds=2", "analysis_positions=16"])
    pop = summary["populations"]["diverse"]
    per_seed = pop["seeds"]["per_seed"]
    assert [s["seed"] for s in per_seed] == [0, 1]
    first, second = ((out / name / "tournament" / "games.jsonl").read_text() for name in ("diverse", "diverse-seed1"))
    assert first != second  # the seeds really differ
    assert pop["model_minus_best_expert"]["diff"] == pytest.approx(sum(s["diff"] for s in per_seed) / 2)
    lo, hi = pop["model_minus_best_expert"]["lo"], pop["model_minus_best_expert"]["hi"]
    assert lo < pop["model_minus_best_expert"]["diff"] < hi
    assert "over 2 seeds" in pop["verdict"]
    # The state-level gain where some expert is blind, pooled the same way: the mean of the seeds' means.
    low = model_name(min(summary["config"]["temperatures"]))
    over = pop["state_level_over_seeds"][low]
    assert over["per_seed"][0] == pytest.approx(pop["state_level"]["temperatures"][str(min(
        summary["config"]["temperatures"]))]["gain_over_experts"]["groups"]["blind"]["mean"])
    assert over["across"]["mean"] == pytest.approx(sum(over["per_seed"]) / 2)
    assert over["across"]["lo"] <= min(over["per_seed"]) and max(over["per_seed"]) <= over["across"]["hi"]
    cfg = summary["config"]
    from ml_collections import ConfigDict

    again = run_population(ConfigDict(cfg), "diverse", str(tmp_path / "again"), replicate=1)
    assert again["seed"] == 1
    assert (tmp_path / "again" / "diverse-seed1" / "tournament" / "games.jsonl").read_text() == second


def test_replicates_train_together_in_one_stacked_step(tmp_path):
    """train_together=true (the default on a GPU/TPU): every replicate's data first, then their
    models in one stacked training, then each replicate's tournament; each model keeps its seed
    and data, and its training log matches a solo run's first loss."""
    import numpy as np

    from transcendence_jax.training.metrics import read_metrics

    out = tmp_path / "together"
    summary = demo(str(out), scale="reduced", populations=["diverse"], parallel=True,
                   overrides=[*TINY, "seeds=2", "train_together=true"])
    assert [s["seed"] for s in summary["populations"]["diverse"]["seeds"]["per_seed"]] == [0, 1]
    assert "training 2 models together" in (out / "stages" / "training" / "log.txt").read_text()
    configs = [json.loads((out / name / "train" / "config.json").read_text()) for name in ("diverse", "diverse-seed1")]
    assert [c["train"]["seed"] for c in configs] == [0, 1]
    assert configs[0]["data"]["path"] != configs[1]["data"]["path"]
    for name in ("diverse", "diverse-seed1"):  # trained once: the replicate's own run found it done
        assert "nothing to do" in (out / name / "log.txt").read_text()
    from ml_collections import ConfigDict

    from transcendence_jax.training.train import train

    solo = tmp_path / "solo"  # replicate 1's training alone, from the config it was trained with
    train(ConfigDict(configs[1]), str(solo))
    # Each replicate evaluates on its own validation games: replicate 0's hold a batch (seed 1's
    # 120 games leave 3 for validation, too few for one batch of 8: a warning, no val_* keys).
    first = read_metrics(str(out / "diverse" / "train" / "metrics.jsonl"))
    assert 0 < first[-1]["val_accuracy"] < 1 and first[-1]["val_loss"] > 0  # eval_every=10: the last step
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(out / "diverse" / "train" / "tensorboard"))
    events.Reload()
    assert {"eval/loss", "eval/accuracy", "train/loss"} <= set(events.Tags()["scalars"])
    rows = read_metrics(str(out / "diverse-seed1" / "train" / "metrics.jsonl"))
    together = [r["loss"] for r in rows]
    np.testing.assert_allclose(together, [r["loss"] for r in read_metrics(str(solo / "metrics.jsonl"))], rtol=1e-4)


def test_an_experiment_is_a_config_file(tmp_path):
    """A user's own experiment (here: a population halfway between diverse and clones) is a config
    file run by the same command, with the same overrides."""
    from transcendence_jax import cli
    from transcendence_jax.demo import demo_config
    from transcendence_jax.experiment import make_population

    path = tmp_path / "half.py"
    path.write_text("from ml_collections import ConfigDict\n"
                    "from transcendence_jax.configs import demo_reduced\n\n\n"
                    "def get_config():\n"
                    "    c = demo_reduced.get_config()\n"
                    "    c.populations = ConfigDict({'half': 0.5})\n"
                    "    return c\n")
    cfg = demo_config(config=str(path), overrides=TINY)
    experts = make_population(cfg, "half")
    shared = experts[0].blind
    for e in experts[1:]:
        shared &= e.blind
    assert bin(shared).count("1") == round(0.5 * bin(experts[0].blind).count("1"))
    out = tmp_path / "out"
    assert cli.main(["demo", "--config", str(path), "--out", str(out), "--sequential",
                     *(f"--config.{o}" for o in TINY)]) == 0
    summary = json.loads((out / "results.json").read_text())
    assert list(summary["populations"]) == ["half"] and summary["config"]["populations"] == {"half": 0.5}


def test_ensemble_vote_trains_a_model_per_expert_on_its_own_games(tmp_path):
    """ensemble_vote: one model per expert, each trained on that expert's self-play games only
    (here the members trained together, in one stacked step), voting move by move in the
    tournament as one player."""
    out = tmp_path / "ens"
    summary = demo(str(out), scale="reduced", populations=["diverse"], parallel=False,
                   overrides=[*TINY, "experts=3", "ensemble_vote=true", "model_votes=[]", "reference_players=[]",
                              "train_together=true"])
    pop = summary["populations"]["diverse"]
    assert "ensemble-vote@1" in pop["ratings"]["players"]
    assert "ensemble-vote@1 minus best expert" in pop["fidelity"]
    for i in range(summary["config"]["experts"]):
        stats = json.loads((out / "diverse" / "ensemble" / f"expert{i}" / "data" / "stats.json").read_text())
        assert {e["id"] for e in stats["experts"]["experts"]} == {i}  # its own games only
        assert (out / "diverse" / "ensemble" / f"expert{i}" / "train" / "metrics.jsonl").exists()
    configs = [json.loads((out / "diverse" / "ensemble" / f"expert{i}" / "train" / "config.json").read_text())
               for i in range(summary["config"]["experts"])]
    assert len({c["train"]["seed"] for c in configs}) == len({c["data"]["path"] for c in configs}) == len(configs)


def test_a_replicate_folder_refuses_other_settings(tmp_path):
    """Resuming with more training steps (or other players) would rate the old games as the new
    model's: refused in one line naming what changed; workers and seeds may change."""
    from transcendence_jax.demo import demo_config
    from transcendence_jax.errors import UserError
    from transcendence_jax.experiment import check_settings

    cfg = demo_config("reduced", overrides=TINY)
    check_settings(str(tmp_path / "diverse"), cfg, "diverse")
    check_settings(str(tmp_path / "diverse"), demo_config("reduced", overrides=[*TINY, "workers=2", "seeds=3"]),
                   "diverse")
    with pytest.raises(UserError, match=r"other settings \(training\.train\.steps: 10 -> 20"):
        check_settings(str(tmp_path / "diverse"), demo_config("reduced", overrides=[*TINY, "training.train.steps=20"]),
                       "diverse")
