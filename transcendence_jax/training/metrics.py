"""What a user sees of a training run: its header, progress, metrics.jsonl, TensorBoard events, loss.png.

TensorBoard, as researchers expect it: scalars under `train/` (loss, accuracy, grad_norm, lr,
tokens_per_s, mfu) and `eval/` (a row's `val_*` keys: loss, accuracy), the config's scalars as
hparams and the whole config as text; `eval` adds the model's Elo per temperature under `eval/`
(`write_scalars`). With `config.train.wandb` set to a project name, the same scalars also go to
Weights & Biases when `wandb` is installed (one note line and TensorBoard only when it is not).
Progress is a tqdm bar on a terminal and plain lines in a log file (`transcendence_jax.progress`).

Only process 0 writes anything (`enabled=False` elsewhere). On resume, lines of metrics.jsonl
past the restored step are dropped: they belong to steps the crash lost and will be rerun.

Workdirs may be URLs (gs://bucket/runs/X on a TPU pod): every workdir access goes through
`etils.epath.Path`. Object stores cannot append, and tensorboardX writes gs:// only with extra
packages, so for a URL workdir the files are written in a local temporary directory and copied
to the workdir every `sync_every_s` seconds and at close.
"""

from __future__ import annotations

import json
import math
import os
import secrets
import shutil
import sys
import tempfile
import time

import numpy as np
from etils import epath

from transcendence_jax import jsonl, progress
from transcendence_jax.config import flatten


def is_url(path) -> bool:
    """True for gs://, s3://... paths (they must never go through os.path)."""
    return "://" in str(path)


def as_path(path) -> epath.Path:
    """A workdir as an epath.Path: URLs stay as they are, local paths become absolute."""
    return epath.Path(str(path) if is_url(path) else os.path.abspath(os.fspath(path)))

# Peak dense bf16 FLOP/s per chip, matched on a substring of `jax.Device.device_kind`
# (first match wins, so more specific names come first). None (CPU, unknown) means no MFU.
PEAK_FLOPS = [
    ("TPU v6 lite", 918e12),  # v6e (Trillium)
    ("TPU v6e", 918e12),
    ("TPU v5 lite", 197e12),  # v5e
    ("TPU v5e", 197e12),
    ("TPU v5p", 459e12),
    ("TPU v5", 459e12),
    ("TPU v4", 275e12),
    ("H200", 989e12),  # SXM, dense
    ("H100", 989e12),  # SXM, dense (PCIe parts: 756e12)
    ("A100", 312e12),
]


def peak_flops(device_kind: str) -> float | None:
    """Peak bf16 FLOP/s of one device of this kind, or None when unknown (CPUs)."""
    for name, flops in PEAK_FLOPS:
        if name.lower() in device_kind.lower():
            return flops
    return None


class MetricsWriter:
    """Writes metrics to `workdir/metrics.jsonl`, TensorBoard (and W&B when asked), and shows progress."""

    def __init__(self, workdir, *, total_steps: int, initial_step: int = 0, enabled: bool = True,
                 mirror: bool | None = None, sync_every_s: float = 60.0, config=None,
                 progress_desc: str | None = "train"):
        """mirror: write to a local temp dir and copy to the workdir (default: when it is a URL).
        config: the run's config (a ConfigDict or dict) for hparams, the config text and
        `train.wandb`; default: the workdir's config.json when there is one. progress_desc: the
        progress line's label, None for no progress (a stacked run's other replicates)."""
        self.enabled = enabled
        self.workdir = as_path(workdir)
        self.bar = None
        self.tb = None
        self.wandb = None
        if not enabled:
            return
        self.workdir.mkdir(parents=True, exist_ok=True)
        # `local` is where files are written: the workdir itself, or a temp mirror of a URL workdir.
        self.mirror = is_url(self.workdir) if mirror is None else mirror
        self.local = tempfile.mkdtemp(prefix="transcendence-metrics-") if self.mirror else str(self.workdir)
        self.path = os.path.join(self.local, "metrics.jsonl")
        if self.mirror and (self.workdir / "metrics.jsonl").exists():  # resuming: continue its rows
            epath.Path(self.path).write_bytes((self.workdir / "metrics.jsonl").read_bytes())
        self.sync_every_s, self.last_sync = sync_every_s, time.monotonic()
        _truncate_after(self.path, initial_step)
        SummaryWriter = _import_summary_writer()

        self.tb = SummaryWriter(os.path.join(self.local, "tensorboard"), purge_step=initial_step + 1,
                                filename_suffix=_unique_suffix())
        config = self._config(config)
        if config:
            self._write_config(config, initial_step)
            project = config.get("train", {}).get("wandb")
            if project:
                self.wandb = _start_wandb(project, self.workdir, self.local, config)
        if progress_desc is not None:
            self.bar = progress.bar(total_steps, initial=initial_step, desc=progress_desc, unit="step",
                                    dynamic_ncols=True)

    def _config(self, config) -> dict | None:
        if config is None:
            path = self.workdir / "config.json"
            return json.loads(path.read_text()) if path.exists() else None
        return json.loads(config.to_json_best_effort()) if hasattr(config, "to_json_best_effort") else dict(config)

    def _write_config(self, config: dict, step: int) -> None:
        """The config's scalars as TensorBoard hparams (tuples as text), the whole config as text."""
        from tensorboardX.summary import hparams

        flat = {k: (v if isinstance(v, (bool, int, float, str)) else json.dumps(v)) for k, v in flatten(config).items()
                if v is not None}
        experiment, start, _ = hparams(flat, {"train/loss": None, "eval/loss": None, "eval/accuracy": None})
        self.tb.file_writer.add_summary(experiment)
        self.tb.file_writer.add_summary(start)
        text = json.dumps(config, indent=2)
        self.tb.add_text("config", "    " + text.replace("\n", "\n    "), step)  # indented: a code block

    def write(self, step: int, metrics: dict) -> None:
        """Record scalars for one step (None values are kept in JSONL, skipped in TensorBoard and W&B)."""
        if not self.enabled:
            return
        row = {"step": int(step), "time": round(time.time(), 3)}
        row.update({k: _scalar(v) for k, v in metrics.items()})
        jsonl.append(self.path, [row])
        scalars = {tag(k): v for k, v in row.items() if k not in ("step", "time") and v is not None}
        for key, value in scalars.items():
            self.tb.add_scalar(key, value, step)
        if self.wandb is not None:
            self.wandb.log(scalars, step=int(step))
        if self.mirror and time.monotonic() - self.last_sync > self.sync_every_s:
            self.sync()

    def sync(self) -> None:
        """Copy the local mirror (metrics.jsonl, events, loss.png) to a URL workdir."""
        if not (self.enabled and self.mirror):
            return
        if self.tb is not None:
            self.tb.flush()
        for root, _, files in os.walk(self.local):
            rel = os.path.relpath(root, self.local)
            dst_dir = self.workdir if rel == "." else self.workdir / rel
            dst_dir.mkdir(parents=True, exist_ok=True)
            for name in files:
                (dst_dir / name).write_bytes(epath.Path(root, name).read_bytes())
        self.last_sync = time.monotonic()

    def progress(self, step: int, loss: float | None = None, tokens_per_s: float | None = None) -> None:
        """Move the progress to `step` (a bar's ETA comes from its own step rate)."""
        if not self.enabled or self.bar is None:
            return
        postfix = {}
        if loss is not None:
            postfix["loss"] = f"{loss:.4f}"
        if tokens_per_s is not None:
            postfix["tok/s"] = f"{tokens_per_s:,.0f}"
        if postfix:
            self.bar.set_postfix(postfix, refresh=False)
        self.bar.update(step - self.bar.n)

    def close(self) -> None:
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.close()
        try:
            self.tb.close()
        except OSError:  # a full disk: the event file keeps what it holds
            _give_up(self.tb)
            raise
        finally:
            self.tb = None
        if self.wandb is not None:
            self.wandb.finish()
            self.wandb = None
        plot_losses(self.path, os.path.join(self.local, "loss.png"))
        if self.mirror:
            self.sync()
            shutil.rmtree(self.local, ignore_errors=True)


def _give_up(summary_writer) -> None:
    """Stop a tensorboardX writer that cannot write (a full disk) from trying again: its flush
    thread ends and its close at interpreter exit does nothing; else both print tracebacks after
    the run's one error line. Reaches into tensorboardX 2.x's EventFileWriter (its worker thread)."""
    for file_writer in (summary_writer.all_writers or {}).values():
        events = file_writer.event_writer
        worker = getattr(events, "_worker", None)
        if worker is not None and worker.is_alive():
            worker.stop()
        events.flush = events.close = lambda: None


def tag(key: str) -> str:
    """A metrics row's key as a TensorBoard tag: `val_x` -> `eval/x`, `x` -> `train/x` (`a/b` as it is)."""
    if "/" in key:
        return key
    return f"eval/{key[4:]}" if key.startswith("val_") else f"train/{key}"


def _start_wandb(project: str, workdir, local: str, config: dict):
    """A W&B run for this workdir (resumed with the workdir: its id is kept in wandb_id.txt), or
    None with one note line when wandb is not installed."""
    try:
        import wandb
    except ImportError:
        print(f"note: config.train.wandb={project!r} but wandb is not installed (pip install wandb); "
              "logging to TensorBoard only", file=sys.stderr)
        return None
    id_path = workdir / "wandb_id.txt"
    run_id = id_path.read_text().strip() if id_path.exists() else secrets.token_hex(4)
    id_path.write_text(run_id)
    return wandb.init(project=project, id=run_id, resume="allow", name=workdir.name, dir=local, config=config)


def write_scalars(logdir: str, step: int, scalars: dict) -> None:
    """Append {tag: value} at `step` to the TensorBoard run in `logdir` (e.g. a training workdir's
    tensorboard/, where `eval` writes eval/elo/tau_T beside the training curves). Tags may hold
    letters, digits and `_ . - /` (TensorBoard replaces anything else)."""
    SummaryWriter = _import_summary_writer()
    writer = SummaryWriter(os.fspath(logdir), filename_suffix=_unique_suffix())
    try:
        for key, value in scalars.items():
            if value is not None and math.isfinite(value):
                writer.add_scalar(key, float(value), step)
    finally:
        writer.close()


def run_header(config, mesh, num_params: int, data_stats: dict | None = None) -> str:
    """What a training run prints at start: the parameter count, the devices and the mesh, the
    dataset's size (its stats.json, read from config.data.path unless given) and the tokens a
    step consumes, so a log says at a glance what ran where and how much data each step saw."""
    import jax

    devices = list(mesh.devices.flat)
    kinds = sorted({d.device_kind for d in devices})
    axes = " x ".join(f"{name} {size}" for name, size in mesh.shape.items())
    m, d, t = config.model, config.data, config.train
    lines = [f"model: {num_params:,} parameters ({m.num_layers} layers, {m.num_heads} heads, width {m.embed_dim})",
             f"devices: {len(devices)} x {', '.join(kinds)} ({devices[0].platform}) over {jax.process_count()} "
             f"process(es); mesh {axes}"]
    if data_stats is None and d.path and not is_url(d.path) and os.path.exists(os.path.join(d.path, "stats.json")):
        with open(os.path.join(d.path, "stats.json")) as f:
            data_stats = json.load(f)
    tokens_per_step = t.batch_size * d.seq_len
    if data_stats:
        lines.append(f"data: {data_stats.get('train', 0):,} training games, {data_stats.get('validation', 0):,} "
                     f"validation, {data_stats.get('tokens', 0):,} tokens in all ({d.path})")
    else:
        lines.append(f"data: {d.path or '(no path)'} (no stats.json: size unknown)")
    step = (f"per step: {t.batch_size} sequences x {d.seq_len} tokens = {tokens_per_step:,} tokens"
            f"{' (padding included)' if d.packing == 'pad' else ''}; {t.steps:,} steps = "
            f"{t.steps * tokens_per_step:,} tokens")
    if data_stats and data_stats.get("train"):
        if d.packing == "pad":  # one game a row
            step += f", {t.steps * t.batch_size / data_stats['train']:.1f} passes over the training games"
        elif data_stats.get("tokens"):
            train_tokens = data_stats["tokens"] * data_stats["train"] / max(1, data_stats["train"] +
                                                                            data_stats.get("validation", 0))
            step += f", ~{t.steps * tokens_per_step / train_tokens:.1f} passes over the training tokens"
    lines.append(step)
    return "\n".join(lines)


def _import_summary_writer():
    """tensorboardX imports torch when it is installed (~10 s on a small CPU); we only log floats."""
    import sys

    blocked = "torch" not in sys.modules
    if blocked:
        sys.modules["torch"] = None  # makes `import torch` raise ImportError inside tensorboardX
    try:
        from tensorboardX import SummaryWriter
    finally:
        if blocked:
            del sys.modules["torch"]
    return SummaryWriter


def _unique_suffix() -> str:
    """tensorboardX names event files by the second and the host: two writers opened in one second
    (a quick resume, `eval` right after training) would truncate each other's file."""
    return f".{os.getpid()}.{time.time_ns() % 10**9:09d}"


def _scalar(value):
    if value is None:
        return None
    value = float(np.asarray(value))
    return value if math.isfinite(value) else None


def _truncate_after(path: str, step: int) -> None:
    """Drop rows with step > `step` (written by a run that died before checkpointing them), and
    leave one row per step in step order (the last written wins)."""
    if not os.path.exists(path):
        return
    rows = jsonl.read(path, repair=True)
    keep = sorted({r["step"]: r for r in rows if r["step"] <= step}.values(), key=lambda r: r["step"])
    if keep != rows:
        jsonl.rewrite(path, keep)


def read_metrics(path) -> list[dict]:
    """Rows of a metrics.jsonl (local path or URL); a torn last line (killed mid-write) is dropped."""
    return jsonl.read(path)


def plot_losses(metrics_path: str, png_path: str) -> None:
    """loss.png: `loss_figure` of a metrics.jsonl (local files: the writer plots into its mirror)."""
    rows = read_metrics(metrics_path) if os.path.exists(metrics_path) else []
    fig = loss_figure(rows)
    import matplotlib.pyplot as plt

    fig.savefig(png_path, dpi=120)
    plt.close(fig)


def loss_figure(rows: list[dict]):
    """Train and validation loss against step, a matplotlib Figure. The loss is the mean
    cross-entropy over the predicted tokens (each a move, or the game's result; padding excluded),
    in nats: the axis says so, and how many points each line has."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for key, label in (("loss", "train (each logged step's batch)"), ("val_loss", "validation")):
        pts = [(r["step"], r[key]) for r in rows if r.get(key) is not None]
        if pts:
            ax.plot(*zip(*pts), label=f"{label}, {len(pts)} point{'s' * (len(pts) != 1)}",
                    marker="o" if key == "val_loss" else None, markersize=3)
    ax.set_xlabel("training step")
    ax.set_ylabel("cross-entropy, nats per predicted token\n(a move or the result; padding excluded)")
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend()
    fig.tight_layout()
    return fig
