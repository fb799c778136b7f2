"""transcendence-jax: the Transcendence experiments (Zhang et al., 2024) in JAX/Flax.

The library API, one name per stage (imported lazily, so `import transcendence_jax` is cheap;
no public name is also a submodule's name, so `tj.train_model` is always the function):

    import transcendence_jax as tj
    tj.build_dataset(["games.pgn.zst"], "data/", filters=tj.Filters(max_rating=1000))
    config = tj.load_config("tiny", ["data.path=data/", "train.steps=200"])
    tj.train_model(config, "runs/tiny")
    model, config, step = tj.load_model("runs/tiny")  # or "runs/demo/diverse", or "pretrained:demo" (shipped)
    moves = tj.sample_moves(model, boards, temperatures=[0.001] * len(boards), key=jax.random.key(0))
    probs = tj.move_probabilities(model, boards, temperature=1.0)  # one {move: p} a board; <= 0.001: one-hot
    summary = tj.evaluate_model(model, out_dir="runs/tiny/eval", opponents=["sf1"], games=10)
    ratings = tj.elo_mle(games)  # (white, black, score_white) triples -> tj.Ratings
    print(ratings.diff("model@0.001", "expert0"))  # tj.EloDiff(diff, lo, hi), e.g. +315 [+282, +349]
"""

import importlib

__version__ = "0.1.0"

_EXPORTS = {
    # data
    "build_dataset": ("transcendence_jax.data.build", "build"),
    "write_dataset": ("transcendence_jax.data.build", "write_dataset"),
    "Filters": ("transcendence_jax.data.ingest", "Filters"),
    "make_loader": ("transcendence_jax.data.pipeline", "make_loader"),
    "GameRecord": ("transcendence_jax.data.records", "GameRecord"),
    "read_records": ("transcendence_jax.data.records", "read_records"),
    "encode_game": ("transcendence_jax.data.tokenizer", "encode_game"),
    "decode_game": ("transcendence_jax.data.tokenizer", "decode_game"),
    # model and training
    "load_config": ("transcendence_jax.config", "load_config"),
    "Transformer": ("transcendence_jax.model", "Transformer"),
    "train_model": ("transcendence_jax.training.train", "train"),
    "load_model": ("transcendence_jax.training.checkpoint", "load_model"),
    # sampling and play
    "sample_moves": ("transcendence_jax.sampling.policy", "sample_moves"),
    "move_probabilities": ("transcendence_jax.sampling.policy", "move_probabilities"),
    "Sampler": ("transcendence_jax.sampling.sampler", "Sampler"),
    "ModelPlayer": ("transcendence_jax.play.players", "ModelPlayer"),
    "PolicyPlayer": ("transcendence_jax.play.players", "PolicyPlayer"),
    "EnginePlayer": ("transcendence_jax.play.engines", "EnginePlayer"),
    "play_games": ("transcendence_jax.play.arena", "play_games"),
    "round_robin": ("transcendence_jax.play.arena", "round_robin"),
    "evaluate_model": ("transcendence_jax.play.evaluate", "evaluate"),
    # ratings and analysis
    "elo_mle": ("transcendence_jax.rating", "elo_mle"),
    "glicko2_paper": ("transcendence_jax.rating", "glicko2_paper"),
    "Ratings": ("transcendence_jax.rating", "Ratings"),
    "EloDiff": ("transcendence_jax.rating", "EloDiff"),
    # the synthetic experts and the demo
    "expert_population": ("transcendence_jax.experts.population", "population"),
    "base_policy": ("transcendence_jax.experts.policies", "base_policy"),
    "VotePolicy": ("transcendence_jax.experts.reference", "VotePolicy"),
    "MixturePolicy": ("transcendence_jax.experts.reference", "MixturePolicy"),
    "ModelVotePlayer": ("transcendence_jax.play.players", "ModelVotePlayer"),
    "run_demo": ("transcendence_jax.demo", "demo"),
    "UserError": ("transcendence_jax.errors", "UserError"),
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'transcendence_jax' has no attribute {name!r}")
    module, attr = _EXPORTS[name]
    value = getattr(importlib.import_module(module), attr)
    globals()[name] = value
    return value


def __dir__():
    return sorted(__all__)
