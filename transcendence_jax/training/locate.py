"""Where a model lives: the training workdir behind what a user names (jax-free, so `uci` can
announce the checkpoint step before jax has loaded).

`load_model`, `transcendence uci` and `eval` accept any of:
- a training workdir (config.json and checkpoints/);
- an experiment's output folder (`runs/demo/diverse`: its train/ workdir);
- a demo or sweep root holding exactly one such folder (with several, the error lists them);
- `pretrained:NAME`, a model shipped in the package (transcendence_jax/pretrained/).
"""

from __future__ import annotations

from transcendence_jax.errors import UserError
from transcendence_jax.training.metrics import as_path

PRETRAINED = "pretrained:"


def _is_workdir(path) -> bool:
    return (path / "config.json").exists() and (path / "checkpoints").is_dir()


def resolve_workdir(where) -> str:
    """The training workdir `where` names (see the module docstring); `pretrained:NAME` is
    returned as it is. A folder with none, or with several models, is a UserError that says so."""
    where = str(where)
    if where.startswith(PRETRAINED):
        return where
    path = as_path(where)
    if _is_workdir(path):
        return where
    if _is_workdir(path / "train"):
        return str(path / "train")
    found = sorted(child.name for child in (path.iterdir() if path.is_dir() else []) if _is_workdir(child / "train"))
    if len(found) == 1:
        return str(path / found[0] / "train")
    if found:
        choices = ", ".join(f"{where.rstrip('/')}/{name}" for name in found)
        raise UserError(f"{where} holds {len(found)} trained models; name one of them: {choices}")
    raise UserError(f"{where} is not a training workdir (no config.json / checkpoints/) nor an experiment or demo "
                    "folder holding one: train one with `transcendence train --config ... --workdir DIR`, or use "
                    "a shipped model, `pretrained:demo`")


def latest_step(where) -> int | None:
    """The newest checkpoint step saved in the workdir `where` names (a pretrained model's own; None
    when there is none). load_model may still fall back to an older step if this one is unreadable."""
    where = resolve_workdir(where)
    if where.startswith(PRETRAINED):
        from transcendence_jax import pretrained

        return pretrained.info(where.removeprefix(PRETRAINED))["step"]
    steps = [int(p.name) for p in (as_path(where) / "checkpoints").iterdir() if p.name.isdigit()]
    return max(steps, default=None)
