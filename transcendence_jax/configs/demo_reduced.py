"""The demo's whole path at a size a test can afford (`transcendence demo --scale reduced`)."""

from ml_collections import ConfigDict

from transcendence_jax.configs import demo


def get_config() -> ConfigDict:
    c = demo.get_config()
    c.games = 600
    t = c.training.train
    t.steps, t.decay_steps, t.eval_every, t.checkpoint_every = 30, 30, 15, 15
    t.batch_size, t.eval_batches, t.log_every = 8, 1, 5
    c.temperatures = [0.001, 1.0]
    c.model_votes = [5]
    c.games_per_pair = 2
    c.head_to_head = 4
    c.max_plies = 40
    c.analysis_positions = 8
    return c
