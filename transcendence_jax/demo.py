"""`transcendence demo`: an experiment config run end to end (default configs/demo.py, 2 CPU cores).

Every population of the config (demo: diverse and clones, docs/EXPERTS.md) times every seed
replicate runs `experiment.run_population` (data, training, tournament, ratings, state-level
measure), the populations of one replicate in parallel processes. Then one table per
population, the fidelity and state-level lines, one verdict line each (over every seed when
there are several), the figure and results.json, all in --out. Reruns resume.
"""

from __future__ import annotations

import argparse
import json
import os
import time

from ml_collections import ConfigDict

from transcendence_jax.errors import UserError
from transcendence_jax.experiment import (
    model_name,
    replicate_name,
    run_population,
    train_replicates,
    trains_together,
)

SCALES = {"default": "demo", "reduced": "demo_reduced", "gpu": "demo_gpu"}  # --scale -> packaged config


def demo_config(scale: str = "default", config: str | None = None, overrides=()) -> ConfigDict:
    """The experiment's settings: a config file or packaged name (default: the one --scale names),
    with `key=value` overrides (configs/demo.py lists the fields)."""
    from transcendence_jax.config import load_config

    if scale not in SCALES:
        raise UserError(f"unknown demo scale {scale!r}: use default, reduced or gpu")
    return load_config(config or SCALES[scale], overrides)


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


def combine_state_levels(cfg: ConfigDict, replicates: list[dict]) -> dict | None:
    """The state-level gain where some expert is blind, over every replicate: per player (the vote,
    the model at the lowest temperature) each seed's mean, and their mean with a CI that resamples
    the seeds and each one's positions (rating.across_seeds). None with one replicate, for results
    measured before the per-position gains were kept (before dc77f48), or with no such position."""
    import numpy as np

    from transcendence_jax.rating import across_seeds

    if len(replicates) < 2 or any(not r["states"].get("blind_gains", {}).get("vote") for r in replicates):
        return None  # one seed, an old result, or a seed without a position where some expert is blind
    rng, out = np.random.default_rng(cfg.seed), {}
    for player in ("vote", model_name(min(cfg.temperatures))):
        gains = [np.asarray(r["states"]["blind_gains"][player]) for r in replicates]
        samples = [g[rng.integers(0, len(g), (2000, len(g)))].mean(1) for g in gains]
        across = across_seeds([g.mean() for g in gains], samples, seed=cfg.seed)
        out[player] = dict(per_seed=[float(g.mean()) for g in gains], positions=[len(g) for g in gains],
                           across=dict(zip(("mean", "lo", "hi"), across)))
    return out


def state_level_seeds_line(combined: dict) -> str:
    """combine_state_levels' result in one line, each seed's figure beside the pooled one."""
    parts = [f"{player} {c['across']['mean']:+.2f} [{c['across']['lo']:+.2f}, {c['across']['hi']:+.2f}] "
             f"(each: {', '.join(f'{x:+.2f}' for x in c['per_seed'])}; {sum(c['positions'])} positions)"
             for player, c in combined.items()]
    return (f"state-level over {len(next(iter(combined.values()))['per_seed'])} seeds, gain over the experts "
            "where some expert is blind (CI from seeds and positions): " + ", ".join(parts))


def state_level_series(kind: str, states: dict) -> dict[str, list[tuple]]:
    """The figure's second panel: the model's state-level gain at each temperature (95% CI over
    positions), one line per group of positions (some expert blind, none blind)."""
    names = {"blind": "some expert blind", "none_blind": "none blind"}
    return {f"{kind}: {name}": [(float(t), g["mean"], *g["ci95"]) for t, v in states["temperatures"].items()
                                for g in [v["gain_over_experts"].get("groups", {}).get(group)] if g]
            for group, name in names.items()
            if any(group in v["gain_over_experts"].get("groups", {}) for v in states["temperatures"].values())}


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
    line = (f"state-level, {states['positions']} held-out positions ({states['values']} values), gain over the "
            "experts where some expert is blind: " + ", ".join(parts))
    temps = states["temperatures"]
    low_blind = temps[min(temps, key=float)]["gain_over_experts"].get("groups", {}).get("blind") if temps else None
    if low_blind:
        line += (f"; at tau={min(temps, key=float)} the best 10% of those {low_blind['states']} positions carry "
                 f"{low_blind['share_top']:.0%} of the positive gain")
    if "kl_from_mixture" not in next(iter(temps.values()), {}):
        return line  # a results.json written before the distribution measures
    high, low = temps[max(temps, key=float)], temps[min(temps, key=float)]
    return (line + f"\nfidelity as distributions: KL(mixture || model@{max(temps, key=float)}) "
            f"{high['kl_from_mixture']:.3f} nats, mass on captures (where one is on) {high['capture_mass']:.2f} "
            f"against the mixture's {states['mixture_capture_mass']:.2f}; model@{min(temps, key=float)}'s mass "
            f"on the vote's moves {low['mass_on_vote']:.2f}")


def report(cfg: ConfigDict, runs: list[dict], out: str) -> dict:
    """The tables (the first replicate's), fidelity, state-level lines, the verdicts (over every
    replicate when there are several), the figure and results.json."""
    from transcendence_jax.rating import format_table, player_records
    from transcendence_jax.rating_figure import plot_rating_vs_temperature

    tau = min(cfg.temperatures)
    summary = {"config": cfg.to_dict(), "populations": {}}
    series, bands, lines, states, state_lines = {}, {}, {}, {}, {}
    mains = []
    for kind in dict.fromkeys(r["kind"] for r in runs):
        replicates = sorted((r for r in runs if r["kind"] == kind), key=lambda r: r["replicate"])
        r = dict(replicates[0], seeds=combine_seeds(cfg, replicates),
                 states_over_seeds=combine_state_levels(cfg, replicates))
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
        rec = player_records(r["results"])  # games and score behind each point, shown on the figure
        series[r["kind"]] = [(t, ratings.elo[model_name(t)] - zero, *(x - zero for x in ratings.ci[model_name(t)]),
                              rec[model_name(t)]["games"], rec[model_name(t)]["points"] / rec[model_name(t)]["games"])
                             for t in cfg.temperatures]
        bands[f"{r['kind']}: best expert, 95% CI"] = tuple(x - zero for x in ratings.ci[r["best_expert"]])
        lines.update({f"{r['kind']}: {name}": ratings.elo[name] - zero for name in ("vote", "mixture", "game-mixture")
                      if name in ratings.elo})
        states.update(state_level_series(r["kind"], r["states"]))
        vote_blind = r["states"]["vote_gain_over_experts"].get("groups", {}).get("blind")
        if vote_blind:
            state_lines[f"{r['kind']}: vote, some expert blind"] = vote_blind["mean"]
        for label, (d, lo, hi) in r["fidelity"].items():
            print(f"{label}: {d:+.0f} [{lo:+.0f}, {hi:+.0f}]")
        print(state_level_line(r["states"]))
        if r["states_over_seeds"]:
            print(state_level_seeds_line(r["states_over_seeds"]))
        summary["populations"][r["kind"]] = {
            "ratings": json.loads(ratings.to_json()), "best_expert": r["best_expert"],
            "model_minus_best_expert": dict(zip(("diff", "lo", "hi"), r["diff"])),
            "highest_tau_minus_best_expert": dict(zip(("diff", "lo", "hi"), r["diff_high"])),
            "fidelity": {label: dict(zip(("diff", "lo", "hi"), d)) for label, d in r["fidelity"].items()},
            "transcends": r["transcends"], "verdict": verdict(r, tau), "training_step": r["step"],
            "games": len(r["results"]), "seconds": round(r["seconds"], 1), "data": r["data"],
            "state_level": r["states"], "seeds": r["seeds"], "state_level_over_seeds": r["states_over_seeds"],
            # With several seeds, the verdict and model_minus_best_expert are over all of them; the
            # ratings, fidelity and state-level measure above are this seed's (the first replicate).
            "ratings_from_seed": r["seed"]}
    print()
    for r in mains:
        print(verdict(r, tau))
    plot_rating_vs_temperature(series, os.path.join(out, "transcendence.png"), bands=bands, lines=lines,
                               ylabel="Elo minus the population's best expert",
                               title="The model against its experts, by sampling temperature",
                               states=states, state_lines=state_lines,
                               states_title="State-level: gain per position over the experts' average"
                               + (f" (seed {cfg.seed})" if cfg.get("seeds", 1) > 1 else ""))
    with open(os.path.join(out, "results.json"), "w") as f:
        json.dump(summary, f, indent=1, default=float)
    print(f"\nwrote {out}/results.json and {out}/transcendence.png")
    return summary


def _child(function, args: tuple, root: str, cores: list[int] | None, parent: int) -> None:
    """A spawned child: `function(*args)`, its output in root/log.txt, its result (when not None)
    in root/result.pkl. Pinned to its own share of the cores: on 2 cores, two XLA thread pools
    spread over both run each step slower than one core each. It dies with its parent, even a
    killed one, so nothing is left working in the background."""
    import pickle
    import sys
    import traceback

    if sys.platform == "linux":
        import ctypes
        import signal

        ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
        if os.getppid() != parent:  # the parent died before that
            sys.exit(1)
    if cores:
        os.sched_setaffinity(0, cores)
    os.makedirs(root, exist_ok=True)
    with open(os.path.join(root, "log.txt"), "a", buffering=1) as log:
        sys.stdout = sys.stderr = log
        try:
            result = function(*args)
        except UserError as e:
            print(f"error: {e}")
            sys.exit(2)
        except BaseException:
            traceback.print_exc(file=log)
            print(f"error: {os.path.basename(root)} failed: see the traceback above")
            sys.exit(1)
        finally:
            sys.stdout, sys.stderr = sys.__stdout__, sys.__stderr__
        if result is not None:
            with open(os.path.join(root, "result.pkl"), "wb") as f:
                pickle.dump(result, f)


def run_processes(jobs: dict, workers: int, *, on_event=None, tag: bool = False) -> dict[str, int]:
    """Run `jobs` (name -> (function, args, folder)) in spawned processes, at most `workers` at
    once, and return each one's exit code. Most of an experiment is single-threaded Python (expert
    policies, python-chess, the arena), so one process a core uses every core. Prints each job's
    stage lines as they come (after `[name] ` with `tag`) and, every 30 s, its latest progress;
    calls `on_event(name, None)` when a job starts and `on_event(name, exit code)` when it ends."""
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    pending, running, codes, seen = list(jobs), {}, {}, {}
    free, last_status = list(range(workers)), time.time()
    try:
        while pending or running:
            while pending and free:
                name, slot = pending.pop(0), free.pop(0)
                function, args, root = jobs[name]
                for stale in ("result.pkl", "log.txt"):
                    if os.path.exists(os.path.join(root, stale)):
                        os.remove(os.path.join(root, stale))
                share = cores[slot::workers] if len(cores) >= workers else None
                proc = ctx.Process(target=_child, args=(function, args, root, share, os.getpid()))
                proc.start()
                running[name], seen[name] = (proc, slot), 0
                if on_event:
                    on_event(name, None)
            time.sleep(1.0)
            status = time.time() - last_status > 30
            for name, (proc, slot) in list(running.items()):
                ended = not proc.is_alive()
                seen[name] = _echo(name, jobs[name][2], seen[name], status, tag)
                if ended:
                    proc.join()
                    del running[name]
                    free.append(slot)
                    codes[name] = proc.exitcode
                    if on_event:
                        on_event(name, proc.exitcode)
            if status:
                last_status = time.time()
    finally:  # interrupted or failed: no orphans left training in the background
        for proc, _ in running.values():
            if proc.is_alive():
                proc.terminate()
            proc.join()
    return {name: codes[name] for name in jobs}  # in the jobs' order


def _echo(name: str, root: str, offset: int, status: bool, tag: bool) -> int:
    """Print the stage and error lines of root/log.txt past `offset` (and, with `status`, its
    latest line); return the new offset."""
    path = os.path.join(root, "log.txt")
    if not os.path.exists(path):
        return offset
    with open(path, errors="replace") as f:
        text = f.read()
    for line in text[offset:].replace("\r", "\n").splitlines():
        if line.startswith("== ") or line.startswith("error"):
            print(f"[{name}] {line}" if tag else line, flush=True)
    if status:
        tail = [t for t in text.replace("\r", "\n").splitlines() if t.strip()][-1:]
        if tail:
            print(f"   [{name}] {tail[0].strip()[:110]}", flush=True)
    return len(text)


def _run_parallel(cfg: ConfigDict, populations, out: str, replicate: int = 0) -> list[dict]:
    """Every population of one replicate at once, one process each (run_processes)."""
    jobs = {}
    for kind in populations:
        name = replicate_name(kind, replicate)
        jobs[name] = (run_population, (ConfigDict(cfg.to_dict()), kind, out, replicate), os.path.join(out, name))
    return _collect(run_processes(jobs, len(jobs)), out)


def data_then_training(units: list[tuple[ConfigDict, str, str, int]], stages: str, workers: int) -> None:
    """For train_together: every (cfg, population, out, replicate) unit's data first (a process
    each, `workers` at once; 1: in this process), then all their models, those of one shape in
    one stacked training (one process); each unit's run_population then finds its data and
    training done. Logs in `stages`."""
    if workers <= 1:
        for cfg, kind, out, r in units:
            run_population(cfg, kind, out, r, until="data")
        train_replicates(units)
        return
    units = [(ConfigDict(cfg.to_dict()), kind, out, r) for cfg, kind, out, r in units]
    name = lambda out, kind, r: os.path.relpath(os.path.join(out, replicate_name(kind, r)), os.path.dirname(stages))
    data = {f"{name(out, kind, r)}-data": (run_population, (cfg, kind, out, r, "data"),
                                           os.path.join(stages, f"{name(out, kind, r)}-data"))
            for cfg, kind, out, r in units}
    training = {"training": (train_replicates, (units,), os.path.join(stages, "training"))}
    for jobs, at_once in ((data, min(workers, len(data))), (training, 1)):
        for job, code in run_processes(jobs, at_once).items():
            if code != 0:
                raise UserError(f"{job} failed (exit code {code}); its log is "
                                f"{os.path.join(stages, job, 'log.txt')}; rerun the same command to resume")


def _collect(codes: dict, out: str) -> list[dict]:
    import pickle

    runs = []
    for kind, code in codes.items():
        path = os.path.join(out, kind, "result.pkl")
        if code != 0 or not os.path.exists(path):
            raise UserError(f"the {kind} population failed (exit code {code}); its log is "
                            f"{os.path.join(out, kind, 'log.txt')}; rerun the same command to resume")
        with open(path, "rb") as f:
            runs.append(pickle.load(f))
    return runs


def demo(out: str, *, scale: str = "default", config: str | None = None, populations=None, overrides=(),
         parallel: bool | None = None) -> dict:
    """The whole experiment; `populations`: a subset of the config's (default: all of them);
    `parallel` (default: with 2+ cores and 2+ populations) runs them in processes at once."""
    cfg = demo_config(scale, config, overrides)
    if populations is None:  # all of the config's, the most diverse first
        populations = sorted(cfg.populations, key=lambda kind: cfg.populations[kind])
    populations = list(populations)
    unknown = [p for p in populations if p not in cfg.populations]
    if unknown or not populations:
        raise UserError(f"populations {','.join(populations)!r}: choose from {','.join(cfg.populations)} "
                        "(the config's `populations`)")
    if cfg.get("seeds", 1) < 1:
        raise UserError(f"seeds={cfg.seeds}: at least one replicate")
    if isinstance(cfg.get("openings"), str):  # a bad book: one line now, not after data and training
        from transcendence_jax.play.openings import read_openings

        read_openings(cfg.openings)
    os.makedirs(out, exist_ok=True)
    start = time.time()
    if parallel is None:
        parallel = len(populations) > 1 and (os.cpu_count() or 1) >= 2
    if parallel:
        cfg.workers = max(1, cfg.workers // len(populations))
    units = [(kind, r) for r in range(cfg.get("seeds", 1)) for kind in populations]
    if len(units) > 1 and trains_together(cfg):
        data_then_training([(cfg, kind, out, r) for kind, r in units], os.path.join(out, "stages"),
                           (os.cpu_count() or 1) if parallel else 1)
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
                         "(default: the one --scale names: demo, demo_reduced or demo_gpu)",
                         example="seeds=3 or --config.training.train.steps=1000")
    parser.add_argument("--populations", default="",
                        help="comma-separated subset of the config's populations (default: all; demo: diverse,clones)")
    parser.add_argument("--sequential", action="store_true",
                        help="run the populations one after the other instead of in two processes at once")


def run(args: argparse.Namespace) -> int:
    pops = [p for p in args.populations.split(",") if p] or None
    demo(args.out, scale=args.scale, config=args.config or None, populations=pops, overrides=args.overrides,
         parallel=False if args.sequential else None)
    return 0
