"""The one config system: Python files returning an ml_collections.ConfigDict, overridable.

`load_config("tiny")` (or "configs/tiny.py", the same name) finds the packaged
`transcendence_jax/configs/tiny.py`, so an installed wheel has them; any other existing path
runs that file. Overrides are `section.key=value` (on the command line
`--config.section.key=value`, for `train` and `demo` alike), coerced to the type of the
current value; an unknown key is a UserError naming the keys that exist.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import os
from typing import Iterable

import ml_collections

from transcendence_jax.errors import UserError

# Logical axis -> mesh axes (MaxText style). A logical axis absent here is replicated.
DEFAULT_RULES = (
    ("batch", ("data", "fsdp")),
    ("embed", "fsdp"),
    ("mlp", "tensor"),
    ("heads", "tensor"),
    ("head_dim", None),
    ("vocab", "tensor"),
    ("length", None),
)


def base_config() -> ml_collections.ConfigDict:
    """Every field, with defaults; the files in configs/ change what differs."""
    c = ml_collections.ConfigDict()
    c.model = ml_collections.ConfigDict(dict(
        vocab_size=2048,       # tokenizer.VOCAB_SIZE (1973) padded to a multiple of 128
        num_layers=4, num_heads=4, embed_dim=128, mlp_dim=512,
        max_len=128,           # learned positions (and the KV cache length)
        context=0,             # positions each layer attends to, itself included (0: the whole game
                               # so far); 1 with board_input: a policy of the position, blind to
                               # who is playing (the experts' mixture per move, not per game)
        dropout=0.0,
        board_input=False,     # add summed (square, piece) embeddings of the board after each move
        board_head=False,      # each move's logit also reads the pieces on its from and to squares
                               # (needs board_input): captures and their victims in one linear step
        dtype="float32",       # compute dtype: "float32" | "bfloat16"
        param_dtype="float32",
        remat=False,           # jax.checkpoint per block (recomputes activations: slower, saves memory)
        attention="auto",      # full-forward attention: "xla" (einsums, any device), "cudnn" (fused; NVIDIA
                               # GPUs, bf16) or "auto" (cudnn where it runs)
    ))
    c.data = ml_collections.ConfigDict(dict(
        path="",               # a `transcendence data build` output directory
        seq_len=101, packing="pad", boards=False, legal=False, worker_count=0, seed=0,
    ))
    c.train = ml_collections.ConfigDict(dict(
        seed=0, steps=1000,
        batch_size=32,         # global sequences a step (over all devices and accumulation steps)
        grad_accum=1,
        lr=3e-4, min_lr=3e-5, warmup_steps=100, decay_steps=1000,
        weight_decay=0.1, b1=0.9, b2=0.95, grad_clip=1.0,
        legal_loss=False,      # softmax over the legal moves only
        legal_mask="host",     # its masks: "host" (data.legal: exact, from python-chess on the host)
                               # or "device" (the pseudo-legal superset, from the board planes inside
                               # the step: no host cost; needs boards and pad packing)
        eval_every=200, eval_batches=4, checkpoint_every=200, keep_checkpoints=3, log_every=10,
        wandb="",              # a Weights & Biases project name: log there too (needs `pip install wandb`)
    ))
    c.mesh = ml_collections.ConfigDict(dict(
        shape=(-1, 1, 1),      # (data, fsdp, tensor); one -1 takes the remaining devices
        rules=DEFAULT_RULES,
    ))
    return c


def _load_file(path: str) -> ml_collections.ConfigDict:
    spec = importlib.util.spec_from_file_location(f"_transcendence_config_{abs(hash(path))}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if not hasattr(module, "get_config"):
        raise UserError(f"config file {path} has no get_config() function: define one returning a ConfigDict")
    return module.get_config()


def _load(path_or_name: str) -> ml_collections.ConfigDict:
    from transcendence_jax import configs

    if os.path.isfile(path_or_name):
        if not path_or_name.endswith(".py"):
            raise UserError(f"config {path_or_name} is not a Python file: pass a .py file whose get_config() "
                            f"returns a ConfigDict, or one of {', '.join(configs.NAMES)}")
        return _load_file(path_or_name)
    name = path_or_name.removesuffix(".py")
    for prefix in ("transcendence_jax/configs/", "configs/"):
        name = name.removeprefix(prefix)
    if name in configs.NAMES:
        return importlib.import_module(f"transcendence_jax.configs.{name}").get_config()
    raise UserError(f"config {path_or_name!r} not found: pass a config file path or one of "
                    f"{', '.join(configs.NAMES)}")


def _coerce(value: str, current, key: str):
    """Parse `value` to the type of the current value of `key`."""
    def literal():
        try:
            return ast.literal_eval(value)
        except (ValueError, SyntaxError):
            return value

    try:
        if isinstance(current, bool):
            low = value.strip().lower()
            if low in ("true", "1", "yes", "on"):
                return True
            if low in ("false", "0", "no", "off"):
                return False
            raise ValueError
        if isinstance(current, int):
            f = float(value)
            if f != int(f):
                raise ValueError
            return int(f)
        if isinstance(current, float):
            return float(value)
        if isinstance(current, str):
            return value
        if isinstance(current, (tuple, list)):
            parsed = literal()
            if not isinstance(parsed, (tuple, list)):
                parsed = (parsed,)
            kind = _element_kind(current)
            if kind is not None and not all(_element_kind([x]) in (kind, int) for x in parsed):
                raise ValueError
            return tuple(float(x) for x in parsed) if kind is float else tuple(parsed)
    except (ValueError, OverflowError):  # inf or 1e400 for an int
        kind = _element_kind(current) if isinstance(current, (tuple, list)) else None
        expected = f"a tuple of {kind.__name__}s" if kind else f"a {type(current).__name__}"
        raise UserError(f"config override {key}={value!r}: expected {expected} "
                        f"(current value {current!r})") from None
    return literal()


def _element_kind(values) -> type | None:
    """int when every element is an int, float when every one is a number with a float among
    them, else None (no check): a tuple of ints takes only ints (mesh.shape=(1.5,1,1) is refused)."""
    if not values or not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in values):
        return None
    return int if all(isinstance(x, int) for x in values) else float


def apply_override(config: ml_collections.ConfigDict, override: str) -> None:
    """Apply one `section.key=value` (or `--config.section.key=value`) in place."""
    raw = override
    if override.startswith("--"):
        override = override[2:]
    if override.startswith("config."):
        override = override[len("config."):]
    if "=" not in override:
        raise UserError(f"config override {raw!r} has no '=': write it as section.key=value")
    key, value = override.split("=", 1)
    parts = key.strip().split(".")
    node = config
    for i, part in enumerate(parts):
        if not isinstance(node, ml_collections.ConfigDict) or part not in node:
            where = ".".join(parts[:i]) or "the config"
            known = ", ".join(sorted(node.keys())) if isinstance(node, ml_collections.ConfigDict) else "none"
            raise UserError(f"unknown config key {key!r} in override {raw!r}: {where} has keys {known}")
        if i < len(parts) - 1:
            node = node[part]
    current = node[parts[-1]]
    if isinstance(current, ml_collections.ConfigDict):
        raise UserError(f"config override {raw!r} names a section: set one of its keys, "
                        f"e.g. {key}.{sorted(current.keys())[0]}=...")
    node[parts[-1]] = _coerce(value, current, key)


def flatten(tree: dict, prefix: str = "") -> dict:
    """A nested dict (a config's to_dict(), a config.json) as {'a.b.c': leaf}."""
    out = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[prefix + key] = value
    return out


def load_config(path_or_name: str, overrides: Iterable[str] = ()) -> ml_collections.ConfigDict:
    """The config at a path or with a packaged name ("tiny"), with the overrides applied."""
    config = _load(path_or_name)
    for override in overrides:
        apply_override(config, override)
    return config


def add_config_arguments(parser, *, default: str | None = None, help: str = "",
                         example: str = "train.steps=100") -> None:
    """`--config NAME_OR_FILE` and any number of `--config.a.b=VALUE` overrides (in args.overrides).

    argparse cannot declare `--config.a.b` options, so they are taken out before it parses."""
    parser.add_argument("--config", required=default is None, default=default,
                        help=help or f"a config file or a packaged name ({', '.join(_names())})")
    parser.epilog = f"Override any config field with --config.SECTION.KEY=VALUE (e.g. --config.{example})."
    inner = parser.parse_known_args

    def parse_known_args(args=None, namespace=None):
        args, overrides, rest, i = list(args or []), [], [], 0
        while i < len(args):
            a = args[i]
            if a.startswith("--config."):
                if "=" not in a:  # `--config.a.b VALUE`; a following flag is not its value
                    if i + 1 == len(args) or args[i + 1].startswith("--"):
                        raise UserError(f"config override {a} has no value: write {a}=VALUE")
                    a, i = f"{a}={args[i + 1]}", i + 1
                overrides.append(a)
            else:
                rest.append(a)
            i += 1
        ns, extra = inner(rest, namespace)
        ns.overrides = overrides
        return ns, extra

    parser.parse_known_args = parse_known_args


def _names() -> tuple[str, ...]:
    from transcendence_jax import configs

    return configs.NAMES
