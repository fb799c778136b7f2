"""What a user sees of a training run: a progress bar, metrics.jsonl, TensorBoard events, loss.png.

Only process 0 writes anything (`enabled=False` elsewhere). On resume, lines of metrics.jsonl
past the restored step are dropped: they belong to steps the crash lost and will be rerun.

Workdirs may be URLs (gs://bucket/runs/X on a TPU pod): every workdir access goes through
`etils.epath.Path`. Object stores cannot append, and tensorboardX writes gs:// only with extra
packages, so for a URL workdir the files are written in a local temporary directory and copied
to the workdir every `sync_every_s` seconds and at close.
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
import time

import numpy as np
from etils import epath

from transcendence_jax import jsonl


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
    """Writes metrics to `workdir/metrics.jsonl` and TensorBoard, and drives a tqdm bar."""

    def __init__(self, workdir, *, total_steps: int, initial_step: int = 0, enabled: bool = True,
                 mirror: bool | None = None, sync_every_s: float = 60.0):
        """mirror: write to a local temp dir and copy to the workdir (default: when it is a URL)."""
        self.enabled = enabled
        self.workdir = as_path(workdir)
        self.bar = None
        self.tb = None
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
        from tqdm.auto import tqdm

        SummaryWriter = _import_summary_writer()

        self.tb = SummaryWriter(os.path.join(self.local, "tensorboard"), purge_step=initial_step + 1)
        self.bar = tqdm(total=total_steps, initial=initial_step, unit="step", dynamic_ncols=True)

    def write(self, step: int, metrics: dict) -> None:
        """Record scalars for one step (None values are kept in JSONL, skipped in TensorBoard)."""
        if not self.enabled:
            return
        row = {"step": int(step), "time": round(time.time(), 3)}
        row.update({k: _scalar(v) for k, v in metrics.items()})
        jsonl.append(self.path, [row])
        for key, value in row.items():
            if key not in ("step", "time") and value is not None:
                self.tb.add_scalar(key, value, step)
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
        """Move the bar to `step`; tqdm's ETA comes from its own step rate."""
        if not self.enabled:
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
        self.bar.close()
        self.tb.close()
        self.tb = None
        plot_losses(self.path, os.path.join(self.local, "loss.png"))
        if self.mirror:
            self.sync()
            shutil.rmtree(self.local, ignore_errors=True)


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
    """Train and validation loss against step (local files: the writer plots into its mirror)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = read_metrics(metrics_path) if os.path.exists(metrics_path) else []
    fig, ax = plt.subplots(figsize=(6, 4))
    for key, label in (("loss", "train"), ("val_loss", "validation")):
        pts = [(r["step"], r[key]) for r in rows if r.get(key) is not None]
        if pts:
            ax.plot(*zip(*pts), label=label, marker="o" if key == "val_loss" else None, markersize=3)
    ax.set_xlabel("step")
    ax.set_ylabel("cross-entropy (nats/token)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(png_path, dpi=120)
    plt.close(fig)
