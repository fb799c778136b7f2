"""What stops a training run from going silently wrong: a resume with other settings, and divergence.

Resuming: a workdir's config.json records the settings its checkpoints were trained with. A
rerun with other settings would continue those checkpoints under new ones (another batch size,
learning rate, model...) and overwrite config.json, so it is refused unless the user passes
`--allow-config-change`. Settings that do not change what a step computes may change freely:
`RESUMABLE` (more steps to extend a run, the log/eval/checkpoint intervals, the mesh and other
layout or speed choices). data.path is not among them: the checkpoints hold the data
iterator's position in those files.

Divergence: the step's loss and gradient norm stay on the device; `FiniteGuard` fetches them
when the loop logs a row or saves a checkpoint (moments that already wait for the device), so
a step costs nothing more. The first non-finite one stops the run with a UserError naming it,
before anything is saved; `checkpoint.save` also refuses parameters holding NaN/inf.
"""

from __future__ import annotations

import json
import math
import sys

from transcendence_jax.config import flatten
from transcendence_jax.errors import UserError

# Keys (or prefixes ending in ".") whose change a resumed run accepts without being told.
RESUMABLE = ("train.steps", "train.log_every", "train.eval_every", "train.eval_batches", "train.checkpoint_every",
             "train.keep_checkpoints", "train.wandb", "mesh.", "data.worker_count", "model.remat", "model.attention")


def config_changes(saved_json: str, config) -> dict[str, tuple]:
    """{key: (saved value, new value)} for the settings that differ from a workdir's config.json
    and may not change on resume. Keys only one side has (another version of the code) are skipped."""
    old, new = flatten(json.loads(saved_json)), flatten(json.loads(config.to_json_best_effort()))
    return {k: (old[k], new[k]) for k in sorted(old.keys() & new.keys())
            if old[k] != new[k] and not any(k == r or (r.endswith(".") and k.startswith(r)) for r in RESUMABLE)}


def check_resume(config_path, config, allow_change: bool) -> None:
    """Refuse to resume the checkpoints beside `config_path` (an epath) under other settings,
    unless `allow_change` (then say what changed)."""
    if not config_path.exists():
        return
    changes = config_changes(config_path.read_text(), config)
    if not changes:
        return
    what = ", ".join(f"{k}: {a!r} -> {b!r}" for k, (a, b) in changes.items())
    if not allow_change:
        raise UserError(f"{config_path.parent} was trained with other settings ({what}); rerun with its settings "
                        "(its config.json), pass --allow-config-change to continue its checkpoints with the new "
                        "ones, or use a new --workdir")
    print(f"note: resuming {config_path.parent} with changed settings ({what}); config.json updated", file=sys.stderr)


class FiniteGuard:
    """Collects each step's (loss, grad_norm) device scalars; `check` fetches them all at once.
    `index`: the replicate this guard watches in stacked metrics (None: a solo run's scalars)."""

    def __init__(self, checkpoint_dir, index: int | None = None):
        self.checkpoint_dir, self.index = checkpoint_dir, index
        self.pending: list[tuple[int, object, object]] = []
        self.last_saved: int | None = None  # the newest good checkpoint step, for the message

    def add(self, step: int, metrics: dict) -> None:
        self.pending.append((step, metrics["loss"], metrics["grad_norm"]))

    def check(self) -> None:
        """A UserError naming the first step whose loss or gradient norm was NaN/inf."""
        import jax

        values = jax.device_get([(loss, norm) for _, loss, norm in self.pending])
        if self.index is not None:
            values = [(loss[self.index], norm[self.index]) for loss, norm in values]
        for (step, _, _), (loss, norm) in zip(self.pending, values):
            if not (math.isfinite(float(loss)) and math.isfinite(float(norm))):
                self.diverged(step, f"loss {float(loss)}, gradient norm {float(norm)}")
        self.pending.clear()

    def check_state(self, step: int, sums: dict) -> None:
        """A UserError when the state after `step` (its `checkpoint.digest`) holds NaN/inf."""
        from transcendence_jax.training.checkpoint import describe_non_finite, non_finite

        if non_finite(sums):
            self.diverged(step, f"the state after it holds {describe_non_finite(non_finite(sums))}")

    def diverged(self, step: int, what: str) -> None:
        kept = (f"its last checkpoint, step {self.last_saved}, is intact and a rerun resumes from it"
                if self.last_saved is not None else "no checkpoint was saved")
        raise UserError(f"training diverged at step {step} ({what}): stopped without saving it; {kept} in "
                        f"{self.checkpoint_dir}; lower config.train.lr (or raise warmup_steps, set grad_clip) "
                        "and rerun with --allow-config-change, or use a new --workdir")
