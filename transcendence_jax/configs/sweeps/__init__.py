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
    demo_gpu), without the model-vote players (not what the sweeps measure) and, at reduced size,
    shrunk to a few seconds of work a stage (a test's size: its figures mean nothing)."""
    import importlib

    module = {"reduced": "demo_reduced", "laptop": "demo", "gpu": "demo_gpu"}[size]
    c = importlib.import_module(f"transcendence_jax.configs.{module}").get_config()
    c.model_votes = []
    c.ensemble_vote = False
    if size == "reduced":
        c.games, c.games_per_pair, c.head_to_head, c.max_plies, c.analysis_positions = 300, 2, 2, 30, 4
        t = c.training.train
        t.steps = t.decay_steps = t.eval_every = t.checkpoint_every = 10
        t.batch_size, t.eval_batches, t.log_every = 8, 1, 5
    return c
