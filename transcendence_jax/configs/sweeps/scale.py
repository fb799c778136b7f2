"""How transcendence scales with the model: its width and depth against the margin over the best
expert and the fidelity to the experts' vote (issue 18).

One population of 5 diverse experts (the demo's, overlap 0); every model trained the same number of
steps on the same games. Measured: the model at the lowest temperature minus the best expert (the
margin), minus the vote (fidelity: 0 is a perfect imitator's arg-max), the vote's own margin (the
ceiling), against the parameter count (log axis).

  transcendence sweep scale --size laptop --out runs/sweeps/scale

Sizes: reduced (2 tiny models; 1 min 23 s here, 2 at a time), laptop (0.29M, 1.2M, 3.9M and
10.8M parameters x 2 seeds, the largest first so the two cores finish together), gpu (1.2M to 87M
x 2 seeds, demo_gpu's data and training; not yet timed).
Laptop time, from the demo's timings (docs/demo: a population on one core of two busy ones: 38 s
for 10,000 games, 0.5 s a training step of the 1.2M model, 123 s for the tournament) and training
FLOPs a step (model.flops_per_token x 24 x 101 tokens: 3.7, 17, 56 and 160 GFLOP, at the tiny
model's ~50 GFLOP/s plus 0.15 s of fixed cost a step: 0.2, 0.5, 1.3, 3.4 s): 400 steps = 80, 200,
520, 1,360 s; with 8,000 games (30 s), a tournament of 590 model games (25 s for the tiny model, up
to ~120 s for the largest) and ~40 s more: 155, 280, 630 and 1,530 s a point. Two seeds, 2 at a
time, largest first: 1,530 + 630 + 280 + 155 = 2,595 s on each core, about 43 minutes.
"""

from ml_collections import ConfigDict

from transcendence_jax.configs.sweeps import experiment

SHAPE = "training.model.num_layers,training.model.num_heads,training.model.embed_dim,training.model.mlp_dim"


def get_config(size: str = "laptop") -> ConfigDict:
    c = ConfigDict()
    c.experiment = "populations"
    c.base = experiment(size)
    c.base.populations = ConfigDict({"diverse": 0.0})
    c.base.temperatures = [0.001, 1.0]
    c.seeds = 2
    if size == "reduced":
        shapes = [(1, 2, 32, 128), (2, 2, 64, 256)]
        c.seeds = 1
    elif size == "laptop":
        shapes = [(8, 8, 320, 1280), (4, 4, 256, 1024), (4, 4, 128, 512), (2, 2, 64, 256)]  # largest first
        c.base.games = 8000
        c.base.training.train.steps = c.base.training.train.decay_steps = 400
        c.base.games_per_pair, c.base.head_to_head, c.base.analysis_positions = 20, 50, 100
        c.workers = 2
    else:
        shapes = [(12, 12, 768, 3072), (8, 8, 512, 2048), (8, 8, 320, 1280), (4, 4, 256, 1024), (4, 4, 128, 512)]
        c.base.games = 50_000
        c.workers = 4
    c.grid = [("shape", SHAPE, shapes)]  # (layers, heads, width, mlp width)
    c.report = ConfigDict(dict(
        x="params", measures=["model_minus_best_expert", "model_minus_vote", "vote_minus_best_expert"],
        xscale="log", title="The margin and the fidelity to the vote against the model's size"))
    return c
