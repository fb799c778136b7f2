"""`transcendence eval`: the model at each temperature against Stockfish, then ratings.

Plays the grid (temperatures x opponents, N games each, colours alternating) with every game
in flight at once: one sampler call per ply for all games waiting on the model while the engine
pool answers the others. Rates the model two ways: the paper's Glicko-2 (Stockfish levels fixed
at their anchors, one temperature's games pooled in sequence; +-RD is not a CI) and the
order-free Bradley-Terry Elo with bootstrap 95% CIs that we report. Writes games.pgn,
games.jsonl, model_stats.jsonl (per game: the model's moves and how many of its free draws were
illegal), ratings.json and rating_vs_temperature.png to the output directory; rerunning with the
same output directory resumes and plays only the unfinished games. The Elo per temperature also
goes to TensorBoard (eval/elo/tau_T at the checkpoint's step; `transcendence eval` writes into
the workdir's tensorboard/, beside the training curves).

Openings: the start position, N random plies, or a .pgn / .epd opening book (play/openings.py),
each opening played twice per (temperature, opponent), colours swapped. A model at tau 0.001
against a deterministic opponent plays one game per colour from the start position however many
are asked for: the summary counts the distinct games.

Two illegal-move rates: "illegal" counts real illegal tries (the paper protocol's resampled
draws; always 0 in mask mode, where the model only plays legal moves), and "unmasked illegal"
is the share of the model's moves whose free draw (no mask) would have been illegal.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time

from transcendence_jax import jsonl, rating, rating_figure, workdir_lock
from transcendence_jax.errors import UserError
from transcendence_jax.play.arena import grid, play_games
from transcendence_jax.play.engines import EnginePool, parse_engine_spec
from transcendence_jax.play.openings import distinct_games, read_openings

DEFAULT_TEMPERATURES = (0.001, 0.01, 0.1, 0.3, 0.5, 0.75, 1.0, 1.5)
DEFAULT_OPPONENTS = ("sf1", "sf3", "sf5")


def paper_anchors(opponents) -> dict[str, float]:
    """The paper's fixed ratings of the Stockfish levels among `opponents` (sfN or sfN@T)."""
    anchors = {}
    for o in opponents:
        if o.startswith("sf") and o[2:].split("@")[0].isdigit():
            level = int(o[2:].split("@")[0])
            if level in rating.PAPER_STOCKFISH_ELO:
                anchors[o] = rating.PAPER_STOCKFISH_ELO[level]
    return anchors


class TimedBackend:
    """Wraps a backend to measure the wall time spent inside it (the model's share of eval);
    `on_release(game_id)` runs when the arena releases a finished game."""

    def __init__(self, backend, on_release=None):
        self.inner, self.seconds, self.calls, self.on_release = backend, 0.0, 0, on_release
        self.intervals: list[tuple[float, float]] = []  # (start, end) of each call

    def choose(self, requests):
        t = time.perf_counter()
        try:
            return self.inner.choose(requests)
        finally:
            end = time.perf_counter()
            self.seconds += end - t
            self.calls += 1
            self.intervals.append((t, end))

    def release(self, game_id):
        if self.on_release is not None:
            self.on_release(game_id)
        if hasattr(self.inner, "release"):
            self.inner.release(game_id)

    def close(self):
        self.inner.close()


def _check_settings(out_dir: str, settings: dict) -> None:
    """An output directory holds games of one setting; resuming with another would mix them."""
    path = os.path.join(out_dir, "eval_settings.json")
    if os.path.exists(path):
        with open(path) as f:
            old = json.load(f)
        changed = {k: (old.get(k), v) for k, v in settings.items() if old.get(k) != v}
        if changed:
            what = ", ".join(f"{k}: {a!r} -> {b!r}" for k, (a, b) in changed.items())
            raise UserError(f"{out_dir} holds games played with other settings ({what}); "
                            "pass a new --out or delete that directory")
    os.makedirs(out_dir, exist_ok=True)
    with open(path, "w") as f:
        json.dump(settings, f, indent=2)


def _record_model_stats(out_dir: str, sampler, game_id: str) -> None:
    """Append a finished game's sampler counts (the arena releases a game once it is recorded)."""
    row = dict(game_id=game_id, model_moves=sampler.sampled.get(game_id, 0),
               unmasked_illegal=sampler.unmasked_illegal.get(game_id, 0))
    jsonl.append(os.path.join(out_dir, "model_stats.jsonl"), [row])


def _load_model_stats(out_dir: str) -> dict[str, dict]:
    """Each recorded game's sampler counts (a torn last line, from a crash mid-write, is dropped)."""
    return {row["game_id"]: row for row in jsonl.read(os.path.join(out_dir, "model_stats.jsonl"), repair=True)}


def model_name(temperature: float) -> str:
    return f"model@{temperature:g}"


def _check_temperatures(temperatures) -> None:
    """Before any game starts: the sampler would refuse a bad one mid-eval."""
    from transcendence_jax.sampling.temperature import check_temperature

    try:
        for t in temperatures:
            check_temperature(t)
    except ValueError:
        raise UserError(f"temperatures {', '.join(f'{t:g}' for t in temperatures)}: "
                        "each must be a number >= 0") from None


def _check_game_length(max_plies: int, openings) -> None:
    """Each side must get a move after the opening plies (max_plies counts them): else the
    model's games end before it plays and are rated all the same. openings: N random plies or a
    book (its longest opening counts)."""
    plies = openings if isinstance(openings, int) else max(len(b.move_stack) for b in openings)
    if plies < 0 or max_plies < plies + 2:
        what = f"--openings {openings}" if isinstance(openings, int) else f"an opening of {plies} plies in the book"
        raise UserError(f"--max-plies {max_plies} with {what}: the model would not play; use --openings >= 0 and "
                        "--max-plies >= the opening's plies + 2 (the cap counts the opening plies)")


def parse_openings(value):
    """--openings: an int (random plies) or a .pgn / .epd book path, as (what play_games takes, what
    eval_settings.json records: the plies, or the book's name and content hash)."""
    if isinstance(value, int) or (isinstance(value, str) and value.lstrip("-").isdigit()):
        return int(value), int(value)
    if isinstance(value, (str, os.PathLike)):
        book = read_openings(value)
        with open(value, "rb") as f:
            digest = hashlib.sha256(f.read()).hexdigest()[:16]
        return book, f"{os.path.basename(os.fspath(value))} ({len(book)} openings, sha256 {digest})"
    book = list(value)  # a list of openings (FENs, move lists, boards)
    return book, f"{len(book)} openings given"


def _check_out_dir(out_dir: str) -> None:
    """The output directory, or the nearest folder above it that exists, must be a directory this
    process can write: checked before the checkpoint loads, so a bad --out fails at once."""
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise UserError(f"--out {out_dir} is a file: pass a directory (eval writes games.pgn, ratings.json... "
                        "into it)")
    folder = os.path.abspath(out_dir)
    while not os.path.exists(folder):
        folder = os.path.dirname(folder)
    if not os.path.isdir(folder):
        raise UserError(f"--out {out_dir}: {folder} is a file, not a directory; pass a path under a directory")
    try:
        tempfile.TemporaryFile(dir=folder).close()
    except OSError as e:
        raise UserError(f"--out {out_dir}: cannot write in {folder} ({e.strerror}); pass a writable --out") from None


def evaluate(model, *, out_dir: str, step: int | None = None, temperatures=DEFAULT_TEMPERATURES,
             opponents=DEFAULT_OPPONENTS, games: int = 100, max_plies: int = 178, legal: str = "mask",
             openings=0, seed: int = 0, stockfish: str | None = None, engines: int | None = None,
             max_games: int = 256, bootstrap: int = 500, progress: bool = True,
             tensorboard: str | None = None) -> dict:
    """Play and rate the grid; returns the summary written to out_dir/ratings.json.

    openings: N random plies, a .pgn / .epd book path, or a list of openings (FENs, move lists,
    boards); a book's opening k starts games 2k and 2k+1 of each (temperature, opponent).
    tensorboard: a TensorBoard log directory (e.g. the model's workdir/tensorboard) that gets the
    Elo per temperature as eval/elo/tau_T at `step`."""
    from transcendence_jax.play.players import ModelPlayer
    from transcendence_jax.sampling.sampler import Sampler

    step = getattr(model, "checkpoint_step", None) if step is None else step  # load_model's models carry it
    temperatures, opponents = [float(t) for t in temperatures], list(opponents)
    _check_temperatures(temperatures)
    openings, openings_setting = parse_openings(openings)
    _check_game_length(max_plies, openings)
    if not temperatures or not opponents or games < 1:
        raise UserError("eval needs at least one temperature, one opponent and --games >= 1")
    if max_games < 1 or (engines is not None and engines < 1):
        raise UserError(f"--max-games {max_games} and --engines {engines}: each must be at least 1")
    _check_settings(out_dir, dict(step=step, max_plies=max_plies, legal=legal, openings=openings_setting, seed=seed))
    _load_model_stats(out_dir)  # reading repairs a torn last row before this run appends to the file
    pool = EnginePool(stockfish, workers=engines)
    sampler = None
    try:
        opp_players = [parse_engine_spec(o, pool=pool) for o in opponents]
        n_model = len(temperatures) * len(opponents) * games
        sampler = Sampler(model, max_games=min(max_games, n_model), max_len=max_plies + 1, legal=legal, seed=seed)
        timed = TimedBackend(sampler, on_release=lambda gid: _record_model_stats(out_dir, sampler, gid))
        models = [ModelPlayer(model_name(t), sampler, t) for t in temperatures]
        for m in models:
            m.backend = timed  # still one backend: all temperatures in one sampler call a ply
        pairings = grid(models, opp_players, games, headers={"CheckpointStep": step, "Legal": legal})
        t0 = time.perf_counter()
        results = play_games(pairings, out_dir=out_dir, max_plies=max_plies, openings=openings or None,
                             seed=seed, progress=progress, max_active=min(max_games, n_model))
        wall = time.perf_counter() - t0
    finally:
        if sampler is not None:
            sampler.close()
        pool.close()
    wanted = {p[0] for p in pairings}
    results = [r for r in results if r["game_id"] in wanted]
    summary = rate(results, temperatures, opponents, out_dir=out_dir, legal=legal, bootstrap=bootstrap,
                   seed=seed)
    summary.update(step=step, legal=legal, max_plies=max_plies, games_per_pair=games, openings=openings_setting,
                   wall_seconds=wall, model_seconds=timed.seconds, model_calls=timed.calls,
                   model_time_share=timed.seconds / wall if wall > 0 else None, engine_restarts=pool.restarts)
    with open(os.path.join(out_dir, "ratings.json"), "w") as f:
        json.dump(summary, f, indent=2)
    if tensorboard:
        write_elo_scalars(tensorboard, step or 0, summary["temperatures"])
    return summary


def write_elo_scalars(logdir: str, step: int, rows: list[dict]) -> None:
    """Each temperature's Elo (and its CI bounds, and the paper's Glicko-2) as TensorBoard scalars at the
    checkpoint's step: one curve per temperature over a run's checkpoints."""
    from transcendence_jax.training.metrics import write_scalars

    scalars = {}
    for r in rows:
        t = f"tau_{r['temperature']:g}"
        scalars[f"eval/elo/{t}"] = r.get("elo")
        if r.get("elo_ci95"):
            scalars[f"eval/elo_ci95_low/{t}"], scalars[f"eval/elo_ci95_high/{t}"] = r["elo_ci95"]
        scalars[f"eval/glicko2/{t}"] = r.get("glicko2")
        scalars[f"eval/score/{t}"] = r.get("score")
    write_scalars(logdir, step, scalars)


def rate(results: list[dict], temperatures, opponents, *, out_dir: str, legal: str = "mask",
         bootstrap: int = 500, seed: int = 0) -> dict:
    """Ratings per temperature (paper Glicko-2 and MLE Elo), the printed tables, and the plot."""
    anchors = paper_anchors(opponents)
    elo = rating.elo_mle([(r["white"], r["black"], r["score_white"]) for r in results],
                         anchor=anchors or list(opponents), bootstrap=bootstrap, seed=seed)
    names = [model_name(t) for t in temperatures]
    stats = _load_model_stats(out_dir)
    rows, elo_pts, glicko_pts = [], [], []
    for t, name in zip(temperatures, names):
        mine = [r for r in results if name in (r["white"], r["black"])]
        rec = rating.player_records(mine).get(name, {})
        row = dict(temperature=t, player=name, games=len(mine), win=rec.get("win", 0), draw=rec.get("draw", 0),
                   loss=rec.get("loss", 0), illegal=rec.get("illegal", 0), moves=rec.get("moves", 0),
                   distinct_games=distinct_games(mine), score=rec["points"] / rec["games"] if rec else None)
        # illegal draws / all draws: mask draws once a move (freely, beside the masked draw);
        # paper draws again after each illegal draw.
        draws = row["moves"] + (row["illegal"] if legal == "paper" else 0)
        row["illegal_rate"] = row["illegal"] / draws if draws else None
        counted = [stats[r["game_id"]] for r in mine if r["game_id"] in stats]
        free_moves = sum(c["model_moves"] for c in counted)
        row["unmasked_illegal"] = sum(c["unmasked_illegal"] for c in counted)
        row["unmasked_illegal_rate"] = row["unmasked_illegal"] / free_moves if free_moves else None
        if name in elo.elo:
            row["elo"], row["elo_ci95"] = elo.elo[name], list(elo.ci[name])
            if row["score"] in (0.0, 1.0):  # no finite maximum-likelihood Elo: the value is the fit's prior
                row["elo_ci95"] = None
                row["warning"] = (f"{row['score']:.0%} score in {row['games']} games: Elo unbounded "
                                  f"{'above' if row['score'] else 'below'}, no finite CI")
            elo_pts.append((t, elo.elo[name], *elo.ci[name], row["games"], row["score"]))
        if anchors:
            g = rating.glicko2_paper([(r["white"], r["black"], r["score_white"]) for r in mine], anchors).get(name)
            if g is not None:
                row["glicko2"], row["glicko2_rd"] = g.rating, g.rd
                glicko_pts.append((t, g.rating, g.rating - g.rd, g.rating + g.rd, row["games"]))
        rows.append(row)
    series = {"Elo, MLE (95% CI)": elo_pts}
    if glicko_pts:
        series["Glicko-2 as the paper (+-RD)"] = glicko_pts
    plot = rating_figure.plot_rating_vs_temperature(series, os.path.join(out_dir, "rating_vs_temperature.png"),
                                             title="Model rating against temperature")
    return dict(anchors=anchors or f"mean of {', '.join(opponents)} = 0", temperatures=rows,
                games=len(results), distinct_games=distinct_games(results),
                elo=elo.to_dict(), table=format_table(rows), plot=plot)


def format_table(rows: list[dict]) -> str:
    """One line per temperature: games (distinct among them), W/D/L, illegal-move rate (real tries),
    unmasked illegal rate (free draws that would have been illegal), Elo with 95% CI (none for a
    perfect or zero score), paper Glicko-2."""
    head = ["tau", "games", "distinct", "W/D/L", "illegal", "unmasked illegal", "Elo", "95% CI", "Glicko-2 +-RD"]
    pct = lambda x: "-" if x is None else f"{100 * x:.2f}%"
    lines = [head]
    for r in rows:
        ci = "[{:.0f}, {:.0f}]".format(*r["elo_ci95"]) if r.get("elo_ci95") else "-"
        if r.get("warning"):
            ci = "unbounded " + ("above" if r["score"] else "below")
        lines.append([f"{r['temperature']:g}", str(r["games"]), str(r.get("distinct_games", "-")),
                      f"{r['win']}/{r['draw']}/{r['loss']}",
                      pct(r["illegal_rate"]), pct(r.get("unmasked_illegal_rate")),
                      f"{r['elo']:.0f}" if "elo" in r else "-", ci,
                      f"{r['glicko2']:.0f} +-{r['glicko2_rd']:.0f}" if "glicko2" in r else "-"])
    widths = [max(len(line[c]) for line in lines) for c in range(len(head))]
    text = ["  ".join(cell.rjust(w) for cell, w in zip(line, widths)) for line in lines]
    text.insert(1, "-" * len(text[0]))
    return "\n".join(text)


def add_arguments(parser) -> None:
    parser.add_argument("--workdir", required=True,
                        help="a `transcendence train` workdir, an experiment folder (its train/), or pretrained:NAME")
    parser.add_argument("--step", type=int, default=None, help="checkpoint step (default: latest)")
    parser.add_argument("--temperatures", default=",".join(f"{t:g}" for t in DEFAULT_TEMPERATURES))
    parser.add_argument("--opponents", default=",".join(DEFAULT_OPPONENTS),
                        help="opponents separated by commas: sfN (skill N, depth N+1: the paper's pick "
                             "rule, machine-independent), sfN@0.1s (the paper's clock), or key=value pairs "
                             "among skill, nodes, depth, movetime; a key=value joins the key=value spec before "
                             "it unless that spec has the key (sf1,skill=5,depth=8,nodes=50,nodes=100: three "
                             "opponents); ';' always separates")
    parser.add_argument("--games", type=int, default=100, help="games per (temperature, opponent)")
    parser.add_argument("--max-plies", type=int, default=178, help="cap, scored a draw (the paper's 89 moves)")
    parser.add_argument("--legal", choices=("mask", "paper"), default="mask",
                        help="mask: sample among legal moves; paper: resample illegal moves, 5 tries then forfeit")
    parser.add_argument("--openings", default="0",
                        help="N random plies before each game (0: the start position), or an opening book: a .pgn "
                             "(each game's moves) or .epd (one position a line) file, each opening played twice "
                             "per temperature and opponent with colours swapped (--games 2 x the book's size "
                             "plays it all once)")
    parser.add_argument("--tensorboard", default=None,
                        help="TensorBoard log directory for the Elo per temperature at the checkpoint's step "
                             "(default WORKDIR/tensorboard, beside the training curves; 'none' to skip)")
    parser.add_argument("--out", default=None, help="output directory (default WORKDIR/eval)")
    parser.add_argument("--stockfish", default=None, help="engine binary (default: STOCKFISH_PATH, PATH, /usr/games)")
    parser.add_argument("--engines", type=int, default=None, help="engine processes (default: CPU count)")
    parser.add_argument("--max-games", type=int, default=256, help="model games in flight (KV cache slots)")
    parser.add_argument("--bootstrap", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)


def _split(text: str, sep: str) -> list[str]:
    return [s.strip() for s in text.split(sep) if s.strip()]


def split_opponents(text: str) -> list[str]:
    """--opponents as specs: `sf1,nodes=50` is two, `skill=5,depth=8` one (a key=value part joins
    the key=value spec before it unless that spec has the key; sfN always starts a new spec),
    `nodes=50,nodes=100` two; ';' always separates."""
    specs: list[list[str]] = []  # each spec's parts
    for group in _split(text, ";"):
        for i, part in enumerate(_split(group, ",")):
            before = specs[-1] if i else None  # the spec before, in this group
            key = part.partition("=")[0]
            if (before and "=" in before[0] and "=" in part and not part.startswith("sf")
                    and key not in {p.partition("=")[0] for p in before}):
                before.append(part)
            else:
                specs.append([part])
    return [",".join(parts) for parts in specs]


def run(args) -> int:
    from transcendence_jax.training.checkpoint import load_model
    from transcendence_jax.training.locate import PRETRAINED, resolve_workdir

    pretrained = args.workdir.startswith(PRETRAINED)
    if not pretrained and not os.path.isdir(args.workdir):
        what = "is a file" if os.path.exists(args.workdir) else "not found"
        raise UserError(f"workdir {args.workdir} {what}; pass the --workdir of a `transcendence train` run")
    if pretrained and not args.out:
        raise UserError(f"--workdir {args.workdir} is a model shipped in the package: pass --out DIR for the results")
    try:
        temperatures = [float(t) for t in _split(args.temperatures, ",")]
    except ValueError:
        raise UserError(f"--temperatures {args.temperatures!r}: give numbers separated by commas") from None
    _check_temperatures(temperatures)  # before loading the checkpoint
    openings, _ = parse_openings(args.openings)  # a bad book fails before the checkpoint loads
    _check_game_length(args.max_plies, openings)
    if args.out:
        _check_out_dir(args.out)
    workdir = args.workdir if pretrained else resolve_workdir(args.workdir)  # an experiment folder: its train/
    out = args.out or os.path.join(workdir, "eval")
    if not args.out:
        _check_out_dir(out)
    opponents = split_opponents(args.opponents)
    model, _, step = load_model(workdir, args.step)
    tensorboard = args.tensorboard or ("none" if pretrained else os.path.join(workdir, "tensorboard"))
    tensorboard = None if tensorboard.lower() == "none" else tensorboard
    with workdir_lock.hold(out, "eval", "--out"):  # one eval at a time per output directory
        summary = evaluate(model, out_dir=out, step=step, temperatures=temperatures, opponents=opponents,
                           games=args.games, max_plies=args.max_plies, legal=args.legal, openings=args.openings,
                           seed=args.seed, stockfish=args.stockfish, engines=args.engines,
                           max_games=args.max_games, bootstrap=args.bootstrap, tensorboard=tensorboard)
    print(summary["table"])
    print(f"checkpoint step {step}; anchors: {summary['anchors']}")
    print(f"{summary['games']} model games, {summary['distinct_games']} distinct (openings: {summary['openings']}), "
          f"in {summary['wall_seconds']:.1f}s ({100 * (summary['model_time_share'] or 0):.1f}% in the model); "
          f"results in {out}/ (games.pgn, games.jsonl, ratings.json, rating_vs_temperature.png)"
          + (f"; Elo per temperature in {tensorboard}" if tensorboard else ""))
    return 0
