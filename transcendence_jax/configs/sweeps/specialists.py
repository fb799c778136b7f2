"""A crowd of specialists beside a crowd of blind-spot generalists (issue 18).

Specialists (experts/specialists.py) play the MVV-LVA base only where its move lands on their own
16 squares and a uniformly random legal move elsewhere; generalists (experts/population.py) play
the base everywhere but miss captures onto their own 24 squares. Where one specialist knows the
move and the others guess uniformly, the plurality vote still plays it; it breaks where nobody
covers the square: fewer experts (3 x 16 squares leave 16 uncovered) or overlapping regions
(`overlap`: the shared share of each specialist's region, of each generalist's blind set; at 1
all specialists share one region and 48 squares are nobody's, and the generalists are clones).
Measured: the vote and the model at the lowest temperature against the best expert; the figure
draws both against overlap, a line per crowd (kind x K), and where the model's margin crosses zero.

  transcendence sweep specialists --size laptop --out runs/sweeps/specialists

Sizes: reduced (a test's: specialists and generalists of 3 at overlap 0 and 1; 2 min 5 s here, a
point at a time), laptop (12 points, 1 seed: specialists of 3, 5, 9 and generalists of 5 - the
diversity sweep has the generalists at every K; with them all, 18 points took 68 min under load
and ~60 idle, over the hour a laptop size has), gpu (18 points x 2 seeds, demo_gpu's model; not
yet timed). Laptop time: a point ~300 s (generalists) to ~335 s (specialists: they list every
legal move where they guess) at 6,000 games, 400 steps, 20 games a pair and 50 head-to-heads
(measured: 4 min 55 s to 5 min 53 s a point, two at once); 12 points two at a time on 2 cores:
(3 x 3 x 335 + 3 x 300) / 2 ~ 1,960 s, about 33 minutes (measured idle: 32 min 35 s; README).
"""

from ml_collections import ConfigDict

from transcendence_jax.configs.sweeps import populations_sweep

# (expert_kind, experts): K=5 first, so a cut-off run has both kinds' demo-sized crowd.
CROWDS = [("specialist", 5), ("blind", 5), ("specialist", 3), ("blind", 3), ("specialist", 9), ("blind", 9)]
LAPTOP_CROWDS = [c for c in CROWDS if c[0] == "specialist" or c[1] == 5]


def get_config(size: str = "laptop") -> ConfigDict:
    c = populations_sweep(size, {"crowd": 0.0}, games=6000, steps=400)  # the grid sets the crowd's overlap
    c.base.expert_kind = "specialist"    # the grid sets it: specialist or blind (experiment.make_population)
    c.base.region_fraction = 0.25        # a specialist's region: 16 of the 64 squares
    crowds, overlaps = CROWDS, [0.0, 0.5, 1.0]
    if size == "laptop":
        crowds = LAPTOP_CROWDS
    elif size == "reduced":
        crowds, overlaps = [("specialist", 3), ("blind", 3)], [0.0, 1.0]
    c.grid = [("crowd", "expert_kind,experts", crowds), ("overlap", "populations.crowd", overlaps)]
    c.report = ConfigDict(dict(
        x="overlap", lines="crowd", measures=["vote_minus_best_expert", "model_minus_best_expert"],
        crossing="model_minus_best_expert", xscale="linear",
        title="Specialists and generalists: the margin over the best expert against overlap"))
    return c
