"""A model retrained on its own games, generation after generation, at three temperatures (issue 18).

Generation 0 trains on the games of 5 diverse experts; generation g+1, a fresh model with the same
config and seed, trains on `self_play_games` games generation g plays against itself at tau 0.5, 1
or 1.5 (generations.py). The theory: below 1 the chain collapses onto its mode (entropy falls), at 1
it stays, above 1 it flattens. Measured: every generation and the experts on one Elo scale (one
round robin, each model at tau 1) and each model's entropy at tau 1 on 200 held-out positions of the
experts' games; the figure draws both against generation, a line per tau. The point's own folder
also holds generations/generations.png (rating and entropy, with the best expert).

  transcendence sweep generations --size laptop --out runs/sweeps/generations

Sizes: reduced (a test's: 2 generations of 24 games; 2 min 48 s here), laptop (2 generations, 1
seed: one point, run in one process), gpu (3 generations of 50,000 games, demo_gpu's model; not yet timed).
Every generation has the same recipe: N games (experts' for generation 0, self-play after), 400
steps of 24 games (1.7 epochs of the ~5,700 training games, the demo's 1.5).
Laptop time, from the demo's timings (docs/demo and runs/demo3 logs, on one core of two busy ones:
38 s for 10,000 expert games, 0.5 s a training step, ~0.035 s a tournament game with the model) and
self-play's (1,000 games of the demo's model against itself at tau 1, 98.5 plies each, 23.9 s on
this machine's 2 cores at load 3.5-5: 0.024 s a game; README "Sweeps" has the command):
  generation 0: 6,000 expert games (23 s) + 400 steps (200 s) + ~20 s of start and compiles = 243 s
  each later one: 6,000 self-play games (144 s) + 400 steps (200 s) + 20 s = 364 s; 3 taus x 2 = 2,184 s
  round robin: 5 experts, base, generation 0 at 0.5, 1 and 1.5, six models at 1: 105 pairs x 10 games,
  1,000 of them with a model (35 s, ~60 s with seven samplers' compiles); entropy: 7 models x 200
  positions (~20 s)
  in all ~2,510 s, about 42 minutes (at the rates of one core of two busy ones; this one point runs alone).
"""

from ml_collections import ConfigDict

from transcendence_jax.configs.sweeps import experiment


def get_config(size: str = "laptop") -> ConfigDict:
    c = ConfigDict()
    c.experiment = "generations"
    c.base = b = experiment(size)
    b.populations = ConfigDict({"diverse": 0.0})
    b.self_play_temperatures = [0.5, 1.0, 1.5]  # one chain each
    b.rate_temperatures = [1.0]                 # each model rated at these (generation 0 also at each tau)
    b.generations = 2                           # after generation 0
    b.games_per_pair = 10
    b.analysis_positions = 200                  # held-out positions of the entropy
    c.seeds = 1
    if size == "reduced":
        b.games, b.self_play_games, b.analysis_positions, b.games_per_pair = 200, 24, 8, 2
    elif size == "laptop":
        b.games = b.self_play_games = 6000
        b.training.train.steps = b.training.train.decay_steps = 400
    else:
        b.games = b.self_play_games = 50_000
        b.training.train.steps = b.training.train.decay_steps = 1000  # 128 games a step: 2.7 epochs
        b.generations = 3
        c.seeds = 2
        c.workers = 2
    c.grid = [("self_play_games", [b.self_play_games])]  # one point a seed; override to sweep N
    c.report = ConfigDict(dict(
        x="generation", lines="tau", measures=["elo@1", "entropy", "minus_best_expert@1"], xscale="linear",
        title="Retrained on its own games: rating and entropy (tau 1) against generation, a line per self-play tau"))
    return c
