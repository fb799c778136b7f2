"""One replicate of one population of an experiment, stage by stage (configs/demo.py lists the fields).

  1. the experts' games, written as a dataset                       (experts, data.build)
  2. the decoder trained on them (and, with ensemble_vote, one model per expert)   (training)
  3. a round robin of the experts, the unflawed base, the reference players (the experts' vote
     and mixture, the model voting with itself, the ensemble) and the model at each temperature,
     plus head-to-heads of the model at the lowest temperature against every expert   (play)
  4. one order-free Elo scale with bootstrap 95% CIs, and the fidelity differences   (rating)
  5. the paper's state-level measure on held-out positions, Stockfish-valued   (analysis)
Every stage resumes: a rerun skips finished data, training and games. `demo.py` runs the
replicates of every population and reports them.
"""

from __future__ import annotations

import json
import os
import time

import chess
import numpy as np
from ml_collections import ConfigDict

from transcendence_jax.errors import UserError


def _stage(msg: str) -> None:
    print(f"\n== {msg} [{time.strftime('%H:%M:%S')}]", flush=True)


def make_population(cfg: ConfigDict, kind: str):
    """The experts of population `kind`: its overlap from cfg.populations, the rest from cfg;
    cfg.expert_kind "specialist" makes specialists (experts/specialists.py), default "blind"."""
    from transcendence_jax.experts import population as experts
    from transcendence_jax.experts import specialists

    overlap = cfg.populations[kind]  # the shared share of each expert's blind squares: 0 diverse ... 1 clones
    expert_kind = cfg.get("expert_kind", "blind")
    if expert_kind == "specialist":  # overlap: the shared share of each specialist's region
        return specialists.population(cfg.experts, cfg.seed, overlap=overlap, base=cfg.base,
                                      region_fraction=cfg.get("region_fraction", specialists.REGION_FRACTION))
    if expert_kind != "blind":
        raise UserError(f"expert_kind={expert_kind!r}: use blind or specialist")
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
    population = make_population(cfg, kind) if players is None else players
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
    from transcendence_jax import progress

    yield from progress.iterate(items, total, desc=unit, unit=unit.rstrip("s"), mininterval=2.0)


def training_config(cfg: ConfigDict, data_dir: str) -> ConfigDict:
    """The model's training config (cfg.training) on `data_dir`, seeded by cfg.seed."""
    config = ConfigDict(cfg.training.to_dict())
    config.data.path, config.train.seed = data_dir, cfg.seed
    return config


def trains_together(cfg: ConfigDict) -> bool:
    """Whether models of one shape train together in one stacked step (cfg.train_together; "auto":
    on an accelerator, which one small model leaves mostly idle; on a CPU, one process per
    training uses the cores as well: benchmarks/RESULTS.md, stacked replicates)."""
    mode = cfg.get("train_together", "auto")
    if mode == "auto":  # asking starts the backend: in a parent that only spawns, without taking 75% of a GPU
        os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
        import jax

        return jax.default_backend() != "cpu"
    return bool(mode)


def train_models(configs: list, workdirs: list[str], together: bool) -> list:
    """Train (or resume) each config in its workdir, `together` in one stacked step or one after
    another; returns [(model, step)] loaded from each final checkpoint."""
    from transcendence_jax.training.checkpoint import load_model
    from transcendence_jax.training.train import train, train_together

    if together and len(configs) > 1:
        train_together(configs, workdirs)
    else:
        for config, workdir in zip(configs, workdirs):
            train(config, workdir)
    return [load_model(workdir)[::2] for workdir in workdirs]


def train_model(cfg: ConfigDict, data_dir: str, workdir: str):
    return train_models([training_config(cfg, data_dir)], [workdir], together=False)[0]


REFERENCE_PLAYERS = ("vote", "mixture", "game-mixture")  # experts/reference.py; game-mixture: a random expert a game


def reference_player(name: str, population, seed: int):
    """The experts' majority vote, their mixture (a random expert each move) or their mixture per
    game (a random expert plays the whole game: what a perfect sequence model samples at tau 1,
    since the game so far tells it who is moving) as a player."""
    from transcendence_jax.experts import reference
    from transcendence_jax.play.players import PerGamePolicyPlayer, PolicyPlayer

    if name == "game-mixture":
        return PerGamePolicyPlayer(name, population, seed=seed)
    if name not in REFERENCE_PLAYERS:
        raise UserError(f"reference player {name!r}: choose from {', '.join(REFERENCE_PLAYERS)}")
    policy = reference.VotePolicy(population) if name == "vote" else reference.MixturePolicy(population)
    return PolicyPlayer(name, policy, seed=seed)


def train_ensemble(cfg: ConfigDict, kind: str, root: str) -> list:
    """The ensemble-of-agents alternative to one model: a model per expert, each trained (as the
    main model) on that expert's own self-play games only, cfg.games / experts of them."""
    from transcendence_jax.play.players import seed_of

    configs, workdirs = [], []
    for expert in make_population(cfg, kind):
        where = os.path.join(root, expert.name)
        _stage(f"{kind}: ensemble, {expert.name}'s own games")
        member = ConfigDict(cfg.to_dict())  # its own seed: the members' games and weights independent
        member.seed = seed_of(cfg.seed, "ensemble", expert.id) % 2**31
        generate(member, kind, os.path.join(where, "data"), players=[expert, expert],
                 games=max(2, cfg.games // cfg.experts))
        configs.append(training_config(member, os.path.join(where, "data")))
        workdirs.append(os.path.join(where, "train"))
    together = trains_together(cfg)
    _stage(f"{kind}: ensemble, {len(configs)} models" + (" trained together" if together else ""))
    return [model for model, _ in train_models(configs, workdirs, together)]


def tournament(cfg: ConfigDict, kind: str, model, out: str, ensemble=()) -> list[dict]:
    """Round robin of experts, base, the reference players (the experts' vote and mixture, the
    model voting with itself, the ensemble of per-expert models voting) and the model at every
    temperature, plus head-to-heads. Diagnostics: `quiet_random_player`; `support_player` (no
    packaged config sets it: benchmarks/retournament.py does), the model at the highest temperature
    without the moves no expert plays. From the start position, or from cfg.openings (N random plies
    or a .pgn / .epd book: opening k in games 2k and 2k+1 of each pair, colours swapped). Writes
    games.jsonl, games.pgn (players, result, opening) and summary.json (games, distinct games, the
    pairs that repeated games)."""
    from transcendence_jax.experts import population as experts
    from transcendence_jax.play import arena
    from transcendence_jax.play.players import (
        EnsembleVoteBackend,
        EnsembleVotePlayer,
        ModelPlayer,
        ModelVoteBackend,
        ModelVotePlayer,
        PolicyPlayer,
        QuietRandomBackend,
        QuietRandomPlayer,
        SupportBackend,
        SupportPlayer,
        close_players,
    )
    from transcendence_jax.sampling.sampler import Sampler

    population = make_population(cfg, kind)
    players = [PolicyPlayer(e.name, e, seed=cfg.seed) for e in population]
    players.append(PolicyPlayer("base", experts.base_expert(cfg.base), seed=cfg.seed))
    players += [reference_player(name, population, cfg.seed) for name in cfg.get("reference_players", [])]
    # Every game of a backend in flight at once (a cache slot each, up to 4,096): its players' games
    # against every other player of the round robin, once per game, plus the head-to-heads.
    m, v = len(cfg.temperatures), len(cfg.get("model_votes", []))
    q, e = int(bool(cfg.get("quiet_random_player"))), int(bool(ensemble))
    s = int(bool(cfg.get("support_player")))
    total = len(players) + m + v + q + e + s

    def slots(k: int, extra: int = 0) -> int:  # the games of k players sharing one backend
        return min(cfg.games_per_pair * (k * (total - k) + k * (k - 1) // 2) + extra, 4096)

    sampler = Sampler(model, max_games=slots(m, cfg.head_to_head * cfg.experts), legal="mask", seed=cfg.seed)
    models = [ModelPlayer(model_name(t), sampler, t) for t in cfg.temperatures]
    if v:  # their own Sampler: the arena calls each backend from its own thread
        backend = ModelVoteBackend(Sampler(model, max_games=slots(v), legal="mask", seed=cfg.seed + 1),
                                   seed=cfg.seed)
        models += [ModelVotePlayer(vote_name(k, cfg.vote_temperature), backend, k, cfg.vote_temperature)
                   for k in cfg.model_votes]
    if q:  # the model's captures, the experts' random quiet moves
        tau = min(cfg.temperatures)
        backend = QuietRandomBackend(Sampler(model, max_games=slots(1), legal="mask", seed=cfg.seed + 99),
                                     seed=cfg.seed)
        models.append(QuietRandomPlayer(quiet_random_name(tau), backend, tau))
    if s:  # the model at the highest tau without the moves no expert plays
        from transcendence_jax.experts import reference

        backend = SupportBackend(Sampler(model, max_games=slots(1), legal="mask", seed=cfg.seed + 98),
                                 lambda board: set(reference.mixture_distribution(population, board)), seed=cfg.seed)
        models.append(SupportPlayer(support_name(max(cfg.temperatures)), backend, max(cfg.temperatures)))
    if ensemble:  # one Sampler a member, each member sampling its own move at the vote temperature
        members = [Sampler(member, max_games=slots(1), legal="mask", seed=cfg.seed + 2 + i)
                   for i, member in enumerate(ensemble)]
        models.append(EnsembleVotePlayer(f"ensemble-vote@{cfg.vote_temperature:g}",
                                         EnsembleVoteBackend(members, seed=cfg.seed), cfg.vote_temperature))
    assert len(players) + len(models) == total
    pairings = arena.round_robin(players + models, cfg.games_per_pair)
    pairings += [(f"h2h-{gid}", w, b, h) for gid, w, b, h in
                 arena.grid([min(models[:m], key=lambda p: p.temperature)], players[: cfg.experts],
                            cfg.head_to_head)]
    openings = cfg.get("openings")
    try:
        results = arena.play_games(pairings, out_dir=out, max_plies=cfg.max_plies, adjudicate=experts.adjudicate,
                                   seed=cfg.seed, openings=openings)
    finally:
        close_players(players + models)
    summary = tournament_summary(results, openings)
    with open(os.path.join(out, "summary.json"), "w") as f:
        json.dump(summary, f, indent=1)
    _stage(f"{kind}: tournament: {summary['games']} games, {summary['distinct_games']} distinct (openings: "
           f"{summary['openings']}); {out}/games.pgn")
    return results


def tournament_summary(results: list[dict], openings) -> dict:
    """How many games, how many distinct (a deterministic pair from the start position replays one
    game), and the pairs whose games repeated, with their counts."""
    from transcendence_jax.play.openings import distinct_games

    pairs: dict[str, list[dict]] = {}
    for r in results:
        pairs.setdefault(r["game_id"].rsplit("-", 1)[0], []).append(r)
    repeated = {pair: {"games": len(rows), "distinct": distinct_games(rows)} for pair, rows in pairs.items()
                if distinct_games(rows) < len(rows)}
    described = (f"{openings} random plies" if isinstance(openings, int) and openings else
                 str(openings) if openings else "start position")
    return dict(games=len(results), distinct_games=distinct_games(results), openings=described,
                repeated_pairs=repeated)


def model_name(tau: float) -> str:
    return f"model@{tau:g}"


def vote_name(votes: int, tau: float) -> str:
    return f"model-vote{votes}@{tau:g}"


def support_name(tau: float) -> str:
    return f"model-support@{tau:g}"


def quiet_random_name(tau: float) -> str:
    return f"model-quiet-random@{tau:g}"


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
                  "vote minus best expert": ("vote", best), "mixture minus best expert": ("mixture", best),
                  f"{tau_one} minus game-mixture": (tau_one, "game-mixture"),
                  "game-mixture minus best expert": ("game-mixture", best)}
    voters = [n for n in ratings.elo if n.startswith(("model-vote", "ensemble-vote", "model-quiet-random"))]
    references.update({f"{n} minus best expert": (n, best) for n in voters})
    quiet = quiet_random_name(min(cfg.temperatures))
    references[f"{quiet} minus vote"] = (quiet, "vote")
    support = support_name(max(cfg.temperatures))  # what the moves no expert plays cost the model
    references.update({f"{high} minus {support}": (high, support), f"{support} minus game-mixture":
                       (support, "game-mixture")})
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
    reference that tells a measure that cannot see the flaw from a model that did not learn it.
    blind_gains keeps each player's gain at every position where some expert is blind, for the
    demo to pool over seeds."""
    from transcendence_jax import analysis
    from transcendence_jax.experts import population as experts
    from transcendence_jax.experts import reference

    population = make_population(cfg, kind)
    boards = held_out_positions(data_dir, cfg.analysis_positions, cfg.seed)
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
    vote = [reference.vote_distribution(population, b) for b in boards]
    captures = [[m for m in b.legal_moves if b.is_capture(m)] for b in boards]
    with_capture = [s for s, c in enumerate(captures) if c]
    groups = {"blind": blind_S, "none_blind": ~blind_S}

    blind_gains = {}  # per player, its gain at each position where some expert is blind: seeds pool these

    def gain_over_experts(pi, player: str) -> dict:
        gains_S = analysis.state_gains(pi, mixture, values)
        blind_gains[player] = gains_S[blind_S].tolist()
        return analysis.summarize_gains(gains_S, groups=groups, bootstrap=200, seed=cfg.seed)

    out = {"positions": len(boards), "some_expert_blind": float(blind_S.mean()), "values": how,
           "vote_gain_over_experts": gain_over_experts(vote, "vote"),
           "positions_with_a_capture": len(with_capture),
           "mixture_capture_mass": _mean([analysis.mass_on(mixture[s], captures[s]) for s in with_capture]),
           "temperatures": {}}
    for tau in cfg.temperatures:
        pi = [m[tau] for m in model_pi]
        agree_S = np.array([sum(p.get(m, 0.0) for m in best) for p, best in zip(pi, base_sets)])
        out["temperatures"][str(tau)] = {
            "agreement_with_base": float(agree_S.mean()),
            "agreement_where_some_expert_blind": float(agree_S[blind_S].mean()) if blind_S.any() else None,
            # Fidelity as distributions: nats the model loses on the mixture's moves (a perfect
            # imitator: 0 at tau 1), its mass on the vote's moves (1 at tau -> 0), and on captures.
            "kl_from_mixture": _mean([analysis.kl_divergence(q, p) for q, p in zip(mixture, pi)]),
            "mass_on_vote": _mean([analysis.mass_on(p, v) for p, v in zip(pi, vote)]),
            "capture_mass": _mean([analysis.mass_on(pi[s], captures[s]) for s in with_capture]),
            "gain_over_experts": gain_over_experts(pi, model_name(tau))}
    out["blind_gains"] = blind_gains
    return out


def _mean(xs) -> float | None:
    return float(np.mean(xs)) if len(xs) else None


def held_out_positions(data_dir: str, n: int, seed: int) -> list[chess.Board]:
    """Up to `n` positions of the dataset's validation games (one a game, at a random ply past
    the second, not final), each board with its game's moves as its stack."""
    from transcendence_jax.data.build import dataset_files
    from transcendence_jax.data.records import read_records

    rng = np.random.default_rng(seed)
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
        if len(boards) >= n:
            break
    return boards


def _ucis(tokens) -> list[str]:
    from transcendence_jax.data.tokenizer import decode_game

    return [m.uci() for m in decode_game(tokens)[0]]


def replicate_name(kind: str, replicate: int) -> str:
    """The output folder of one replicate: the population's name for the first, `-seedN` after."""
    return kind if replicate == 0 else f"{kind}-seed{replicate}"


def check_settings(root: str, cfg: ConfigDict, kind: str | None = None) -> None:
    """A replicate's folder holds one setting: resuming it with another (more training steps, other
    players, games, population) would rate old games and data as if they were new. Written at the
    first run, compared at every rerun (workers, the number of seeds and train_together may
    change). Without `kind`, the whole config (with every population): a sweep point's folder."""
    free = ("workers", "seeds", "populations", "train_together")
    settings = {k: v for k, v in cfg.to_dict().items() if k not in free}
    if kind is None:
        settings["populations"] = cfg.to_dict().get("populations")
    else:
        settings["overlap"] = cfg.populations[kind]
    settings = json.loads(json.dumps(settings, default=list))
    path = os.path.join(root, "settings.json")
    if os.path.exists(path):
        with open(path) as f:
            old = json.load(f)
        changed = sorted(_differences(old, settings))
        if changed:
            raise UserError(f"{root} holds a run with other settings ({', '.join(changed[:6])}); pass a new "
                            "--out, or delete that folder to rerun it")
    else:
        os.makedirs(root, exist_ok=True)
        with open(path, "w") as f:
            json.dump(settings, f, indent=1)


def _differences(old, new, prefix: str = "") -> list[str]:
    """`key: old -> new` for every leaf that differs between two JSON trees."""
    if isinstance(old, dict) and isinstance(new, dict):
        return [d for k in sorted(set(old) | set(new))
                for d in _differences(old.get(k), new.get(k), f"{prefix}{k}.")]
    return [] if old == new else [f"{prefix.rstrip('.')}: {old!r} -> {new!r}"]


def replicate_config(cfg: ConfigDict, kind: str, out: str, replicate: int) -> tuple[ConfigDict, str]:
    """Replicate r's config (seed cfg.seed + r) and its folder out/<replicate_name>."""
    cfg = ConfigDict(cfg.to_dict())
    cfg.seed += replicate
    return cfg, os.path.join(out, replicate_name(kind, replicate))


def train_replicates(units: list[tuple[ConfigDict, str, str, int]]) -> None:
    """The models of several (cfg, population, out, replicate) units whose data exist
    (run_population until="data"), those that share a shape trained together in one stacked step."""
    from transcendence_jax.training.train import shape_key

    groups: dict[str, list] = {}
    for cfg, kind, out, replicate in units:
        unit_cfg, root = replicate_config(cfg, kind, out, replicate)
        config = training_config(unit_cfg, os.path.join(root, "data"))
        groups.setdefault(shape_key(config), []).append((config, os.path.join(root, "train")))
    for group in groups.values():
        config = group[0][0]
        _stage(f"training {len(group)} models together ({config.train.steps} steps of {config.train.batch_size} games)")
        train_models([c for c, _ in group], [w for _, w in group], together=True)


def run_population(cfg: ConfigDict, kind: str, out: str, replicate: int = 0, until: str | None = None) -> dict | None:
    """One population's whole path: data, training, tournament, ratings, state-level measure
    (until="data": the data only, then None). Replicate r runs it all with seed cfg.seed + r,
    in out/<replicate_name>."""
    start = time.time()
    cfg, root = replicate_config(cfg, kind, out, replicate)
    check_settings(root, cfg, kind)
    _stage(f"{kind}: generating {cfg.games} games of {cfg.experts} experts")
    data_stats = generate(cfg, kind, os.path.join(root, "data"))
    if until == "data":
        return None
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
