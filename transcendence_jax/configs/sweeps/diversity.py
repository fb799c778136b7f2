"""How much diversity transcendence takes: the experts' overlap x their number (issue 18).

Each point is one population ("crowd") of K experts sharing the MVV-LVA base, each blind to
captures on 24 of the 64 squares; `overlap` is the shared share of each expert's blind set (0:
dealt apart, each square blind for as few experts as possible; 1: clones), at one per-expert error
rate (experts/population.py). Measured: the vote and the model at the lowest temperature against
the best expert; the figure draws both against overlap, a line per K, and where the model's margin
falls through zero (report.crossing; interpolated between overlaps, 95% CI from a bootstrap over
seeds and games).

  transcendence sweep diversity --size laptop --out runs/sweeps/diversity

Sizes: reduced (a test's: overlap 0 and 1, K=3; 1 min 7 s here, 2 at a time, at load ~6),
laptop (15 points, 1 seed), gpu (15 points x 2 seeds, demo_gpu's model and data; not yet timed).
Laptop time, from the demo's own timings (docs/demo, runs/demo3 logs: a population on one core of
two busy ones takes 437 s: 38 s for 10,000 games, 300 s for 600 training steps (0.5 s each), 123 s
for 4,140 games of which 3,340 involve the model, ~0.035 s each): a point here has 8,000 games
(30 s), 500 steps (250 s), a tournament of K experts, base, vote, mixture and the model at 2
temperatures, 20 games a pair and 50 head-to-heads with each expert: 20 (2 (K + 3) + 1) + 50 K =
90 K + 140 model games (410 to 950: 15-35 s), 100 state-level positions (~8 s) and ~20 s of start
and compiles: ~330 s. 15 points, 2 at a time on 2 cores: 15 x 330 / 2 = 2,475 s, about 42 minutes.
"""

from ml_collections import ConfigDict

from transcendence_jax.configs.sweeps import populations_sweep


def get_config(size: str = "laptop") -> ConfigDict:
    c = populations_sweep(size, {"crowd": 0.0}, games=8000, steps=500)  # the grid sets the crowd's overlap
    overlaps, ks = [0.0, 0.25, 0.5, 0.75, 1.0], [5, 3, 9]  # K=5 (the demo's) first: a cut-off run has its line
    if size == "reduced":
        overlaps, ks = [0.0, 1.0], [3]
    c.grid = [("experts", ks), ("overlap", "populations.crowd", overlaps)]
    c.report = ConfigDict(dict(
        x="overlap", lines="experts", measures=["vote_minus_best_expert", "model_minus_best_expert"],
        crossing="model_minus_best_expert", xscale="linear",
        title="The margin over the best expert against the experts' overlap"))
    return c
