"""What a training run shows: TensorBoard events read back with tensorboard's own reader, the W&B
writer (offline) and its absence, plain progress lines in logs, and the run header."""

import io
import json
import sys

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from transcendence_jax.config import load_config
from transcendence_jax.progress import LineProgress, bar
from transcendence_jax.training.metrics import MetricsWriter, run_header, tag, write_scalars


def _events(logdir) -> EventAccumulator:
    events = EventAccumulator(str(logdir), size_guidance={"scalars": 0, "tensors": 0})
    events.Reload()
    return events


def _rows(writer):
    writer.write(1, {"loss": 3.0, "accuracy": 0.1, "grad_norm": 2.0, "lr": 1e-4, "mfu": None})
    writer.write(2, {"loss": 2.5, "accuracy": 0.2, "grad_norm": 1.5, "lr": 2e-4, "val_loss": 2.6,
                     "val_accuracy": 0.18})


def test_tensorboard_tags_hparams_and_config_text(tmp_path, capsys):
    config = load_config("tiny", ["train.steps=2"])
    writer = MetricsWriter(tmp_path / "w", total_steps=2, config=config)
    _rows(writer)
    writer.close()
    events = _events(tmp_path / "w" / "tensorboard")
    scalars = set(events.Tags()["scalars"])
    assert {"train/loss", "train/accuracy", "train/grad_norm", "train/lr", "eval/loss", "eval/accuracy"} <= scalars
    assert not any(t.startswith("val_") or "/" not in t for t in scalars) and "train/mfu" not in scalars
    assert [e.value for e in events.Scalars("eval/accuracy")] == [pytest.approx(0.18)]
    assert [(e.step, e.value) for e in events.Scalars("train/loss")] == [(1, 3.0), (2, 2.5)]
    text = events.Tensors("config/text_summary")[0].tensor_proto.string_val[0].decode()
    assert '"num_layers": 4' in text and text.startswith("    {")  # the whole config, as a code block
    hparams = events.PluginTagToContent("hparams")
    assert {"_hparams_/experiment", "_hparams_/session_start_info"} <= set(hparams)
    assert b"train.batch_size" in hparams["_hparams_/session_start_info"]
    assert "\r" not in capsys.readouterr().err  # stderr is not a terminal here: plain lines, no bar


def test_config_comes_from_the_workdir_and_eval_scalars_join_the_run(tmp_path):
    work = tmp_path / "w"
    work.mkdir()
    (work / "config.json").write_text(load_config("tiny").to_json_best_effort())
    writer = MetricsWriter(work, total_steps=2)
    _rows(writer)
    writer.close()
    write_scalars(work / "tensorboard", 2,
                  {"eval/elo/tau_0.001": 1234.5, "eval/elo/tau_1": 900.0, "eval/bad": float("nan")})
    events = _events(work / "tensorboard")
    assert {"eval/elo/tau_0.001", "eval/elo/tau_1", "train/loss"} <= set(events.Tags()["scalars"])
    assert "eval/bad" not in events.Tags()["scalars"]
    assert [(e.step, e.value) for e in events.Scalars("eval/elo/tau_0.001")] == [(2, 1234.5)]
    assert "config/text_summary" in events.Tags()["tensors"]
    assert tag("val_loss") == "eval/loss" and tag("tokens_per_s") == "train/tokens_per_s" and tag("a/b") == "a/b"


def test_wandb_when_asked_and_installed(tmp_path, monkeypatch):
    """A real offline W&B run; its id is kept so a resumed workdir continues the same run."""
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    config = load_config("tiny", ["train.wandb=tj-test"])
    writer = MetricsWriter(tmp_path / "w", total_steps=2, config=config)
    assert writer.wandb is not None and writer.wandb.project == "tj-test"
    _rows(writer)
    run_id = writer.wandb.id
    writer.close()
    assert (tmp_path / "w" / "wandb_id.txt").read_text() == run_id
    logged = list((tmp_path / "w").glob(f"wandb/offline-run-*-{run_id}/run-{run_id}.wandb"))
    assert logged and logged[0].stat().st_size > 0


def test_wandb_asked_but_not_installed_is_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "wandb", None)  # `import wandb` raises ImportError, as when not installed
    writer = MetricsWriter(tmp_path / "w", total_steps=2, config=load_config("tiny", ["train.wandb=tj-test"]))
    _rows(writer)
    writer.close()
    notes = [line for line in capsys.readouterr().err.splitlines() if "wandb" in line]
    assert notes == ["note: config.train.wandb='tj-test' but wandb is not installed (pip install wandb); "
                     "logging to TensorBoard only"]
    assert "train/loss" in _events(tmp_path / "w" / "tensorboard").Tags()["scalars"]


def test_progress_is_plain_lines_off_a_terminal(tmp_path):
    out = io.StringIO()
    progress = bar(4, desc="games", unit="game", every_s=0.0, file=out)
    assert isinstance(progress, LineProgress)
    for i in range(4):
        progress.set_postfix({"loss": f"1.{i}"})
        progress.update(1)
    progress.close()
    lines = out.getvalue().splitlines()
    assert "\r" not in out.getvalue() and len(lines) == 4  # one a step (every_s=0), none repeated at close
    assert lines[0].startswith("games: 1/4 (25%), ") and "left" in lines[0]
    assert lines[-1].startswith("games: 4/4 (100%), ") and lines[-1].endswith(" game/s, loss=1.3")
    quiet = io.StringIO()
    progress = bar(10, initial=3, desc="train", every_s=3600.0, file=quiet)
    progress.update(2)
    progress.close()
    assert len(quiet.getvalue().splitlines()) == 1 and quiet.getvalue().startswith("train: 5/10 (50%), ")


def test_run_header(data_dir):
    from transcendence_jax.training import sharding

    config = load_config("tiny", [f"data.path={data_dir}", "train.steps=50", "train.batch_size=8"])
    mesh = sharding.make_mesh((-1, 1, 1))
    with open(f"{data_dir}/stats.json") as f:
        stats = json.load(f)
    header = run_header(config, mesh, 1_412_864)
    lines = header.splitlines()
    assert lines[0] == "model: 1,412,864 parameters (4 layers, 4 heads, width 128)"
    assert lines[1].startswith("devices: 1 x cpu (cpu) over 1 process(es); mesh data 1 x fsdp 1 x tensor 1")
    assert lines[2] == (f"data: {stats['train']:,} training games, {stats['validation']:,} validation, "
                        f"{stats['tokens']:,} tokens in all ({data_dir})")
    passes = 50 * 8 / stats["train"]
    assert lines[3] == (f"per step: 8 sequences x 101 tokens = 808 tokens (padding included); 50 steps = 40,400 "
                        f"tokens, {passes:.1f} passes over the training games")
    assert "size unknown" in run_header(load_config("tiny", ["data.path=/nowhere"]), mesh, 10)
