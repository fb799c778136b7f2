"""The demo at GPU scale (`transcendence demo --scale gpu`): one GPU and ~16 cores.

Ten experts, each square blind for two or three of them; 100,000 games; a 26M-parameter model.
"""

from ml_collections import ConfigDict

from transcendence_jax.configs import demo


def get_config() -> ConfigDict:
    c = demo.get_config()
    c.experts = 10
    c.blind_fraction = 0.25              # 16 of 64 squares: each square blind for two or three of the ten
    c.games = 100_000
    m, t = c.training.model, c.training.train
    m.num_layers, m.num_heads, m.embed_dim, m.mlp_dim = 8, 8, 512, 2048  # 26M parameters
    m.dtype = "bfloat16"
    t.steps = t.decay_steps = 2000
    t.batch_size, t.lr, t.min_lr, t.warmup_steps = 128, 1e-3, 1e-4, 100
    t.eval_every, t.checkpoint_every, t.log_every = 500, 1000, 50
    c.training.data.worker_count = 6
    c.games_per_pair = 30
    c.analysis_positions = 400
    c.ensemble_vote = True               # the ensemble-of-agents alternative: 10 more trainings
    return c
