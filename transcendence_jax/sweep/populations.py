"""The sweep's "populations" experiment: every population of a point's config, one replicate each
(experiment.run_population: data, training, tournament, ratings, state-level measure), turned into
rows of measures for the report: Elo differences, each with its bootstrap draws.

Labels of a row: population, overlap, experts, params (the model's parameter count).
Measures (model = the model at the lowest temperature; best = the population's best expert):
  model_minus_best_expert    the transcendence margin
  vote_minus_best_expert     the ceiling: the experts' majority vote (the paper's Proposition 2)
  mixture_minus_best_expert  a random expert a move: what a perfect model samples at tau 1
  highest_tau_minus_best_expert
  model_minus_vote           fidelity: how far the model's arg-max is from the vote (0: perfect)
  tau1_minus_mixture         fidelity at tau 1 (when 1 is among the temperatures)
"""

from __future__ import annotations

from ml_collections import ConfigDict


def parameter_count(model_cfg: ConfigDict) -> int:
    """The decoder's parameters at this config, counted without building it (jax.eval_shape)."""
    from flax import nnx

    from transcendence_jax.model import Transformer, count_params

    return int(count_params(nnx.eval_shape(lambda: Transformer(model_cfg, rngs=nnx.Rngs(0)))))


def run(cfg: ConfigDict, root: str) -> list[dict]:
    """Every population of `cfg` (lowest overlap first) run into root/<population>; one row each."""
    from transcendence_jax.experiment import model_name, run_population

    params = parameter_count(cfg.training.model)
    low, high = model_name(min(cfg.temperatures)), model_name(max(cfg.temperatures))
    rows = []
    for kind in sorted(cfg.populations, key=lambda k: cfg.populations[k]):
        r = run_population(cfg, kind, root)  # replicate 0: the point's own seed is cfg.seed
        ratings, best = r["ratings"], r["best_expert"]
        pairs = {"model_minus_best_expert": (low, best), "vote_minus_best_expert": ("vote", best),
                 "mixture_minus_best_expert": ("mixture", best), "highest_tau_minus_best_expert": (high, best),
                 "model_minus_vote": (low, "vote"), "tau1_minus_mixture": (model_name(1.0), "mixture")}
        measures = {}
        for name, (a, b) in pairs.items():
            if a in ratings.elo and b in ratings.elo:
                diff, lo, hi = ratings.diff(a, b)
                samples = [round(float(x), 2) for x in ratings.diff_samples(a, b)]
                measures[name] = dict(value=diff, lo=lo, hi=hi, samples=samples)
        rows.append(dict(labels=dict(population=kind, overlap=cfg.populations[kind], experts=cfg.experts,
                                     params=params),
                         measures=measures,
                         info=dict(best_expert=best, games=len(r["results"]), training_step=r["step"],
                                   seconds=round(r["seconds"], 1))))
    return rows
