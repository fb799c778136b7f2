"""The source of notebooks/*.ipynb: writes them with nbformat, without outputs, with stable cell ids.

Edit the cells here and regenerate (`.venv/bin/python notebooks/make_notebooks.py`), so the
committed notebooks stay stripped and diffs stay readable; tests/test_notebooks.py runs them.
"""

import pathlib
import sys

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

OUT = pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else pathlib.Path(__file__).resolve().parent

# The repository, set here once: every notebook's "Open in Colab" badge and its install cell use it.
GITHUB = "transcendence-jax/transcendence-jax"  # owner/name on GitHub
BRANCH = "main"
REPO_URL = f"git+https://github.com/{GITHUB}.git"

# The quickstart's default ("quick"): the demo config with a 2-layer model and a smaller tournament.
# Training steps are what the verdict needs (the 4-layer model at 300 and 450 steps stayed level
# with the best expert); a 2-layer model takes them faster and transcends as well at 600 steps.
QUICK = ["games=5000", "training.model.num_layers=2", "temperatures=[0.001,1.0]", "reference_players=[]",
         "model_votes=[]", "games_per_pair=10", "head_to_head=100", "analysis_positions=20"]


def md(text):
    return new_markdown_cell(text.strip("\n"))


def code(text, tags=()):
    cell = new_code_cell(text.strip("\n"))
    if tags:
        cell.metadata["tags"] = list(tags)
    return cell


def write(name, cells):
    nb = new_notebook(cells=cells, metadata={
        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
        "language_info": {"name": "python"},
        "accelerator": "TPU" if name == "quickstart" else "None",
        "colab": {"provenance": []},
    })
    for i, cell in enumerate(nb.cells):  # stable ids, so regenerating gives the same file
        cell["id"] = f"{name}-{i:02d}"
    nbformat.validate(nb)
    path = OUT / f"{name}.ipynb"
    nbformat.write(nb, path)
    print("wrote", path)


def shell_override(override: str) -> str:
    """A config override as a shell argument (a list value quoted: brackets are glob characters)."""
    key, value = override.split("=", 1)
    return f"--config.{key}='{value}'" if "[" in value else f"--config.{override}"


def badge(name: str) -> str:
    """The "Open in Colab" badge of notebooks/<name>.ipynb on GitHub."""
    url = f"https://colab.research.google.com/github/{GITHUB}/blob/{BRANCH}/notebooks/{name}.ipynb"
    return f"[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]({url})"


def install(stockfish: bool = False):
    """Every notebook's first code cell: installs what the notebook needs where it is missing."""
    text = INSTALL.replace("@REPO_URL@", REPO_URL)
    return code(text if stockfish else text.split("# Stockfish")[0] + INSTALLED)


INSTALLED = '''print(f"Colab: {IN_COLAB}, TPU: {ON_TPU}, transcendence_jax: installed")
'''

INSTALL = r'''
# Install: nothing to do where transcendence_jax is importable (a local checkout with `make setup`);
# elsewhere (Colab), pip-install it from the git repository (with the TPU extra on a TPU runtime).
import glob, importlib.metadata, importlib.util, os, shutil, subprocess, sys

REPO_URL = os.environ.get("TJ_REPO_URL", "@REPO_URL@")

IN_COLAB = "google.colab" in sys.modules
ON_TPU = bool(os.environ.get("COLAB_TPU_ADDR") or os.environ.get("TPU_ACCELERATOR_TYPE")
              or glob.glob("/dev/accel*") or glob.glob("/dev/vfio/[0-9]*"))
if importlib.util.find_spec("transcendence_jax") is None:
    package = f"transcendence-jax{'[tpu]' if ON_TPU else ''} @ {REPO_URL}"
    print("installing", package)
    loaded = {m: importlib.metadata.version(m) for m in ("jax", "jaxlib", "numpy") if m in sys.modules}
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", package], check=True)
    importlib.invalidate_caches()
    stale = [m for m, v in loaded.items() if importlib.metadata.version(m) != v]
    if stale:  # pip replaced modules this kernel had already imported
        raise SystemExit(f"installed, but {', '.join(stale)} changed version under this kernel: "
                         "restart the runtime (Runtime > Restart session) and run all cells again")
# Stockfish, for the games against it: apt-get on Colab.
STOCKFISH = shutil.which("stockfish") or ("/usr/games/stockfish" if os.path.exists("/usr/games/stockfish") else None)
if STOCKFISH is None and IN_COLAB:
    subprocess.run("apt-get -qq update && apt-get -qq install -y stockfish", shell=True, check=True)
    STOCKFISH = "/usr/games/stockfish"
print(f"Colab: {IN_COLAB}, TPU: {ON_TPU}, Stockfish: {STOCKFISH or 'not found (only the Stockfish cell needs it)'}")
'''


def quickstart():
    return [
        md(f'''
# transcendence-jax quickstart

{badge("quickstart")}

*Transcendence* (Zhang et al., 2024): a generative model trained on the games of many imperfect
experts learns the **mixture** of their policies, and sampled at **low temperature** it plays the
mixture's arg-max, an implicit majority vote that cancels each expert's own errors. It can then be
rated above every expert it learned from, provided the experts' errors are **diverse**.

This notebook runs the project's demo: for two populations of synthetic experts (*diverse*: each
expert blind to captures on its own squares; *clones*: all blind on the same squares), it
generates their games, trains a small decoder on them, plays a tournament of the experts, the
unflawed base policy and the model at several temperatures, and rates everyone on one Elo scale.
Then it shows the library API on the trained model.

It runs unchanged on a local CPU, a Colab CPU runtime and a Colab TPU runtime. The first cell
installs the package (and Stockfish) where they are missing.
'''),
        install(stockfish=True),
        md(f'''
## Parameters

`SCALE = "quick"` (the default) is the demo config with less of everything but training steps
(`QUICK_OVERRIDES` below: 5,000 expert games, a 2-layer model, two temperatures, 10 games a pair
plus 100 head-to-head games with each expert, no reference players). It takes about 6 minutes for both
populations on 2 CPU cores, 5 of them training (5 min 50 s on this project's shared 2-core machine,
2026-12-06, with the model's former tied output head), and gave the experiment's verdict then:
*diverse* transcended (the model at tau 0.001 +91 [+47, +136] Elo above the best expert) and
*clones* did not (-177 [-238, -123]). Fewer training steps did not: the demo's 4-layer model at 300
and 450 steps stayed level with the best expert (-33 [-77, +13], +20 [-31, +67]; at 600 steps, +46
[+1, +91]). Not re-measured with the board head (`model.board_head`, on since) nor with the demo's
experts of now (`mvv-lva-quiet`: they never play a capture they cannot see); the README's demo has
the current figures. From a shell:
`transcendence demo --out runs/quick {" ".join(shell_override(o) for o in QUICK)}`.
`SCALE = "default"` is the whole experiment of the README (10k expert games per population, 600
training steps, the reference players, 40 games a pair and 100 head-to-head games; about 8 minutes
on 2 CPU cores; faster on a TPU). `SCALE = "reduced"` is the test suite's smoke test: every stage
in a minute, a model barely trained, ratings that mean nothing. From a shell:
`transcendence demo --out runs/demo` (default), with `--config.KEY=VALUE` for each override. Each
value can also come from an environment variable (the test suite uses them to run the smallest size).
'''),
        code(r'''
import os

SCALE = os.environ.get("TJ_SCALE", "quick")                                # "quick" | "default" | "reduced"
# What "quick" changes in the demo config (configs/demo.py lists every field).
QUICK_OVERRIDES = @QUICK@
POPULATIONS = os.environ.get("TJ_POPULATIONS", "diverse,clones").split(",")  # subset of diverse,clones
# More demo config overrides, e.g. "games=2000;games_per_pair=10".
OVERRIDES = [s for s in os.environ.get("TJ_OVERRIDES", "").split(";") if s]
OUT = os.environ.get("TJ_OUT", "runs/quickstart")                         # reruns resume from here
STOCKFISH_GAMES = int(os.environ.get("TJ_STOCKFISH_GAMES", "2"))          # model vs Stockfish games in the API section
'''.replace("@QUICK@", "[\n    " + ",\n    ".join(map(repr, QUICK)) + ",\n]"), tags=("parameters",)),
        code(r'''
import jax
import transcendence_jax as tj

print("transcendence_jax", tj.__version__, "| jax", jax.__version__, "| devices:", jax.devices())
'''),
        md('''
## The demo

One call runs every stage for each population and writes `results.json`, the games (PGN and JSONL),
the training workdir and the figure under `OUT`. It prints progress, a ratings table per population
and a verdict line: does the model at the lowest temperature beat the best expert, with the 95% CI
of the difference?
'''),
        code(r'''
scale, overrides = ("default", QUICK_OVERRIDES + OVERRIDES) if SCALE == "quick" else (SCALE, OVERRIDES)
summary = tj.run_demo(OUT, scale=scale, populations=POPULATIONS, overrides=overrides)
'''),
        md('''
## Ratings

Elo by maximum likelihood (Bradley-Terry, draws count half), the experts' mean anchored at 0, with
bootstrap 95% confidence intervals. `model@0.001` is the model sampled at temperature 0.001 (its
arg-max), `base` the experts' shared policy without any flaw.
'''),
        code(r'''
from IPython.display import Image, Markdown, display

for kind, pop in summary["populations"].items():
    rows = sorted(pop["ratings"]["players"].items(), key=lambda kv: -kv[1]["elo"])
    table = ["| player | Elo | 95% CI | games |", "| --- | ---: | ---: | ---: |"]
    table += [f"| {name} | {r['elo']:+.0f} | [{r['ci95'][0]:+.0f}, {r['ci95'][1]:+.0f}] | {r['games']} |"
              for name, r in rows]
    display(Markdown(f"### {kind}\n\n" + "\n".join(table) + f"\n\n**{pop['verdict']}**"))
'''),
        code(r'''
display(Image(filename=os.path.join(OUT, "transcendence.png")))
'''),
        md('''
## The library API

Everything the demo did is available from `import transcendence_jax as tj`. Load the trained model
from its workdir, and sample moves for a batch of positions (each board's move stack is the prompt)
at two temperatures: near 0 the model plays its arg-max, at 1 it samples its learned distribution.
'''),
        code(r'''
import glob
import itertools

import chess
import numpy as np

workdir = os.path.join(OUT, POPULATIONS[0], "train")
model, config, step = tj.load_model(workdir)
print(f"loaded {workdir} at step {step}; data: {config.data.path}")

# A batch of positions: validation games of the experts, cut at random plies.
rng = np.random.default_rng(0)
validation = sorted(glob.glob(os.path.join(config.data.path, "validation-*.array_record")))
games = itertools.islice(tj.read_records(validation), 8)
boards = []
for rec in games:
    moves, _ = tj.decode_game(rec.tokens)
    board = chess.Board()
    for move in moves[: int(rng.integers(1, len(moves)))]:
        board.push(move)
    boards.append(board)
'''),
        code(r'''
key_cold, key_hot = jax.random.split(jax.random.key(0))
cold = tj.sample_moves(model, boards, temperatures=[0.001] * len(boards), key=key_cold)
hot = tj.sample_moves(model, boards, temperatures=[1.0] * len(boards), key=key_hot)

table = ["| position (FEN) | ply | tau = 0.001 | tau = 1.0 |", "| --- | ---: | --- | --- |"]
table += [f"| `{b.fen()}` | {b.ply()} | {b.san(c)} | {b.san(h)} |" for b, c, h in zip(boards, cold, hot)]
display(Markdown("\n".join(table)))
'''),
        md('''
The same model against any UCI engine: `tj.ModelPlayer` wraps a batched `tj.Sampler` (a KV cache
per game), `tj.EnginePlayer` a pool of engine processes, and `tj.play_games` plays every pairing at
once and writes PGN and JSONL. Skipped when Stockfish is not installed.
'''),
        code(r'''
if STOCKFISH and STOCKFISH_GAMES:
    sampler = tj.Sampler(model, max_games=STOCKFISH_GAMES, legal="mask")
    players = [tj.ModelPlayer("model@0.001", sampler, 0.001), tj.EnginePlayer("sf1", path=STOCKFISH, skill=1)]
    try:
        results = tj.play_games(tj.round_robin(players, STOCKFISH_GAMES), out_dir=os.path.join(OUT, "vs_stockfish"),
                                max_plies=60)
    finally:
        for p in players:
            p.backend.close()
    for r in results:
        print(f"{r['white']} - {r['black']}: {r['result']} after {r['plies']} plies ({r['termination']})")
'''),
        md('''
## Next

- `notebooks/explore.ipynb` looks inside this workdir: the model's move distribution at several
  temperatures, the positions where an expert was blind, games as boards.
- `notebooks/theory.ipynb` walks through the paper's argument on the synthetic experts, no training.
- Real games: `transcendence data build` (Lichess PGN / .zst), `transcendence train --config paper_50m`,
  `transcendence eval` against Stockfish over the paper's temperature grid (`--openings book.pgn` for an
  opening book), `transcendence uci` to play the model in any chess GUI.
'''),
    ]


def explore():
    return [
        md(f'''
# Exploring a trained model

{badge("explore")}

Loads a training workdir (the quickstart's by default) and looks at what the model learned: its
move distribution at several temperatures, the positions of its validation games where an expert
was blind (where low temperature should help), and games rendered as boards: the demo's own
tournament games (`tournament/games.pgn` beside the workdir) when there are some.
'''),
        install(),
        code(r'''
import os

# A `transcendence train` workdir, or the folder of one demo population (e.g. runs/quickstart/diverse).
WORKDIR = os.environ.get("TJ_WORKDIR", "runs/quickstart/diverse/train")
# ---- A model that needs no training (issue 20, item 8) -------------------------------------------
# When WORKDIR holds no model (a fresh Colab runtime), this model shipped in the package is explored
# instead: tj.load_model("pretrained:demo") is the demo's diverse-population model. None: require WORKDIR.
PRETRAINED = os.environ.get("TJ_PRETRAINED", "demo")
# ---------------------------------------------------------------------------------------------------
TEMPERATURES = [0.001, 0.1, 0.3, 0.5, 1.0, 2.0]
MAX_BLIND = int(os.environ.get("TJ_MAX_BLIND", "48"))  # blind positions to analyse
SEED = 0
''', tags=("parameters",)),
        code(r'''
import glob
import itertools

import chess
import chess.pgn
import chess.svg
import jax
import matplotlib.pyplot as plt
import numpy as np
from IPython.display import SVG, Markdown, display

import transcendence_jax as tj
from transcendence_jax.experts import policies

from transcendence_jax.experts import population as experts

SOURCE = WORKDIR if os.path.exists(WORKDIR) or not PRETRAINED else f"pretrained:{PRETRAINED}"
model, config, step = tj.load_model(SOURCE)
DATA = config.data.path
files = sorted(glob.glob(os.path.join(DATA, "validation-*.array_record")))
if files:
    records = list(tj.read_records(files))
    print(f"{SOURCE}: step {step}; {len(records)} validation games from {DATA}")
else:  # a shipped model comes without its data: fresh games of the demo's diverse experts (not trained on)
    records = list(experts.records(experts.population("diverse", 5, 0), 40, seed=1000, boards=False))
    print(f"{SOURCE}: step {step}; {DATA} is not here, so {len(records)} fresh games of the demo's diverse experts")
'''),
        md('''
## The move distribution at several temperatures

`tj.move_probabilities(model, board, tau)` is the model's distribution over the legal moves,
`softmax(logits / tau)`; as tau goes to 0 it piles onto the arg-max. A middlegame position from a
validation game:
'''),
        code(r'''
def board_at(rec, ply):
    """The board of a record's game after `ply` half-moves, and the game's moves."""
    moves, _ = tj.decode_game(rec.tokens)
    board = chess.Board()
    for move in moves[:ply]:
        board.push(move)
    return board, moves

rec = max(records[:20], key=lambda r: r.num_moves)
board, moves = board_at(rec, min(20, rec.num_moves - 1))
display(SVG(chess.svg.board(board, lastmove=board.peek(), size=300)))

probs = {tau: tj.move_probabilities(model, board, tau) for tau in TEMPERATURES}
top = sorted(probs[1.0], key=probs[1.0].get, reverse=True)[:8]
fig, ax = plt.subplots(figsize=(9, 3.5))
width = 0.8 / len(TEMPERATURES)
for i, tau in enumerate(TEMPERATURES):
    ax.bar(np.arange(len(top)) + i * width, [probs[tau][m] for m in top], width, label=f"tau={tau:g}")
ax.set_xticks(np.arange(len(top)) + 0.4 - width / 2, [board.san(m) for m in top])
ax.set_ylabel("probability")
ax.set_title(f"{'White' if board.turn else 'Black'} to move: the model's 8 likeliest moves at tau = 1")
ax.legend(ncol=3, fontsize=8)
plt.show()
print("played in the game:", board.san(moves[board.ply()]))
'''),
        md('''
## Where low temperature helps

The synthetic records carry a per-move `blind` flag: 1 where the expert's flaw made it play a move
the base policy would not. With diverse experts the other experts play the base move in the same
kind of position, so the mixture (what the model learns) puts most of its mass on the base move and
the arg-max avoids the blunder, while sampling at tau = 1 repeats it with the probability the model
gives it. For each blind position of the validation games: the model's arg-max, and its
probability of the blind move at tau = 1. The base policy's best moves come from
`policies.decide(board, rng)` with no blind squares (ties are broken at random, so it is sampled
32 times: an estimate of the set).
'''),
        code(r'''
rng = np.random.default_rng(SEED)
blind = []  # (board before the move, the blind move, the base policy's best moves)
for rec in records:
    if rec.blind is None or not rec.blind.any():
        continue
    moves, _ = tj.decode_game(rec.tokens)
    board = chess.Board()
    for move, was_blind in zip(moves, rec.blind):
        if was_blind:
            base = {policies.decide(board, rng)[0] for _ in range(32)}
            blind.append((board.copy(), move, base))
        board.push(move)
    if len(blind) >= MAX_BLIND:
        break
blind = blind[:MAX_BLIND]
print(f"{len(blind)} blind positions")

if blind:
    boards = [b for b, _, _ in blind]
    argmax = tj.sample_moves(model, boards, temperatures=[0.001] * len(boards), key=jax.random.key(SEED))
    p_blind = np.array([tj.move_probabilities(model, b, 1.0)[m] for b, m, _ in blind])
    repeats = np.array([a == m for a, (_, m, _) in zip(argmax, blind)])
    is_base = np.array([a in base for a, (_, _, base) in zip(argmax, blind)])
    display(Markdown(
        f"| over {len(blind)} blind positions | tau = 0.001 (arg-max) | tau = 1 (sampling) |\n| --- | ---: | ---: |\n"
        f"| plays the expert's blind move | {repeats.mean():.2f} | {p_blind.mean():.2f} (mean probability) |\n"
        f"| plays one of the base policy's best moves | {is_base.mean():.2f} | |"))
'''),
        md('''
A few of them: the expert's blind move in red, the model's arg-max in green (one arrow when they agree),
the base policy's best moves in blue.
'''),
        code(r'''
for (board, move, base), choice in list(zip(blind, argmax))[:3] if blind else []:
    arrows = [chess.svg.Arrow(m.from_square, m.to_square, color="#3366cc80") for m in base]
    arrows += [chess.svg.Arrow(move.from_square, move.to_square, color="#cc0000cc"),
               chess.svg.Arrow(choice.from_square, choice.to_square, color="#00aa00cc")]
    print(f"ply {board.ply()}: expert played {board.san(move)}, base prefers "
          f"{', '.join(sorted(board.san(m) for m in base))}; model arg-max {board.san(choice)}")
    display(SVG(chess.svg.board(board, arrows=arrows, size=280)))
'''),
        md('''
## Games as boards

A game the model played at its lowest temperature in the demo's tournament (the demo writes
`tournament/games.pgn` beside the workdir, with the players, the result and the opening of every
game), else a game of the experts, shown every few moves.
'''),
        code(r'''
folder = WORKDIR if os.path.basename(os.path.normpath(WORKDIR)) != "train" else os.path.dirname(WORKDIR)
pgn_path = os.path.join(folder, "tournament", "games.pgn")
game = None
if os.path.exists(pgn_path):
    with open(pgn_path) as f:
        games = list(iter(lambda: chess.pgn.read_game(f), None))
    print(f"{len(games)} games in {pgn_path}")
    tau = lambda name: float(name.split("@")[1]) if name.startswith("model@") else float("inf")
    lowest = min(games, key=lambda g: min(tau(g.headers["White"]), tau(g.headers["Black"])))
    if "model@" in lowest.headers["White"] + lowest.headers["Black"]:
        game = lowest
if game is None:
    game = chess.pgn.Game()
    node = game
    for move in tj.decode_game(records[0].tokens)[0]:
        node = node.add_variation(move)
    first = records[0]
    game.headers.update(White=f"expert{first.white_id}", Black=f"expert{first.black_id}", Result=first.result)
print(game.headers["White"], "-", game.headers["Black"], game.headers["Result"],
      f"(opening: {game.headers.get('Opening', 'start position')})")
print(game.mainline_moves())

moves = list(game.mainline_moves())
board = game.board()
for ply, move in enumerate(moves, 1):
    board.push(move)
    if ply % 10 == 0 or ply == len(moves):
        print(f"after ply {ply}")
        display(SVG(chess.svg.board(board, lastmove=move, size=220)))
'''),
    ]


def theory():
    return [
        md(f'''
# The theory on synthetic experts

{badge("theory")}

Why can a model trained only to imitate experts play better than all of them? Zhang et al. (2024)
argue: cross-entropy training learns the **mixture** of the experts' policies; low-temperature
sampling plays that mixture's **arg-max**, a majority vote; a majority vote of experts whose errors
are **diverse** (they err in different places) is right where each of them is sometimes wrong.
This notebook checks each step with numbers, without training anything: plain numpy, then the
project's synthetic experts (`transcendence_jax.experts.population`). It runs in under a minute on a CPU.
'''),
        install(),
        code(r'''
import collections

import chess
import chess.svg
import matplotlib.pyplot as plt
import numpy as np
from IPython.display import SVG, Markdown, display

import transcendence_jax as tj
from transcendence_jax.experts import population as experts

K = 5            # experts
GAMES = 4        # expert games whose positions we use (about 100 positions each)
SAMPLES = 8      # moves drawn per expert and position to estimate its policy
SEED = 0
''', tags=("parameters",)),
        md('''
## 1. A majority vote of noisy experts beats each of them

A toy version: questions with 5 answers; expert k answers correctly with probability q_k and
otherwise picks a wrong answer at random. When their errors are independent, the plurality vote of
K experts is right far more often than the best of them. When they share their errors (every expert
that errs on a question picks the same wrong answer: "clones" of one mistake), voting does not help:
every weaker expert that joins adds a vote to the common mistake.
'''),
        code(r'''
rng = np.random.default_rng(SEED)
N, M = 20000, 5  # questions, answers per question (answer 0 is right)
q_K = np.array([0.55, 0.5, 0.45, 0.4, 0.35])

def vote_accuracy(k, shared):
    correct_NK = rng.random((N, k)) < q_K[:k]
    wrong_NK = rng.integers(1, M, (N, k))
    if shared:  # everyone who errs on a question makes the same mistake
        wrong_NK[:] = wrong_NK[:, :1]
    answer_NK = np.where(correct_NK, 0, wrong_NK)
    votes_NM = np.stack([(answer_NK == a).sum(1) for a in range(M)], 1) + rng.random((N, M)) * 1e-3  # ties at random
    return (votes_NM.argmax(1) == 0).mean()

ks = range(1, K + 1)
plt.figure(figsize=(6, 3.5))
plt.plot(ks, [vote_accuracy(k, False) for k in ks], "o-", label="plurality vote, independent errors")
plt.plot(ks, [vote_accuracy(k, True) for k in ks], "s-", label="plurality vote, shared errors")
plt.axhline(q_K.max(), color="gray", ls="--", label=f"best expert ({q_K.max():.2f})")
plt.xticks(list(ks)); plt.xlabel("experts voting (the first k, best first)")
plt.ylabel(f"accuracy (share of {N:,} questions)")
plt.legend(fontsize=8)
plt.show()
'''),
        md('''
## 2. The synthetic experts

Every expert plays one shared base policy (MVV-LVA: take the most valuable piece with the cheapest
attacker; no capture: any legal move) with one learnable flaw: it cannot see captures that land on
its own blind squares. **Diverse** experts' blind squares barely overlap (each square is blind for
one or two of the five); **clones** all share one of those sets (the one of median error rate), so
both populations have about the same error rate per expert and differ only in diversity.
'''),
        code(r'''
populations = {kind: tj.expert_population(kind, K, SEED) for kind in ("diverse", "clones")}
for kind, pop in populations.items():
    print(kind)
    for e in pop:
        print(f"  {e.name}: blind on {' '.join(e.squares)}")
colors = ["#e41a1c", "#377eb8", "#4daf4a", "#984ea3", "#ff7f00"]
fill = {sq: colors[e.id % len(colors)] + "99" for e in populations["diverse"] for sq in chess.scan_forward(e.blind)}
display(SVG(chess.svg.board(chess.Board(None), fill=fill, size=260)))
print("diverse population: each colour is one expert's blind squares")
'''),
        md('''
## 3. The diversity condition

Positions from games between the diverse experts. In each position, each expert's policy is
estimated from a few sampled moves (`expert.decide(board, rng)` returns the move and whether the
flaw cost something, i.e. the move is not among the base policy's best), and the **mixture** is their
average: what a model trained on all their games converges to. We compare each expert's error
rate (exact, `expert.error_probability(board)`) with the error of the mixture's arg-max.
'''),
        code(r'''
rng = np.random.default_rng(SEED)
pop = populations["diverse"]
positions = []
for g in range(GAMES):
    white, black = pop[g % K], pop[(g + 1) % K]
    game = experts.play_game(white, black, np.random.default_rng([SEED, g]))
    board = chess.Board()
    for move in game.moves:
        positions.append(board.copy(stack=False))
        board.push(move)
print(f"{len(positions)} positions from {GAMES} expert games")

def mixture(population, board):
    """(the mixture's sampled move frequencies, whether each move is an error, each expert's exact error rate)."""
    counts, bad = collections.Counter(), {}
    for e in population:
        for _ in range(SAMPLES):
            move, is_error = e.decide(board, rng)
            counts[move] += 1
            bad[move] = is_error
    return counts, bad, [e.error_probability(board) for e in population]

mixtures = {kind: [mixture(p, b) for b in positions] for kind, p in populations.items()}
rows = ["| population | each expert's error rate | best expert | mixture (tau = 1) | mixture arg-max |",
        "| --- | --- | ---: | ---: | ---: |"]
for kind, mix in mixtures.items():
    err_SK = np.array([m[2] for m in mix])
    mix_err = np.mean([sum(c[m] * bad[m] for m in c) / sum(c.values()) for c, bad, _ in mix])
    argmax_err = np.mean([bad[max(c, key=c.get)] for c, bad, _ in mix])
    rows.append(f"| {kind} | {', '.join(f'{x:.3f}' for x in err_SK.mean(0))} | {err_SK.mean(0).min():.3f} "
                f"| {mix_err:.3f} | **{argmax_err:.3f}** |")
display(Markdown("\n".join(rows)))
'''),
        md('''
With diverse experts the arg-max of the mixture errs far less often than even the best expert:
where one or two experts are blind, the other three or four still see the capture, so the majority plays the base
move. With clones every expert is blind in the same positions, the mixture keeps the flaw, and its
arg-max is no better than a single expert. Same per-expert error rate; only diversity differs.

## 4. Temperature

A model samples `p(move)^(1/tau)`, renormalised. At tau = 1 it reproduces the mixture, errors
included (the mixture's error rate is the experts' average). Lowering tau moves the mass to the
arg-max: for diverse experts the error falls below the best expert's, for clones it does not. This
is why the paper's models transcend only at low temperature.
'''),
        code(r'''
taus = np.geomspace(0.05, 2.0, 25)

def tempered_error(mix, tau):
    total = 0.0
    for counts, bad, _ in mix:
        moves = list(counts)
        p = np.array([counts[m] for m in moves], float) ** (1.0 / tau)
        total += (p / p.sum()) @ np.array([bad[m] for m in moves], float)
    return total / len(mix)

plt.figure(figsize=(6, 3.5))
for (kind, mix), color in zip(mixtures.items(), ["C0", "C3"]):
    plt.plot(taus, [tempered_error(mix, t) for t in taus], color=color, label=f"{kind}: mixture at tau")
    plt.axhline(np.array([m[2] for m in mix]).mean(0).min(), color=color, ls="--", lw=1, label=f"{kind}: best expert")
plt.xscale("log"); plt.xlabel("temperature tau (log scale)")
plt.ylabel(f"error rate per move (mean over {len(positions)} positions)"); plt.legend(fontsize=8)
plt.show()
'''),
        md('''
The quickstart notebook tests the same prediction end to end: a model trained on each population's
games, rated against the experts at several temperatures (`tj.run_demo`).
'''),
    ]


if __name__ == "__main__":
    OUT.mkdir(parents=True, exist_ok=True)
    write("quickstart", quickstart())
    write("explore", explore())
    write("theory", theory())
