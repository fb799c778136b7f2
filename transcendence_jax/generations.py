"""Generations: a model retrained, generation after generation, on its own games.

Generation 0 is the experiment's model, trained on the experts' games (`experiment.generate`,
`experiment.train_model`). Generation g+1 is a fresh model (same config, same seed: only its data
differ) trained on `self_play_games` games that generation g plays against itself at temperature
tau, one chain per tau in `self_play_temperatures`. Fitting samples drawn at tau learns p^(1/tau)
(renormalised), so the theory says: below 1 each generation sharpens onto its mode (the entropy
falls, and at tau 1 it plays more like the arg-max, which transcends), at 1 it stays, above 1 it
flattens. Measured: every generation and the experts on one Elo scale (one round robin: each model
at `rate_temperatures`, generation 0 also at each self-play temperature, the reference the theory
predicts generation 1 to match), and each model's entropy and base agreement at tau 1 on held-out
positions of the experts' games.

Each self-play dataset's stats.json names its source: the model's workdir and step, the
temperature and every game id (the games are in selfplay/games.jsonl beside it). Folders, every
stage resumable:
  out/gen0/{data,train}    out/tau<t>/gen<g>/{selfplay,data,train}    out/tournament/games.jsonl
  out/results.json         out/generations.png
"""

from __future__ import annotations

import json
import math
import os
import time

import numpy as np
from ml_collections import ConfigDict

from transcendence_jax import experiment
from transcendence_jax.errors import UserError

KIND = "generations"


def _stage(msg: str) -> None:
    print(f"\n== {msg} [{time.strftime('%H:%M:%S')}]", flush=True)


def chain_dir(root: str, tau: float, generation: int) -> str:
    """Generation 0 is shared by every chain; generation g >= 1 of the chain at tau has its own folder."""
    return os.path.join(root, "gen0") if generation == 0 else os.path.join(root, f"tau{tau:g}", f"gen{generation}")


def player_name(tau: float | None, generation: int, temperature: float) -> str:
    """gen0@1 (generation 0 at temperature 1), gen2-tau0.5@1 (generation 2 of the tau-0.5 chain)."""
    chain = "" if generation == 0 else f"-tau{tau:g}"
    return f"gen{generation}{chain}@{temperature:g}"


def self_play(model, source: dict, tau: float, games: int, where: str, *, max_plies: int, seed: int) -> dict:
    """`games` games of `model` against itself at `tau` (where/selfplay/games.jsonl, resumable),
    then the dataset where/data, its stats.json holding `source` (the model's workdir and step)
    with the temperature, the game ids and how many games are distinct. Skipped when written."""
    from transcendence_jax.data.build import whole_record, write_dataset
    from transcendence_jax.data.records import GameRecord
    from transcendence_jax.data.tokenizer import encode_game
    from transcendence_jax.experts.population import adjudicate
    from transcendence_jax.play import arena
    from transcendence_jax.play.players import ModelPlayer, Pairing, close_players
    from transcendence_jax.sampling.sampler import Sampler

    data_dir = os.path.join(where, "data")
    if os.path.exists(os.path.join(data_dir, "stats.json")):
        print(f"{data_dir}: already built")
        with open(os.path.join(data_dir, "stats.json")) as f:
            return json.load(f)
    sampler = Sampler(model, max_games=min(games, 4096), legal="mask", seed=seed)
    player = ModelPlayer(f"self-play@{tau:g}", sampler, tau)
    pairings = [Pairing(f"self-{i:06d}", player, player, {}) for i in range(games)]
    try:
        rows = arena.play_games(pairings, out_dir=os.path.join(where, "selfplay"), max_plies=max_plies,
                                adjudicate=adjudicate, seed=seed, pgn=False, max_active=sampler.max_games)
    finally:
        close_players([player])
    rows.sort(key=lambda r: r["game_id"])
    name = f"self-play-gen{source['generation']}@{tau:g}"
    terminations: dict = {}
    for r in rows:
        terminations[r["termination"]] = terminations.get(r["termination"], 0) + 1
    source = dict(source, temperature=tau, games=len(rows), games_file=os.path.join("..", "selfplay", "games.jsonl"),
                  game_ids=[r["game_id"] for r in rows], distinct_games=len({r["moves"] for r in rows}),
                  mean_plies=float(np.mean([r["plies"] for r in rows])), terminations=terminations)
    recs = (GameRecord(tokens=encode_game(r["moves"].split()), result=r["result"], source=name) for r in rows)
    return write_dataset(recs, data_dir, seed=seed, split_by=whole_record, extra_stats={"source": source})


def policy_measures(model, boards, base, *, bootstrap: int = 200, seed: int = 0) -> dict:
    """The model's policy at tau 1 on `boards`: mean entropy (nats) and mean probability of the
    base policy's best moves, each with `bootstrap` resampled means over the positions (the same
    resamples for every model: paired)."""
    from transcendence_jax.analysis import model_policies

    entropy, agreement = [], []
    for board, pis in zip(boards, model_policies(model, boards, [1.0])):
        p = np.array(list(pis[1.0].values()))
        entropy.append(float(-(p[p > 0] * np.log(p[p > 0])).sum()))
        best = set(base.choices(board)[0])
        agreement.append(sum(q for m, q in pis[1.0].items() if m in best))
    draws = np.random.default_rng(seed).integers(0, len(boards), (bootstrap, len(boards)))
    return dict(entropy=float(np.mean(entropy)), base_agreement=float(np.mean(agreement)), positions=len(boards),
                draws=dict(entropy=np.round(np.asarray(entropy)[draws].mean(1), 4).tolist(),
                           base_agreement=np.round(np.asarray(agreement)[draws].mean(1), 4).tolist()))


def tournament(cfg: ConfigDict, population, models: list[tuple], out: str) -> list[dict]:
    """One round robin of the experts, the base and every (model, [(name, temperature), ...])."""
    from transcendence_jax.experts.population import adjudicate, base_expert
    from transcendence_jax.play import arena
    from transcendence_jax.play.players import ModelPlayer, PolicyPlayer, close_players
    from transcendence_jax.sampling.sampler import Sampler

    players = [PolicyPlayer(e.name, e, seed=cfg.seed) for e in population]
    players.append(PolicyPlayer("base", base_expert(cfg.base), seed=cfg.seed))
    total = len(players) + sum(len(named) for _, named in models)
    for i, (model, named) in enumerate(models):  # one Sampler a model, sized for all of its games
        sampler = Sampler(model, max_games=min(len(named) * (total - 1) * cfg.games_per_pair, 4096), legal="mask",
                          seed=cfg.seed + i)
        players += [ModelPlayer(name, sampler, t) for name, t in named]
    try:
        return arena.play_games(arena.round_robin(players, cfg.games_per_pair), out_dir=out, max_plies=cfg.max_plies,
                                adjudicate=adjudicate, seed=cfg.seed, pgn=False)
    finally:
        close_players(players)


def check(cfg: ConfigDict) -> None:
    """The generation fields, checked before anything runs."""
    if cfg.generations < 1 or cfg.self_play_games < 1:
        raise UserError(f"generations={cfg.generations}, self_play_games={cfg.self_play_games}: both must be >= 1")
    for tau in list(cfg.self_play_temperatures) + list(cfg.rate_temperatures):
        if not (isinstance(tau, (int, float)) and 0 < tau and math.isfinite(tau)):
            raise UserError(f"self_play_temperatures and rate_temperatures must be positive and finite, got {tau!r}")


def run(cfg: ConfigDict, out: str, replicate: int = 0) -> dict:
    """Every chain of one replicate (seed cfg.seed + replicate, in out/<replicate_name>): generation 0,
    the self-play generations, the round robin, the held-out measures; writes results.json and the
    figure there and returns the summary."""
    return _run(cfg, out, replicate)[0]


def sweep_point(cfg: ConfigDict, root: str) -> list[dict]:
    """The sweep's "generations" experiment (sweep/__init__.py): `run` into root/generations, then
    one row per chain and generation, labels tau and generation; measures elo@T and
    minus_best_expert@T for each rating temperature T (with their bootstrap draws), entropy and
    base_agreement."""
    summary, ratings = _run(cfg, root)
    rows = []
    for tau, chain in summary["chains"].items():
        for row in chain:
            measures = {name: dict(value=row[name], samples=row["draws"][name])
                        for name in ("entropy", "base_agreement")}
            for t in summary["rate_temperatures"]:
                name = player_name(float(tau), row["generation"], t)
                elo = ratings.samples_BP[:, ratings.players.index(name)]
                measures[f"elo@{t:g}"] = dict(value=ratings.elo[name], samples=[round(float(x), 2) for x in elo])
                diff = ratings.diff_samples(name, summary["best_expert"])
                measures[f"minus_best_expert@{t:g}"] = dict(value=row[f"minus_best_expert@{t:g}"][0],
                                                            samples=[round(float(x), 2) for x in diff])
            rows.append(dict(labels=dict(tau=float(tau), generation=row["generation"]), measures=measures,
                             info=dict(step=row["step"], data=row["data"], best_expert=summary["best_expert"])))
    return rows


def train_generations(cfg: ConfigDict, kind: str, root: str) -> dict:
    """Generation 0 on population `kind`'s games, then every chain's generations in turn (each
    stage skipped when done); {(tau, g): {model, step, data}}, generation 0 under (None, 0)."""
    from transcendence_jax.play.players import seed_of

    gen0 = chain_dir(root, 0, 0)
    _stage(f"generation 0: {cfg.games} games of {cfg.experts} experts ({kind}), then training")
    data0 = experiment.generate(cfg, kind, os.path.join(gen0, "data"))
    model, step = experiment.train_model(cfg, os.path.join(gen0, "data"), os.path.join(gen0, "train"))
    gens = {(None, 0): dict(model=model, step=step, data=dict(source=data0.get("sources"), games=data0["kept"]))}
    for tau in cfg.self_play_temperatures:
        for g in range(1, cfg.generations + 1):
            prev, where = gens[(tau, g - 1) if g > 1 else (None, 0)], chain_dir(root, tau, g)
            _stage(f"tau {tau:g}, generation {g}: {cfg.self_play_games} self-play games of generation {g - 1}, "
                   "then training")
            source = dict(model=os.path.relpath(os.path.join(chain_dir(root, tau, g - 1), "train"), root),
                          generation=g - 1, step=prev["step"])
            stats = self_play(prev["model"], source, tau, cfg.self_play_games, where, max_plies=cfg.max_plies,
                              seed=seed_of(cfg.seed, "self-play", tau, g) % 2**31)
            model, step = experiment.train_model(cfg, os.path.join(where, "data"), os.path.join(where, "train"))
            gens[(tau, g)] = dict(model=model, step=step,
                                  data={k: v for k, v in stats["source"].items() if k != "game_ids"})
    return gens


def _run(cfg: ConfigDict, out: str, replicate: int = 0):
    """`run`'s work: (the summary, the Ratings)."""
    from transcendence_jax.experts import population as experts
    from transcendence_jax.rating import elo_mle

    start = time.time()
    check(cfg)
    cfg = ConfigDict(cfg.to_dict())
    cfg.seed += replicate
    kind = min(cfg.populations, key=lambda k: cfg.populations[k])  # the most diverse of the config's populations
    root = os.path.join(out, experiment.replicate_name(KIND, replicate))
    experiment.check_settings(root, cfg, kind)
    gens = train_generations(cfg, kind, root)
    _stage("one round robin: experts, base and every generation")
    population = experiment.make_population(cfg, kind)
    gen0_temps = sorted(set(cfg.rate_temperatures) | set(cfg.self_play_temperatures))
    named = [(gens[(None, 0)]["model"], [(player_name(None, 0, t), t) for t in gen0_temps])]
    named += [(gens[(tau, g)]["model"], [(player_name(tau, g, t), t) for t in cfg.rate_temperatures])
              for tau in cfg.self_play_temperatures for g in range(1, cfg.generations + 1)]
    results = tournament(cfg, population, named, os.path.join(root, "tournament"))
    names = [e.name for e in population]
    ratings = elo_mle([(r["white"], r["black"], r["score_white"]) for r in results], anchor=names,
                      bootstrap=500, seed=cfg.seed)
    best = max(names, key=lambda n: ratings.elo[n])
    _stage("entropy and base agreement on held-out positions")
    boards = experiment.held_out_positions(os.path.join(chain_dir(root, 0, 0), "data"), cfg.analysis_positions,
                                           cfg.seed)
    base = experts.base_expert(cfg.base)
    chains = {}
    for tau in cfg.self_play_temperatures:
        chains[f"{tau:g}"] = []
        for g in range(cfg.generations + 1):
            gen = gens[(tau, g) if g else (None, 0)]
            row = dict(generation=g, step=gen["step"], data=gen["data"],
                       **policy_measures(gen["model"], boards, base, seed=cfg.seed))
            for t in cfg.rate_temperatures:
                name = player_name(tau, g, t)
                row[f"elo@{t:g}"] = [ratings.elo[name], *ratings.ci[name]]
                row[f"minus_best_expert@{t:g}"] = list(ratings.diff(name, best))
            chains[f"{tau:g}"].append(row)
    summary = dict(kind=KIND, population=kind, replicate=replicate, seed=cfg.seed, best_expert=best,
                   rate_temperatures=list(cfg.rate_temperatures), chains=chains,
                   gen0={f"{t:g}": [ratings.elo[player_name(None, 0, t)], *ratings.ci[player_name(None, 0, t)]]
                         for t in gen0_temps},
                   ratings=ratings.to_dict(), games=len(results), seconds=round(time.time() - start, 1))
    with open(os.path.join(root, "results.json"), "w") as f:
        json.dump(summary, f, indent=1)
    figure(summary, os.path.join(root, "generations.png"))
    print(summary_table(summary))
    return summary, ratings


def summary_table(summary: dict) -> str:
    """One line per chain and generation: Elo at each rating temperature (experts' mean 0), entropy."""
    lines = [f"generations ({summary['population']} experts, best expert {summary['best_expert']}; Elo with 95% CI)"]
    for tau, rows in summary["chains"].items():
        for row in rows:
            elos = "  ".join(f"@{t:g} {row[f'elo@{t:g}'][0]:+.0f} [{row[f'elo@{t:g}'][1]:+.0f}, "
                             f"{row[f'elo@{t:g}'][2]:+.0f}]" for t in summary["rate_temperatures"])
            lines.append(f"  tau {tau:>4} gen {row['generation']}: {elos}  entropy {row['entropy']:.2f}  "
                         f"base agreement {row['base_agreement']:.2f}")
    return "\n".join(lines)


def figure(summary: dict, path: str) -> None:
    """Rating (at the first rating temperature) and entropy against generation, one line per tau."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = summary["rate_temperatures"][0]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    for tau, rows in summary["chains"].items():
        x = [r["generation"] for r in rows]
        elo = np.array([r[f"elo@{t:g}"] for r in rows])
        left.errorbar(x, elo[:, 0], yerr=[elo[:, 0] - elo[:, 1], elo[:, 2] - elo[:, 0]], marker="o", capsize=3,
                      label=f"self-play tau {tau}")
        right.plot(x, [r["entropy"] for r in rows], marker="o", label=f"self-play tau {tau}")
    best = summary["ratings"]["players"][summary["best_expert"]]["elo"]
    left.axhline(best, color="grey", ls="--", label=f"best expert ({summary['best_expert']})")
    left.set(xlabel="generation", ylabel=f"Elo at tau {t:g} (experts' mean 0)", title="rating")
    right.set(xlabel="generation", ylabel="entropy at tau 1 (nats), held-out positions", title="entropy")
    for ax in (left, right):
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
