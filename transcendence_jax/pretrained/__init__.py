"""Models shipped inside the package, so a user can play or explore one with no training:
`tj.load_model("pretrained:demo")`, `transcendence uci --pretrained demo`.

Each is a folder here holding config.json (the training config, as train.py wrote it),
params.npz (the parameters of one checkpoint step, float32, keyed by their path in the model,
e.g. `blocks/0/attn/qkv`) and info.json (the step, where it came from, the sha256 of
params.npz, checked on load). Only parameters: no optimizer state, so it cannot resume training.

`demo`: the demo's diverse-population model, seed 0 (1.2M parameters with the board head, 600 steps; what
`make demo` trains, bit for bit). Made with `export("runs/demo/diverse", "demo")`.
"""

from __future__ import annotations

import hashlib
import json
import pathlib

from transcendence_jax.errors import UserError

HERE = pathlib.Path(__file__).resolve().parent


def names() -> list[str]:
    """The shipped models' names."""
    return sorted(p.name for p in HERE.iterdir() if (p / "params.npz").is_file())


def folder(name: str) -> pathlib.Path:
    """The folder of the shipped model `name` (a UserError listing the names if there is none)."""
    if name not in names():
        raise UserError(f"no pretrained model {name!r}; shipped: {', '.join(names()) or 'none'}")
    return HERE / name


def info(name: str) -> dict:
    """The shipped model's info.json: step, source, sha256 of params.npz, notes."""
    return json.loads((folder(name) / "info.json").read_text())


def _sha256(path: pathlib.Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _key(path) -> str:
    return "/".join(str(part) for part in path)


def load(name: str):
    """(model, config, step) of the shipped model `name`, on the default device."""
    import numpy as np
    from flax import nnx
    from ml_collections import ConfigDict

    from transcendence_jax.model import Transformer

    where, meta = folder(name), info(name)
    if _sha256(where / "params.npz") != meta["sha256"]:
        raise UserError(f"{where / 'params.npz'} does not match the sha256 in its info.json: the installed "
                        "package is damaged; reinstall transcendence-jax")
    config = ConfigDict(json.loads((where / "config.json").read_text()))
    model = Transformer(config.model, rngs=nnx.Rngs(0))
    params = nnx.state(model, nnx.Param)
    with np.load(where / "params.npz") as arrays:
        flat = list(nnx.to_flat_state(params))
        if sorted(arrays.files) != sorted(_key(path) for path, _ in flat):
            raise UserError(f"{where / 'params.npz'} does not hold this model's parameters (config.json and "
                            "params.npz disagree); reinstall transcendence-jax")
        for path, var in flat:
            var.set_value(np.asarray(arrays[_key(path)], dtype=var.get_value().dtype))
    nnx.update(model, params)
    return model, config, int(meta["step"])


def export(workdir: str, name: str, *, step: int | None = None, notes: str = "", out_root=HERE) -> pathlib.Path:
    """Write the model of `workdir` (anything load_model accepts) at `step` (default: the newest
    readable) as the shipped model `name` under `out_root` (default: this package folder)."""
    import numpy as np
    from flax import nnx

    from transcendence_jax.training.checkpoint import load_model

    model, config, step = load_model(workdir, step=step)
    out = pathlib.Path(out_root) / name
    out.mkdir(parents=True, exist_ok=True)
    flat = nnx.to_flat_state(nnx.state(model, nnx.Param))
    np.savez_compressed(out / "params.npz", **{_key(path): np.asarray(var.get_value()) for path, var in flat})
    (out / "config.json").write_text(config.to_json_best_effort(indent=2) + "\n")
    meta = {"step": step, "source": str(workdir), "sha256": _sha256(out / "params.npz"), "notes": notes}
    (out / "info.json").write_text(json.dumps(meta, indent=2) + "\n")
    return out
