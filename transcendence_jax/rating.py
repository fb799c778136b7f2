"""Ratings from game results: the paper's Glicko-2 and an order-free Elo with confidence intervals.

A game is `(white, black, score_white)` with score 1 / 0.5 / 0, or a `games.jsonl` row (a dict
with those keys, plus optional `illegal_white`, `illegal_black`, `moves_white`... for the table).

- `glicko2_paper` replays the paper's figure: Glickman's Glicko-2 (system tau 0.5, start
  1500 / RD 500 / volatility 0.06), one rating period per game, games taken in the order given,
  anchors (Stockfish levels) at fixed ratings with RD 0 that are never updated. Its result
  depends on game order, and its +-RD is not a confidence interval.
- `elo_mle` is what we report: Bradley-Terry maximum likelihood over all games at once (order
  free, draws count as halves), anchored to fixed ratings or to the mean of a named set, with
  bootstrap 95% confidence intervals from resampled games.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Mapping, Sequence
from typing import NamedTuple

import numpy as np

from transcendence_jax import jsonl
from transcendence_jax.errors import UserError

# The paper's Stockfish anchors (PAPER.md), by skill level. Map them to your players' names.
PAPER_STOCKFISH_ELO = {1: 1552.0, 3: 1842.0, 5: 2142.0}
GLICKO2_SCALE = 173.7178  # Glickman: rating units per Glicko-2 unit
ELO_PER_NAT = 400.0 / math.log(10.0)  # p = 1/(1+10^(-d/400)) = sigmoid(d / ELO_PER_NAT)


def _games(games) -> list[tuple[str, str, float]]:
    """Normalise games to (white, black, score_white) tuples, checking what the user can fix."""
    out = []
    for g in games:
        if isinstance(g, Mapping):
            g = (g["white"], g["black"], g["score_white"])
        white, black, score = g
        score = float(score)
        if not 0.0 <= score <= 1.0:
            raise UserError(f"game {white} vs {black}: score_white {score} is outside [0, 1]; use 1, 0.5 or 0")
        if white == black:
            raise UserError(f"game {white} vs {black}: a player cannot play itself; drop the game")
        out.append((str(white), str(black), score))
    if not out:
        raise UserError("no games to rate: play some games first (or check the results file is not empty)")
    return out


# ----------------------------------------------------------------------------- Glicko-2 (the paper)


@dataclasses.dataclass(frozen=True)
class Glicko2Rating:
    rating: float = 1500.0
    rd: float = 500.0
    volatility: float = 0.06
    games: int = 0


def _g(phi):
    return 1.0 / math.sqrt(1.0 + 3.0 * phi * phi / math.pi**2)


def glicko2_update(player: Glicko2Rating, opponents: Sequence[tuple[float, float]], scores: Sequence[float],
                   *, tau: float = 0.5, epsilon: float = 1e-6) -> Glicko2Rating:
    """One rating period of Glickman's Glicko-2 ("Example of the Glicko-2 system", steps 2-8).

    `opponents` are (rating, rd) before the period; `scores` the player's results against them.
    """
    if not opponents:  # step 6 only: uncertainty grows
        phi = math.hypot(player.rd / GLICKO2_SCALE, player.volatility)
        return dataclasses.replace(player, rd=phi * GLICKO2_SCALE)
    mu, phi, sigma = (player.rating - 1500.0) / GLICKO2_SCALE, player.rd / GLICKO2_SCALE, player.volatility
    v_inv, delta_sum = 0.0, 0.0
    for (r_j, rd_j), s_j in zip(opponents, scores, strict=True):
        g_j = _g(rd_j / GLICKO2_SCALE)
        e_j = 1.0 / (1.0 + math.exp(-g_j * (mu - (r_j - 1500.0) / GLICKO2_SCALE)))
        v_inv += g_j * g_j * e_j * (1.0 - e_j)
        delta_sum += g_j * (s_j - e_j)
    v = 1.0 / v_inv
    delta = v * delta_sum
    # Step 5: the new volatility, by the Illinois algorithm on f(x), x = ln(sigma'^2).
    a = math.log(sigma * sigma)

    def f(x):
        ex = math.exp(x)
        d = phi * phi + v + ex
        return ex * (delta * delta - phi * phi - v - ex) / (2.0 * d * d) - (x - a) / (tau * tau)

    A = a
    if delta * delta > phi * phi + v:
        B = math.log(delta * delta - phi * phi - v)
    else:
        k = 1
        while f(a - k * tau) < 0:
            k += 1
        B = a - k * tau
    f_a, f_b = f(A), f(B)
    while abs(B - A) > epsilon:
        C = A + (A - B) * f_a / (f_b - f_a)
        f_c = f(C)
        if f_c * f_b <= 0:
            A, f_a = B, f_b
        else:
            f_a /= 2.0
        B, f_b = C, f_c
    sigma_new = math.exp(A / 2.0)
    # Steps 6-8.
    phi_star = math.sqrt(phi * phi + sigma_new * sigma_new)
    phi_new = 1.0 / math.sqrt(1.0 / (phi_star * phi_star) + 1.0 / v)
    mu_new = mu + phi_new * phi_new * delta_sum
    return Glicko2Rating(1500.0 + GLICKO2_SCALE * mu_new, GLICKO2_SCALE * phi_new, sigma_new,
                         player.games + len(opponents))


def glicko2_paper(games, anchors: Mapping[str, float], *, tau: float = 0.5, rating: float = 1500.0,
                  rd: float = 500.0, volatility: float = 0.06) -> dict[str, Glicko2Rating]:
    """The paper's ratings: each game is its own rating period, in the order given.

    Pass one temperature's games (all opponents pooled, e.g. ~300 games against Stockfish 1/3/5)
    and `anchors` = {name: fixed rating}, e.g. {"stockfish-1": PAPER_STOCKFISH_ELO[1], ...}.
    Anchors keep RD 0 and are never updated. Both non-anchor players of a game are updated
    against the other's pre-game rating; a player absent from a game is left as it is (Glickman
    would grow its RD: with one rated player per pool, as in the paper, this never arises).
    """
    state: dict[str, Glicko2Rating] = {name: Glicko2Rating(float(r), 0.0, volatility) for name, r in anchors.items()}
    for white, black, score in _games(games):
        for name in (white, black):
            state.setdefault(name, Glicko2Rating(rating, rd, volatility))
        w, b = state[white], state[black]
        if white not in anchors:
            state[white] = glicko2_update(w, [(b.rating, b.rd)], [score], tau=tau)
        if black not in anchors:
            state[black] = glicko2_update(b, [(w.rating, w.rd)], [1.0 - score], tau=tau)
    return state


# ----------------------------------------------------------------------------- order-free Elo


class EloDiff(NamedTuple):
    """Elo of one player minus another's, and the 95% CI of that difference."""

    diff: float
    lo: float
    hi: float

    def __str__(self) -> str:
        return f"{self.diff:+.0f} [{self.lo:+.0f}, {self.hi:+.0f}]"


@dataclasses.dataclass(repr=False)
class Ratings:
    """Elo by maximum likelihood, with bootstrap percentile 95% CIs.

    `samples_BP` holds every bootstrap fit (rows: resamples, columns: `players`), so a
    difference gets its own CI: `diff(a, b)`. Its repr: the best 12 players, Elo [95% CI], on one line.
    """
    players: list[str]
    elo: dict[str, float]
    ci: dict[str, tuple[float, float]]
    samples_BP: np.ndarray
    games: dict[str, int]
    anchor: str
    prior_sd: float

    def diff_samples(self, a: str, b: str) -> np.ndarray:
        """The bootstrap samples of Elo(a) - Elo(b): [B]."""
        for name in (a, b):
            if name not in self.elo:
                raise UserError(f"no rating for player {name!r}; rated players: {', '.join(self.players)}")
        return self.samples_BP[:, self.players.index(a)] - self.samples_BP[:, self.players.index(b)]

    def diff(self, a: str, b: str) -> EloDiff:
        """Elo of a minus Elo of b, with the 95% CI of that difference (not of the two ratings)."""
        d_B = self.diff_samples(a, b)
        lo, hi = np.percentile(d_B, [2.5, 97.5]) if len(d_B) else (math.nan, math.nan)
        return EloDiff(self.elo[a] - self.elo[b], float(lo), float(hi))

    def __repr__(self) -> str:
        rows = [f"{p} {self.elo[p]:+.0f} [{self.ci[p][0]:+.0f}, {self.ci[p][1]:+.0f}]"
                for p in sorted(self.players, key=self.elo.get, reverse=True)]
        return f"Ratings(Elo, {self.anchor}: {'; '.join(rows[:12])}{'; ...' * (len(rows) > 12)})"

    def to_dict(self) -> dict:
        return {
            "method": "bradley-terry-mle", "anchor": self.anchor, "prior_sd": self.prior_sd,
            "bootstrap": int(self.samples_BP.shape[0]),
            "players": {p: {"elo": self.elo[p], "ci95": list(self.ci[p]), "games": self.games[p]}
                        for p in self.players},
        }

    def to_json(self, **kwargs) -> str:
        """The ratings as a JSON string (`to_dict()` for the dict)."""
        return json.dumps(self.to_dict(), **({"indent": 2} | kwargs))


def _fit(i_K, j_K, N_BK, S_BK, P, fixed: dict[int, float], lam: float, iters: int = 100) -> np.ndarray:
    """Damped Newton on the penalised Bradley-Terry log-likelihood, B fits at once.

    theta (natural units, Elo / ELO_PER_NAT). Objective: -sum_k [S log p + (N - S) log(1 - p)]
    + lam/2 * |theta - mean(theta)|^2, plus lam/2 * P * mean(theta)^2 when nothing is fixed
    (then it is just lam/2 |theta|^2 and the optimum has mean 0). Strictly convex.
    """
    B = N_BK.shape[0]
    D_KP = np.zeros((len(i_K), P))
    D_KP[np.arange(len(i_K)), i_K] = 1.0
    D_KP[np.arange(len(i_K)), j_K] = -1.0
    DD_KQ = (D_KP[:, :, None] * D_KP[:, None, :]).reshape(len(i_K), P * P)
    prior_PP = lam * (np.eye(P) if not fixed else np.eye(P) - 1.0 / P)
    free = np.array([p not in fixed for p in range(P)])
    theta_BP = np.full((B, P), np.mean(list(fixed.values())) if fixed else 0.0)
    for p, t in fixed.items():
        theta_BP[:, p] = t
    for _ in range(iters):
        p_BK = 1.0 / (1.0 + np.exp(-(theta_BP[:, i_K] - theta_BP[:, j_K])))
        grad_BP = -(S_BK - N_BK * p_BK) @ D_KP + theta_BP @ prior_PP
        hess_BPP = ((N_BK * p_BK * (1.0 - p_BK)) @ DD_KQ).reshape(B, P, P) + prior_PP
        step_BF = np.linalg.solve(hess_BPP[:, free][:, :, free], grad_BP[:, free, None])[..., 0]
        size_B = np.abs(step_BF).max(axis=1, keepdims=True)
        step_BF *= np.minimum(1.0, 1.0 / np.maximum(size_B, 1e-300))  # at most 1 nat (~174 Elo) a step
        theta_BP[:, free] -= step_BF
        if size_B.max() < 1e-10:
            break
    return theta_BP


def elo_mle(games, *, anchor=None, bootstrap: int = 500, seed: int = 0, prior_sd: float = 1000.0) -> Ratings:
    """Bradley-Terry maximum-likelihood Elo over all games, independent of their order.

    Each game adds score*log p + (1-score)*log(1-p), p = 1/(1+10^(-(Ra-Rb)/400)): a draw is half
    a win and half a loss. No first-move advantage is modelled (alternate colours).
    anchor: None (the mean of all players is 0), a dict {name: fixed Elo} (e.g. Stockfish levels),
    or a list of names whose mean is set to 0 (e.g. the experts).
    prior_sd: a Gaussian ridge prior (SD in Elo) on each rating about the players' mean. It is
    negligible against a hundred games (~0.1 Elo) but keeps a perfect score or a player not
    connected to the others by games finite instead of infinite.
    Confidence intervals: `bootstrap` resamples of the games (with replacement, seeded), each
    refitted and anchored the same way; 2.5 and 97.5 percentiles.
    """
    games = _games(games)
    players = sorted({g[0] for g in games} | {g[1] for g in games})
    index = {p: k for k, p in enumerate(players)}
    P = len(players)
    fixed: dict[int, float] = {}
    mean_set: list[int] = list(range(P))
    if isinstance(anchor, Mapping):
        missing = [a for a in anchor if a not in index]
        fixed = {index[a]: float(r) / ELO_PER_NAT for a, r in anchor.items() if a in index}
        anchor_desc = "fixed: " + ", ".join(f"{a}={float(r):g}" for a, r in anchor.items())
    elif anchor is not None:
        names = [anchor] if isinstance(anchor, str) else list(anchor)
        missing = [a for a in names if a not in index]
        mean_set = [index[a] for a in names if a in index]
        anchor_desc = "mean 0: " + ", ".join(names)
    else:
        missing, anchor_desc = [], "mean 0: all players"
    if missing or (anchor is not None and not fixed and not mean_set):
        raise UserError(f"anchor player(s) {', '.join(map(repr, missing))} played no games; "
                        f"players with games: {', '.join(players)}")

    # Resampling games = a multinomial over distinct (pair, score) outcomes: B fits of K pairs.
    a_G = np.array([min(index[w], index[b]) for w, b, _ in games])
    b_G = np.array([max(index[w], index[b]) for w, b, _ in games])
    s_G = np.array([s if index[w] < index[b] else 1.0 - s for w, b, s in games])
    keys_C3, count_C = np.unique(np.stack([a_G, b_G, s_G], axis=1), axis=0, return_counts=True)
    pairs_K2, pair_C = np.unique(keys_C3[:, :2].astype(int), axis=0, return_inverse=True)
    onehot_CK = np.zeros((len(keys_C3), len(pairs_K2)))
    onehot_CK[np.arange(len(keys_C3)), pair_C.reshape(-1)] = 1.0
    rng = np.random.default_rng(seed)
    counts_BC = np.concatenate([count_C[None].astype(float),
                                rng.multinomial(len(games), count_C / len(games), size=bootstrap).astype(float)])
    N_BK, S_BK = counts_BC @ onehot_CK, counts_BC @ (onehot_CK * keys_C3[:, 2:3])
    lam = (ELO_PER_NAT / prior_sd) ** 2
    theta_BP = _fit(pairs_K2[:, 0], pairs_K2[:, 1], N_BK, S_BK, P, fixed, lam)
    elo_BP = theta_BP * ELO_PER_NAT
    if not fixed:
        elo_BP -= elo_BP[:, mean_set].mean(axis=1, keepdims=True)
    samples_BP = elo_BP[1:]
    lo_P, hi_P = (np.percentile(samples_BP, [2.5, 97.5], axis=0) if bootstrap else (elo_BP[0] * np.nan,) * 2)
    n_games = {p: 0 for p in players}
    for w, b, _ in games:
        n_games[w] += 1
        n_games[b] += 1
    return Ratings(players=players, elo={p: float(elo_BP[0, k]) for k, p in enumerate(players)},
                   ci={p: (float(lo_P[k]), float(hi_P[k])) for k, p in enumerate(players)},
                   samples_BP=samples_BP, games=n_games, anchor=anchor_desc, prior_sd=prior_sd)


# ----------------------------------------------------------------------------- output


def read_games(path: str) -> list[dict]:
    """The rows of an arena `games.jsonl`, one finished game a line (jsonl.read: a torn last line
    is dropped, any other line that is not JSON is a UserError)."""
    if not os.path.exists(path):
        raise UserError(f"results file {path} not found: run `transcendence eval` first or pass its games.jsonl")
    return jsonl.read(path)


def _moves_played(row: Mapping, colour: str) -> int:
    """Moves this colour chose itself: `moves_<colour>`, else counted from `plies` after the opening."""
    if f"moves_{colour}" in row:
        return int(row[f"moves_{colour}"])
    n, o = int(row.get("plies", 0)), int(row.get("opening_plies", 0) or 0)
    return (n + 1) // 2 - (o + 1) // 2 if colour == "white" else n // 2 - o // 2


def player_records(games) -> dict[str, dict[str, float]]:
    """Per player: games, win, draw, loss, points, and (from jsonl rows) illegal tries and moves
    (`has_illegal` set when any row carried illegal counts)."""
    rec: dict[str, dict[str, float]] = {}
    for g in games:
        w, b, s = _games([g])[0]
        for name, score, colour in ((w, s, "white"), (b, 1.0 - s, "black")):
            r = rec.setdefault(name, dict(games=0, win=0, draw=0, loss=0, points=0.0, illegal=0, moves=0))
            r["games"] += 1
            r["points"] += score
            r["win" if score == 1.0 else "loss" if score == 0.0 else "draw"] += 1
            if isinstance(g, Mapping) and f"illegal_{colour}" in g:
                r["illegal"] += int(g[f"illegal_{colour}"] or 0)
                r["moves"] += _moves_played(g, colour)
                r["has_illegal"] = 1
    return rec


def format_table(ratings, games, players: Sequence[str] | None = None) -> str:
    """A text table: player, games, W/D/L, score, rating, 95% CI (or +-RD), illegal-move rate.

    ratings: a `Ratings` (Elo with CI) or `glicko2_paper`'s dict (rating +- RD: not a CI).
    games: the games rated; the illegal column appears when they are jsonl rows with
    `illegal_white` / `illegal_black` (rate = illegal tries / (illegal tries + moves the player chose;
    `moves_white` / `moves_black`, else counted from `plies` after `opening_plies`)).
    players: rows to show, in order; default all, strongest first.
    """
    games = list(games)
    rec = player_records(games)
    glicko = not isinstance(ratings, Ratings)
    value = {p: (r.rating if glicko else r) for p, r in (ratings.items() if glicko else ratings.elo.items())}
    if players is None:
        players = sorted((p for p in value if p in rec), key=lambda p: -value[p])
    show_illegal = any(r.get("has_illegal") for r in rec.values())
    head = ["player", "games", "W/D/L", "score", "Glicko-2" if glicko else "Elo", "+-RD" if glicko else "95% CI"]
    rows = [head + (["illegal"] if show_illegal else [])]
    for p in players:
        r = rec.get(p, dict(games=0, win=0, draw=0, loss=0, points=0.0, illegal=0, moves=0))
        if p in value:
            rating = f"{value[p]:.0f}"
            spread = f"{ratings[p].rd:.0f}" if glicko else "[{:.0f}, {:.0f}]".format(*ratings.ci[p])
        else:
            rating, spread = "-", "-"
        row = [p, str(r["games"]), f"{r['win']}/{r['draw']}/{r['loss']}",
               f"{100 * r['points'] / r['games']:.1f}%" if r["games"] else "-", rating, spread]
        if show_illegal:
            tries = r["illegal"] + r["moves"]
            row.append(f"{100 * r['illegal'] / tries:.2f}%" if r.get("has_illegal") and tries else "-")
        rows.append(row)
    widths = [max(len(row[c]) for row in rows) for c in range(len(head) + show_illegal)]
    lines = ["  ".join(cell.ljust(w) if c == 0 else cell.rjust(w) for c, (cell, w) in enumerate(zip(row, widths)))
             for row in rows]
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(lines)


def across_seeds(points: Sequence[float], samples: Sequence[np.ndarray], *, bootstrap: int = 2000,
                 seed: int = 0) -> tuple[float, float, float]:
    """A difference measured on several independent replicates (training seeds), with a 95% CI
    from both sources of variation: each bootstrap draw resamples the replicates (with
    replacement), then one of each drawn replicate's own game bootstrap samples, and averages.
    points: each replicate's estimate; samples: each replicate's bootstrap samples."""
    lo, hi = np.percentile(seed_draws(samples, bootstrap=bootstrap, seed=seed), [2.5, 97.5])
    return float(np.mean(points)), float(lo), float(hi)


def seed_draws(samples: Sequence[np.ndarray], *, bootstrap: int = 2000, seed: int = 0) -> np.ndarray:
    """across_seeds' bootstrap draws of the mean over replicates (for a statistic of several such
    means, e.g. where a curve crosses zero): each resamples the replicates, takes one of each drawn
    replicate's own samples, and averages."""
    rng = np.random.default_rng(seed)
    n = len(samples)
    picks = rng.integers(n, size=(bootstrap, n))
    return np.array([[samples[r][rng.integers(len(samples[r]))] for r in row] for row in picks]).mean(1)
