"""The packaged sweep configs (`transcendence sweep NAME`): each file's get_config(size) returns a
sweep (transcendence_jax/sweep/grid.py lists the fields) at size reduced, laptop or gpu.

diversity: the experts' overlap x their number, against the vote's and the model's margins over
the best expert. scale: the model's size against the margin and the fidelity to the vote.
specialists: crowds of specialists and of blind-spot generalists against overlap. generations: a
model retrained on its own games at three temperatures, rating and entropy against generation.
"""

NAMES = ("diversity", "scale", "specialists", "generations")


def experiment(size: str):
    """The base experiment of a packaged sweep at `size`: the demo's config (demo_reduced, demo,
    demo_gpu) at the `mvv-lva` base with the vote and mixture (the settings of the recorded sweeps,
    docs/sweeps), without the model-vote and quiet-random players (not what the sweeps measure) and, at reduced size,
    shrunk to a few seconds of work a stage (a test's size: its figures mean nothing)."""
    import importlib

    module = {"reduced": "demo_reduced", "laptop": "demo", "gpu": "demo_gpu"}[size]
    c = importlib.import_module(f"transcendence_jax.configs.{module}").get_config()
    c.model_votes = []
    c.ensemble_vote = False
    c.base, c.reference_players = "mvv-lva", ["vote", "mixture"]  # what the recorded sweeps were run with
    del c.quiet_random_player  # the demo's diagnostic player: not what the sweeps measure (and their
                               # settings stay those of the sweeps run before it existed)
    if size == "reduced":
        c.games, c.games_per_pair, c.head_to_head, c.max_plies, c.analysis_positions = 300, 2, 2, 30, 4
        t = c.training.train
        t.steps = t.decay_steps = t.eval_every = t.checkpoint_every = 10
        t.batch_size, t.eval_batches, t.log_every = 8, 1, 5
    return c


def populations_sweep(size: str, populations: dict, *, games: int, steps: int):
    """The frame of a sweep of the "populations" experiment: the base experiment at `size` with
    `populations`, the model at tau 0.001 and 1, one seed; laptop: `games` expert games, `steps`
    training steps, a smaller tournament, two points at once; gpu: 50,000 games, 50 head-to-heads,
    two seeds, four points at once. The preset adds its grid and report."""
    from ml_collections import ConfigDict

    c = ConfigDict()
    c.experiment = "populations"
    c.base = experiment(size)
    c.base.populations = ConfigDict(populations)
    c.base.temperatures = [0.001, 1.0]
    c.seeds = 1
    if size == "laptop":
        c.base.games = games
        c.base.training.train.steps = c.base.training.train.decay_steps = steps
        c.base.games_per_pair, c.base.head_to_head, c.base.analysis_positions = 20, 50, 100
        c.workers = 2
    elif size == "gpu":
        c.base.games = 50_000
        c.base.head_to_head = 50
        c.seeds = 2
        c.workers = 4
    return c
