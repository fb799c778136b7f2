"""`transcendence demo`: the whole experiment on the demo config (configs/demo.py), on a laptop CPU.

For each population of synthetic experts (diverse, then clones: see docs/EXPERTS.md):
  1. generate the experts' games and write them as a dataset       (experts, data.build)
  2. train the tiny decoder on them                                 (training)
  3. a round robin of the experts, the unflawed base policy and the model at each temperature,
     plus head-to-heads of the model at the lowest temperature against every expert (play)
  4. one order-free Elo scale with bootstrap 95% CIs                (rating)
  5. the paper's state-level measure on held-out positions          (analysis)
Then one table, one verdict line per population, the figure and results.json, all in --out.
Every stage resumes: rerunning the same command skips finished data, training and games.
"""
from __future__ import annotations

import argparse
import json
import os
import time

import chess
import numpy as np
from ml_collections import ConfigDict

from transcendence_jax.errors import UserError

SCALES = {"default": "demo", "reduced": "demo_reduced", "gpu": "demo_gpu"}  # --scale -> packaged config


def demo_config(scale: str = "default", config: str | None = None, overrides=()) -> ConfigDict:
    """The experiment's settings: a config file or packaged name (default: the one --scale names),
    with `key=value` overrides (configs/demo.py lists the fields)."""
    from transcendence_jax.config import load_config

    if scale not in SCALES:
        raise UserError(f"unknown demo scale {scale!r}: use default, reduced or gpu")
    return load_config(config or SCALES[scale], overrides)


def _stage(msg: str) -> None:
    print(f"\n== {msg} [{time.strftime('%H:%M:%S')}]", flush=True)


def _population(cfg: ConfigDict, kind: str):
    from transcendence_jax.experts import population as experts

    overlap = cfg.populations[kind]  # the shared share of each expert's blind squares: 0 diverse ... 1 clones
    return experts.population("clones" if overlap >= 1 else "diverse", cfg.experts, cfg.seed,
                              blind_fraction=cfg.blind_fraction, base=cfg.base, overlap=overlap)


def generate(cfg: ConfigDict, kind: str, out: str, players=None, games: int | None = None) -> dict:
    """The experts' games (or `players`' round robin: [e, e] is e's self-play) as a dataset in
    `out` (skipped when already written)."""
    from transcendence_jax.data.build import whole_record, write_dataset
    from transcendence_jax.experts import population as experts

    stats_path = os.path.join(out, "stats.json")
    if os.path.exists(stats_path):
        print(f"{out}: already built")
        with open(stats_path) as f:
            return json.load(f)
    population = _population(cfg, kind) if players is None else players
    games = cfg.games if games is None else games
    gen: dict = {}
    recs = experts.records(population, games, seed=cfg.seed, workers=cfg.workers, boards=False, stats=gen)
    stats = write_dataset(_progress(recs, games, "games"), out, seed=cfg.seed, split_by=whole_record,
                          extra_stats={"experts": experts.describe(population), "generation": gen})
    stats.update(generation=gen)
    with open(stats_path, "w") as f:
        json.dump(stats, f, indent=1)
    return stats


def _progress(items, total: int, unit: str):
    from tqdm import tqdm

    yield from tqdm(items, total=total, unit=unit, mininterval=2.0)


def train_model(cfg: ConfigDict, data_dir: str, workdir: str):
    from transcendence_jax.training.checkpoint import load_model
    from transcendence_jax.training.train import train

    config = ConfigDict(cfg.training.to_dict())
    config.data.path, config.train.seed = data_dir, cfg.seed
    train(config, workdir)
    model, _, step = load_model(workdir)
    return model, step


REFERENCE_POLICIES = {"vote": "VotePolicy", "mixture": "MixturePolicy"}  # name -> experts.reference class


def train_ensemble(cfg: ConfigDict, kind: str, root: str) -> list:
    """The ensemble-of-agents alternative to one model: a model per expert, each trained (as the
    main model) on that expert's own self-play games only, cfg.games / experts of them."""
    models = []
    for expert in _population(cfg, kind):
        where = os.path.join(root, expert.name)
        _stage(f"{kind}: ensemble, {expert.name}'s own games and model")
        generate(cfg, kind, os.path.join(where, "data"), players=[expert, expert],
                 games=max(2, cfg.games // cfg.experts))
        models.append(train_model(cfg, os.path.join(where, "data"), os.path.join(where, "train"))[0])
    return models


def tournament(cfg: ConfigDict, kind: str, model, out: str, ensemble=()) -> list[dict]:
    """Round robin of experts, base, the reference players (the experts' vote and mixture, the
    model voting with itself, the ensemble of per-expert models voting) and the model at every
    temperature, plus head-to-heads."""
    from transcendence_jax.experts import population as experts
    from transcendence_jax.experts import reference
    from transcendence_jax.play import arena
    from transcendence_jax.play.players import (
        EnsembleVoteBackend,
        EnsembleVotePlayer,
        ModelPlayer,
        ModelVoteBackend,
        ModelVotePlayer,
        PolicyPlayer,
        close_players,
    )
    from transcendence_jax.sampling.sampler import Sampler

    population = _population(cfg, kind)
    players = [PolicyPlayer(e.name, e, seed=cfg.seed) for e in population]
    players.append(PolicyPlayer("base", experts.base_expert(cfg.base), seed=cfg.seed))
    for name in cfg.get("reference_players", []):
        if name not in REFERENCE_POLICIES:
            raise UserError(f"reference player {name!r}: choose from {', '.join(REFERENCE_POLICIES)}")
        players.append(PolicyPlayer(name, getattr(reference, REFERENCE_POLICIES[name])(population), seed=cfg.seed))
    # Every model game in flight at once, up to a cache of a few thousand games a sampler.
    m, p, v = len(cfg.temperatures), len(players), len(cfg.get("model_votes", []))
    model_games = cfg.games_per_pair * (m * (p + v) + m * (m - 1) // 2) + cfg.head_to_head * cfg.experts
    sampler = Sampler(model, max_games=min(model_games, 4096), legal="mask", seed=cfg.seed)
    models = [ModelPlayer(model_name(t), sampler, t) for t in cfg.temperatures]
    if v:  # their own Sampler: the arena calls each backend from its own thread
        vote_games = cfg.games_per_pair * (v * (p + m) + v * (v - 1) // 2)
        backend = ModelVoteBackend(Sampler(model, max_games=min(vote_games, 4096), legal="mask", seed=cfg.seed + 1),
                                   seed=cfg.seed)
        models += [ModelVotePlayer(vote_name(k, cfg.vote_temperature), backend, k, cfg.vote_temperature)
                   for k in cfg.model_votes]
    if ensemble:  # one Sampler a member, each member sampling its own move at the vote temperature
        ensemble_games = cfg.games_per_pair * (p + len(models))
        members = [Sampler(member, max_games=min(ensemble_games, 4096), legal="mask", seed=cfg.seed + 2 + i)
                   for i, member in enumerate(ensemble)]
        models.append(EnsembleVotePlayer(f"ensemble-vote@{cfg.vote_temperature:g}",
                                         EnsembleVoteBackend(members, seed=cfg.seed), cfg.vote_temperature))
    pairings = arena.round_robin(players + models, cfg.games_per_pair)
    pairings += [(f"h2h-{gid}", w, b, h) for gid, w, b, h in
                 arena.grid(models[:1], players[: cfg.experts], cfg.head_to_head)]
    try:
        return arena.play_games(pairings, out_dir=out, max_plies=cfg.max_plies, adjudicate=experts.adjudicate,
                                seed=cfg.seed, pgn=False)  # games.jsonl holds every game's moves
    finally:
        close_players(players + models)


def model_name(tau: float) -> str:
    return f"model@{tau:g}"


def vote_name(votes: int, tau: float) -> str:
    return f"model-vote{votes}@{tau:g}"


def rate(cfg: ConfigDict, results: list[dict]) -> dict:
    """One Elo scale (experts' mean = 0), CIs, and the verdict: lowest-temperature model minus best expert."""
    from transcendence_jax.rating import elo_mle

    names = [f"expert{i}" for i in range(cfg.experts)]
    ratings = elo_mle([(r["white"], r["black"], r["score_white"]) for r in results], anchor=names,
                      bootstrap=500, seed=cfg.seed)
    best = max(names, key=lambda n: ratings.elo[n])
    low, high = model_name(min(cfg.temperatures)), model_name(max(cfg.temperatures))
    diff = ratings.diff(low, best)
    diff_high = ratings.diff(high, best)
    # How far the model is from what a perfect imitator would play: at tau 1 the mixture, at the
    # lowest tau the vote; and the vote against the best expert (transcendence is possible
    # exactly when it is above: the paper's Proposition 2).
    tau_one = model_name(1.0) if 1.0 in cfg.temperatures else high
    references = {f"{tau_one} minus mixture": (tau_one, "mixture"), f"{low} minus vote": (low, "vote"),
                  "vote minus best expert": ("vote", best), "mixture minus best expert": ("mixture", best)}
    voters = [n for n in ratings.elo if n.startswith(("model-vote", "ensemble-vote"))]
    references.update({f"{n} minus best expert": (n, best) for n in voters})
    fidelity = {label: ratings.diff(a, b) for label, (a, b) in references.items()
                if a in ratings.elo and b in ratings.elo}
    return dict(ratings=ratings, best_expert=best, diff=diff, diff_high=diff_high, fidelity=fidelity,
                transcends=bool(diff[1] > 0))


def state_level(cfg: ConfigDict, kind: str, model, data_dir: str) -> dict:
    """The paper's state-level measure on held-out positions (validation games).

    For each position: the model's distribution at each temperature; the experts' exact
    distributions (uniform over the moves each one chooses among) and their vote's; every legal
    move's value: Stockfish at a fixed depth, the mover's expected score by the "lichess" WDL
    model, as the paper (`state_values: stockfish`), or short base-policy rollouts scored by
    material (`rollouts`). Reports the model's probability of playing one of the base policy's
    best moves, and its gain in expected score over the experts' average (the mixture), split
    by whether some expert is blind in the position or none is; the same gain for the vote, the
    reference that tells a measure that cannot see the flaw from a model that did not learn it."""
    from transcendence_jax import analysis
    from transcendence_jax.data.build import dataset_files
    from transcendence_jax.data.records import read_records
    from transcendence_jax.experts import population as experts
    from transcendence_jax.experts import reference

    population = _population(cfg, kind)
    rng = np.random.default_rng(cfg.seed)
    boards = []
    for rec in read_records(dataset_files(data_dir, "validation")):
        moves = [chess.Move.from_uci(u) for u in _ucis(rec.tokens)]
        if len(moves) < 4:
            continue
        board = chess.Board()
        for m in moves[: int(rng.integers(2, len(moves) - 1))]:
            board.push(m)
        if not board.is_game_over():
            boards.append(board)
        if len(boards) >= cfg.analysis_positions:
            break
    base = experts.base_expert(cfg.base)
    model_pi = analysis.model_policies(model, boards, cfg.temperatures)
    base_sets = [set(base.choices(b)[0]) for b in boards]
    blind_S = np.array([any(e.error_probability(b) > 0 for e in population) for b in boards], bool)
    how = cfg.get("state_values", "stockfish")
    if how == "stockfish":
        values = analysis.stockfish_move_values(boards, depth=cfg.get("stockfish_depth", 8))
    elif how == "rollouts":
        values = analysis.rollout_move_values(boards, base, experts.adjudicate, rollouts=2, plies=4, seed=cfg.seed)
    else:
        raise UserError(f"state_values={how!r}: use stockfish or rollouts")
    mixture = [reference.mixture_distribution(population, b) for b in boards]  # the experts' average
    groups = {"blind": blind_S, "none_blind": ~blind_S}

    def gain_over_experts(pi) -> dict:
        return analysis.summarize_gains(analysis.state_gains(pi, mixture, values), groups=groups, bootstrap=200,
                                        seed=cfg.seed)

    out = {"positions": len(boards), "some_expert_blind": float(blind_S.mean()), "values": how,
           "vote_gain_over_experts": gain_over_experts([reference.vote_distribution(population, b) for b in boards]),
           "temperatures": {}}
    for tau in cfg.temperatures:
        pi = [m[tau] for m in model_pi]
        agree_S = np.array([sum(p.get(m, 0.0) for m in best) for p, best in zip(pi, base_sets)])
        out["temperatures"][str(tau)] = {
            "agreement_with_base": float(agree_S.mean()),
            "agreement_where_some_expert_blind": float(agree_S[blind_S].mean()) if blind_S.any() else None,
            "gain_over_experts": gain_over_experts(pi)}
    return out


def _ucis(tokens) -> list[str]:
    from transcendence_jax.data.tokenizer import decode_game

    return [m.uci() for m in decode_game(tokens)[0]]


def replicate_name(kind: str, replicate: int) -> str:
    """The output folder of one replicate: the population's name for the first, `-seedN` after."""
    return kind if replicate == 0 else f"{kind}-seed{replicate}"


def run_population(cfg: ConfigDict, kind: str, out: str, replicate: int = 0) -> dict:
    """One population's whole path: data, training, tournament, ratings, state-level measure.
    Replicate r runs it all with seed cfg.seed + r, in out/<replicate_name>."""
    start = time.time()
    cfg = ConfigDict(cfg.to_dict())
    cfg.seed += replicate
    root = os.path.join(out, replicate_name(kind, replicate))
    _stage(f"{kind}: generating {cfg.games} games of {cfg.experts} experts")
    data_stats = generate(cfg, kind, os.path.join(root, "data"))
    _stage(f"{kind}: training ({cfg.training.train.steps} steps of {cfg.training.train.batch_size} games)")
    model, step = train_model(cfg, os.path.join(root, "data"), os.path.join(root, "train"))
    ensemble = train_ensemble(cfg, kind, os.path.join(root, "ensemble")) if cfg.get("ensemble_vote") else []
    _stage(f"{kind}: tournament")
    results = tournament(cfg, kind, model, os.path.join(root, "tournament"), ensemble)
    rated = rate(cfg, results)
    _stage(f"{kind}: state-level measure")
    states = state_level(cfg, kind, model, os.path.join(root, "data"))
    return dict(kind=kind, replicate=replicate, seed=cfg.seed, step=step, results=results,
                seconds=time.time() - start, data=data_stats, states=states, **rated)


def verdict(r: dict, tau: float) -> str:
    d, lo, hi = r["diff"]
    figure = f"model tau={tau:g} {d:+.0f} [{lo:+.0f}, {hi:+.0f}]"
    seeds = r.get("seeds")
    if seeds and len(seeds["per_seed"]) > 1:
        each = ", ".join(f"{s['diff']:+.0f}" for s in seeds["per_seed"])
        figure += f" over {len(seeds['per_seed'])} seeds (each: {each}; CI from seeds and games)"
    if r["transcends"]:
        return f"{r['kind']}: transcends: {figure} above the best expert ({r['best_expert']})"
    return f"{r['kind']}: does not transcend: {figure} vs the best expert ({r['best_expert']})"


def combine_seeds(cfg: ConfigDict, replicates: list[dict]) -> dict:
    """Each replicate's model@lowest-tau minus its own best expert, and their mean with a CI that
    resamples both the replicates and each one's games (rating.across_seeds)."""
    from transcendence_jax.rating import across_seeds

    low = model_name(min(cfg.temperatures))
    per_seed = [dict(seed=r["seed"], best_expert=r["best_expert"], **dict(zip(("diff", "lo", "hi"), r["diff"])))
                for r in replicates]
    across = across_seeds([r["diff"][0] for r in replicates],
                          [r["ratings"].diff_samples(low, r["best_expert"]) for r in replicates], seed=cfg.seed)
    return dict(per_seed=per_seed, across=dict(zip(("diff", "lo", "hi"), across)))


def state_level_line(states: dict) -> str:
    """The state-level measure in one line: per player, its gain over the experts' average where
    some expert is blind (points x 100, 95% CI over positions), and its agreement with the base."""
    def gain(summary: dict) -> str:
        blind = summary.get("groups", {}).get("blind")
        if blind is None:
            return f"{summary['mean']:+.2f}"
        return f"{blind['mean']:+.2f} [{blind['ci95'][0]:+.2f}, {blind['ci95'][1]:+.2f}]"

    parts = [f"vote {gain(states['vote_gain_over_experts'])}"] + [
        f"tau={t}: {gain(v['gain_over_experts'])} (agree {v['agreement_with_base']:.2f})"
        for t, v in states["temperatures"].items()]
    return (f"state-level, {states['positions']} held-out positions ({states['values']} values), gain over the "
            "experts where some expert is blind: " + ", ".join(parts))


def report(cfg: ConfigDict, runs: list[dict], out: str) -> dict:
    """The tables (the first replicate's), fidelity, state-level lines, the verdicts (over every
    replicate when there are several), the figure and results.json."""
    from transcendence_jax.rating import format_table, plot_rating_vs_temperature

    tau = min(cfg.temperatures)
    summary = {"config": cfg.to_dict(), "populations": {}}
    series, bands, lines = {}, {}, {}
    mains = []
    for kind in dict.fromkeys(r["kind"] for r in runs):
        replicates = sorted((r for r in runs if r["kind"] == kind), key=lambda r: r["replicate"])
        r = dict(replicates[0], seeds=combine_seeds(cfg, replicates))
        if len(replicates) > 1:
            r["diff"] = tuple(r["seeds"]["across"][k] for k in ("diff", "lo", "hi"))
            r["transcends"] = bool(r["diff"][1] > 0)
        mains.append(r)
    for r in mains:
        ratings = r["ratings"]
        print(f"\n{r['kind']} (training step {r['step']}, {len(r['results'])} games, {r['seconds']:.0f}s)")
        print(format_table(ratings, r["results"]))
        # One y-axis for both populations: Elo minus that population's best expert.
        zero = ratings.elo[r["best_expert"]]
        series[r["kind"]] = [(t, ratings.elo[model_name(t)] - zero, *(x - zero for x in ratings.ci[model_name(t)]))
                             for t in cfg.temperatures]
        bands[f"{r['kind']}: best expert, 95% CI"] = tuple(x - zero for x in ratings.ci[r["best_expert"]])
        lines.update({f"{r['kind']}: {name}": ratings.elo[name] - zero for name in ("vote", "mixture")
                      if name in ratings.elo})
        for label, (d, lo, hi) in r["fidelity"].items():
            print(f"{label}: {d:+.0f} [{lo:+.0f}, {hi:+.0f}]")
        print(state_level_line(r["states"]))
        summary["populations"][r["kind"]] = {
            "ratings": json.loads(ratings.to_json()), "best_expert": r["best_expert"],
            "model_minus_best_expert": dict(zip(("diff", "lo", "hi"), r["diff"])),
            "highest_tau_minus_best_expert": dict(zip(("diff", "lo", "hi"), r["diff_high"])),
            "fidelity": {label: dict(zip(("diff", "lo", "hi"), d)) for label, d in r["fidelity"].items()},
            "transcends": r["transcends"], "verdict": verdict(r, tau), "training_step": r["step"],
            "games": len(r["results"]), "seconds": round(r["seconds"], 1), "data": r["data"],
            "state_level": r["states"], "seeds": r["seeds"]}
    print()
    for r in mains:
        print(verdict(r, tau))
    plot_rating_vs_temperature(series, os.path.join(out, "transcendence.png"), bands=bands, lines=lines,
                               ylabel="Elo minus the population's best expert",
                               title="The model against its experts, by sampling temperature")
    with open(os.path.join(out, "results.json"), "w") as f:
        json.dump(summary, f, indent=1, default=float)
    print(f"\nwrote {out}/results.json and {out}/transcendence.png")
    return summary


def _population_process(cfg_dict: dict, kind: str, replicate: int, out: str, cores: list[int] | None = None) -> None:
    """A spawned child: one replicate of one population, its output in out/<name>/log.txt.
    Pinned to its own share of the cores: on 2 cores, two XLA thread pools spread over both run
    each step slower than one core each."""
    import pickle
    import sys

    if cores:
        os.sched_setaffinity(0, cores)

    root = os.path.join(out, replicate_name(kind, replicate))
    os.makedirs(root, exist_ok=True)
    import traceback

    with open(os.path.join(root, "log.txt"), "a", buffering=1) as log:
        sys.stdout = sys.stderr = log
        try:
            result = run_population(ConfigDict(cfg_dict), kind, out, replicate)
        except UserError as e:
            print(f"error: {e}")
            sys.exit(2)
        except BaseException:
            traceback.print_exc(file=log)
            print(f"error: the {kind} population failed: see the traceback above")
            sys.exit(1)
        finally:
            sys.stdout, sys.stderr = sys.__stdout__, sys.__stderr__
        with open(os.path.join(root, "result.pkl"), "wb") as f:
            pickle.dump(result, f)


def _run_parallel(cfg: ConfigDict, populations, out: str, replicate: int = 0) -> list[dict]:
    """Both populations (one replicate) at once, one process each: most of the path is
    single-threaded Python (expert policies, python-chess, the arena), so two processes use both cores."""
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    procs = {}
    cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    for i, kind in enumerate(populations):
        name = replicate_name(kind, replicate)
        for stale in ("result.pkl", "log.txt"):
            if os.path.exists(os.path.join(out, name, stale)):
                os.remove(os.path.join(out, name, stale))
        share = cores[i :: len(populations)] if len(cores) >= len(populations) else None
        procs[name] = ctx.Process(target=_population_process, args=(cfg.to_dict(), kind, replicate, out, share))
        procs[name].start()
    try:
        _follow(procs, out)
    finally:  # interrupted or failed: no orphans left training in the background
        for proc in procs.values():
            if proc.is_alive():
                proc.terminate()
            proc.join()
    return _collect(procs, out)


def _follow(procs: dict, out: str) -> None:
    """Print each population's stage lines as they come and, every 30 s, its latest progress."""
    seen = {kind: 0 for kind in procs}
    last_status = time.time()
    while any(p.is_alive() for p in procs.values()):
        time.sleep(1.0)
        status = time.time() - last_status > 30
        for kind in procs:
            path = os.path.join(out, kind, "log.txt")
            if not os.path.exists(path):
                continue
            with open(path, errors="replace") as f:
                text = f.read()
            for line in text[seen[kind]:].replace("\r", "\n").splitlines():
                if line.startswith("== ") or line.startswith("error"):
                    print(line, flush=True)
            seen[kind] = len(text)
            if status:
                tail = [t for t in text.replace("\r", "\n").splitlines() if t.strip()][-1:]
                if tail:
                    print(f"   [{kind}] {tail[0].strip()[:110]}", flush=True)
        if status:
            last_status = time.time()


def _collect(procs: dict, out: str) -> list[dict]:
    import pickle

    runs = []
    for kind, proc in procs.items():
        path = os.path.join(out, kind, "result.pkl")
        if proc.exitcode != 0 or not os.path.exists(path):
            raise UserError(f"the {kind} population failed (exit code {proc.exitcode}); its log is "
                            f"{os.path.join(out, kind, 'log.txt')}; rerun the same command to resume")
        with open(path, "rb") as f:
            runs.append(pickle.load(f))
    return runs


def demo(out: str, *, scale: str = "default", config: str | None = None, populations=None, overrides=(),
         parallel: bool | None = None) -> dict:
    """The whole experiment; `populations`: a subset of the config's (default: all of them);
    `parallel` (default: with 2+ cores and 2+ populations) runs them in processes at once."""
    cfg = demo_config(scale, config, overrides)
    populations = list(cfg.populations) if populations is None else list(populations)
    unknown = [p for p in populations if p not in cfg.populations]
    if unknown or not populations:
        raise UserError(f"populations {','.join(populations)!r}: choose from {','.join(cfg.populations)} "
                        "(the config's `populations`)")
    if cfg.get("seeds", 1) < 1:
        raise UserError(f"seeds={cfg.seeds}: at least one replicate")
    os.makedirs(out, exist_ok=True)
    start = time.time()
    if parallel is None:
        parallel = len(populations) > 1 and (os.cpu_count() or 1) >= 2
    if parallel:
        cfg.workers = max(1, cfg.workers // len(populations))
    runs = []
    for replicate in range(cfg.get("seeds", 1)):
        if parallel:
            runs += _run_parallel(cfg, populations, out, replicate)
        else:
            runs += [run_population(cfg, kind, out, replicate) for kind in populations]
    summary = report(cfg, runs, out)
    print(f"demo finished in {time.time() - start:.0f}s")
    return summary


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from transcendence_jax.config import add_config_arguments

    parser.add_argument("--out", default="runs/demo", help="output directory (default runs/demo); reruns resume")
    parser.add_argument("--scale", choices=tuple(SCALES), default="default",
                        help="default: the demo config (2 CPU cores); reduced: a smoke test; "
                             "gpu: 10 experts, 100k games, a 26M-parameter model (one GPU, ~16 cores)")
    add_config_arguments(parser, default="", help="an experiment config file or packaged name "
                         "(default: the one --scale names: demo, demo_reduced or demo_gpu)")
    parser.add_argument("--populations", default="",
                        help="comma-separated subset of the config's populations (default: all; demo: diverse,clones)")
    parser.add_argument("--sequential", action="store_true",
                        help="run the populations one after the other instead of in two processes at once")


def run(args: argparse.Namespace) -> int:
    pops = [p for p in args.populations.split(",") if p] or None
    demo(args.out, scale=args.scale, config=args.config or None, populations=pops, overrides=args.overrides,
         parallel=False if args.sequential else None)
    return 0
