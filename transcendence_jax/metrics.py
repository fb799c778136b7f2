"""What a user sees of a training run: a progress bar, metrics.jsonl, TensorBoard events, loss.png.

Only process 0 writes anything (`enabled=False` elsewhere). On resume, lines of metrics.jsonl
past the restored step are dropped: they belong to steps the crash lost and will be rerun.
"""

from __future__ import annotations

import json
import math
import os
import time

import numpy as np

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

    def __init__(self, workdir: str, *, total_steps: int, initial_step: int = 0, enabled: bool = True):
        self.enabled = enabled
        self.workdir = workdir
        self.path = os.path.join(workdir, "metrics.jsonl")
        self.bar = None
        self.tb = None
        if not enabled:
            return
        os.makedirs(workdir, exist_ok=True)
        _truncate_after(self.path, initial_step)
        from tqdm.auto import tqdm

        SummaryWriter = _import_summary_writer()

        self.tb = SummaryWriter(os.path.join(workdir, "tensorboard"), purge_step=initial_step + 1)
        self.bar = tqdm(total=total_steps, initial=initial_step, unit="step", dynamic_ncols=True)

    def write(self, step: int, metrics: dict) -> None:
        """Record scalars for one step (None values are kept in JSONL, skipped in TensorBoard)."""
        if not self.enabled:
            return
        row = {"step": int(step), "time": round(time.time(), 3)}
        row.update({k: _scalar(v) for k, v in metrics.items()})
        with open(self.path, "a") as f:
            f.write(json.dumps(row) + "\n")
        for key, value in row.items():
            if key not in ("step", "time") and value is not None:
                self.tb.add_scalar(key, value, step)

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
        plot_losses(self.path, os.path.join(self.workdir, "loss.png"))


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
    """Drop rows with step > `step` (written by a run that died before checkpointing them)."""
    if not os.path.exists(path):
        return
    rows = read_metrics(path)
    keep = [r for r in rows if r["step"] <= step]
    if len(keep) != len(rows):
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            f.writelines(json.dumps(r) + "\n" for r in keep)
        os.replace(tmp, path)


def read_metrics(path: str) -> list[dict]:
    """Rows of a metrics.jsonl; a torn last line (killed mid-write) is ignored."""
    rows = []
    with open(path) as f:
        for line in f:
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return rows


def plot_losses(metrics_path: str, png_path: str) -> None:
    """Train and validation loss against step."""
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
