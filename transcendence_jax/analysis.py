"""State-level transcendence: position by position, how much a low temperature gains.

The paper scores every legal move of a test position with Stockfish (multipv, expected score
from the "lichess" win-draw-loss model) and reports the model's gain in expected reward per state
over its tau = 1 policy, concentrated on a few states. Here that is four steps, each usable alone:

  policies  the model's distribution over legal moves at each temperature (`model_policies`: one
            forward pass a position serves every temperature), or a Python policy's by sampling it
            (`empirical_policy`);
  values    the mover's expected score after each legal move: Stockfish multipv as in the paper
            (`stockfish_move_values`), or for the synthetic experts short rollouts scored by an
            adjudicator (`rollout_move_values`);
  reward    a policy's expected value at a state, sum_m pi(m) v(m);
  summary   per-state gains of one policy over another: mean with a bootstrap CI over states and
            the share carried by the best few states, optionally by group of states.
Gains are in expected-score points x 100 (the paper's "+2.15 points").
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence

import chess
import chess.engine
import numpy as np

from transcendence_jax.data.records import SCORE_OF_RESULT
from transcendence_jax.errors import UserError

Dist = dict[chess.Move, float]


def model_policies(model, boards: Sequence[chess.Board], temperatures: Sequence[float], *,
                   batch_size: int = 64, threshold: float = 1e-3) -> list[dict[float, Dist]]:
    """For each board (its move stack is the prompt): {tau: distribution over its legal moves}."""
    from transcendence_jax.data.tokenizer import move_to_token
    from transcendence_jax.sampling.policy import position_logits, tempered

    out = []
    for start in range(0, len(boards), batch_size):
        chunk = boards[start:start + batch_size]
        logits_BV = np.asarray(position_logits(model, chunk), np.float64)
        for board, logits_V in zip(chunk, logits_BV):
            legal = {m: float(logits_V[move_to_token(m)]) for m in board.legal_moves}
            out.append({tau: tempered(legal, tau, threshold) for tau in temperatures})
    return out


def empirical_policy(policy: Callable[[chess.Board, np.random.Generator], chess.Move], board: chess.Board, *,
                     samples: int = 32, rng: np.random.Generator) -> Dist:
    """A stochastic policy's move distribution at `board`, estimated from `samples` calls."""
    counts: Dist = {}
    for _ in range(samples):
        move = policy(board.copy(), rng)
        counts[move] = counts.get(move, 0.0) + 1.0 / samples
    return counts


def stockfish_move_values(boards: Sequence[chess.Board], *, path: str | None = None, depth: int | None = 10,
                          nodes: int | None = None) -> list[Dist]:
    """The paper's values: Stockfish multipv over all legal moves, each move's score turned into
    the expected score of the side to move by the "lichess" WDL model. Depth/node limits keep
    it the same on every machine."""
    from transcendence_jax.play.engines import find_stockfish

    if depth is None and nodes is None:
        raise UserError("stockfish_move_values needs a depth or a node limit; pass depth=10 or nodes=20000")
    limit = chess.engine.Limit(depth=depth, nodes=nodes)
    out = []
    with chess.engine.SimpleEngine.popen_uci(find_stockfish(path)) as engine:
        for board in boards:
            legal = list(board.legal_moves)
            if not legal:
                out.append({})
                continue
            infos = engine.analyse(board, limit, multipv=len(legal))
            values = {}
            for info in infos:
                if "pv" in info and info["pv"]:
                    wdl = info["score"].pov(board.turn).wdl(model="lichess", ply=board.ply())
                    values[info["pv"][0]] = wdl.expectation()
            missing = [m for m in legal if m not in values]
            for move in missing:  # rare: multipv returned fewer lines; score the move on its own
                info = engine.analyse(board, limit, root_moves=[move])
                values[move] = info["score"].pov(board.turn).wdl(model="lichess", ply=board.ply()).expectation()
            out.append(values)
    return out


def _score(result: str, turn: chess.Color) -> float:
    white = SCORE_OF_RESULT[result]
    return white if turn == chess.WHITE else 1.0 - white


def rollout_move_values(boards: Sequence[chess.Board], policy: Callable[[chess.Board, np.random.Generator], chess.Move],
                        outcome: Callable[[chess.Board], str], *, rollouts: int = 8, plies: int = 12,
                        seed: int = 0) -> list[Dist]:
    """Expected score for the side to move after each legal move: play it, let `policy` play
    both sides for up to `plies` plies (or to the end of the game), score the board with
    `outcome(board)` -> "1-0" | "0-1" | "1/2-1/2" (e.g. experts.adjudicate), average."""
    rng = np.random.default_rng(seed)
    out = []
    for board in boards:
        values = {}
        for move in board.legal_moves:
            total = 0.0
            for _ in range(rollouts):
                b = board.copy(stack=False)
                b.push(move)
                for _ in range(plies):
                    if b.is_game_over(claim_draw=False):
                        break
                    b.push(policy(b, rng))
                total += _score(outcome(b), board.turn)
            values[move] = total / rollouts
        out.append(values)
    return out


def expected_reward(policy: Mapping[chess.Move, float], values: Mapping[chess.Move, float]) -> float:
    """sum_m pi(m) v(m): the value of playing `policy` at a state."""
    missing = [m.uci() for m, p in policy.items() if p > 0 and m not in values]
    if missing:
        raise UserError(f"no value for move(s) {', '.join(missing)}: the values must cover every legal move")
    return float(sum(p * values[m] for m, p in policy.items()))


def state_gains(policies: Sequence[Mapping], reference: Sequence[Mapping], values: Sequence[Mapping]) -> np.ndarray:
    """Per state, 100 x (reward of `policies[s]` - reward of `reference[s]`), e.g. tau 0.001 over tau 1."""
    if not len(policies) == len(reference) == len(values):
        raise UserError(f"state_gains: {len(policies)} policies, {len(reference)} references and {len(values)} "
                        "value tables; pass one of each per state")
    return np.array([100.0 * (expected_reward(p, v) - expected_reward(r, v))
                     for p, r, v in zip(policies, reference, values)])


def summarize_gains(gains_S: np.ndarray, *, groups: Mapping[str, np.ndarray] | None = None,
                    top_fraction: float = 0.1, bootstrap: int = 1000, seed: int = 0) -> dict:
    """Mean gain per state with a 95% bootstrap CI over states; how concentrated it is.

    share_top: the fraction of the total positive gain carried by the best `top_fraction` of
    states; changed: the fraction of states where the gain is not zero. groups: name -> boolean
    mask over states (e.g. {"blind": some_expert_blind_S, "clear": ~some_expert_blind_S}),
    each summarised the same way under "groups".
    """
    gains_S = np.asarray(gains_S, np.float64)
    if gains_S.size == 0:
        raise UserError("summarize_gains: no states to summarise; analyse at least one position")
    rng = np.random.default_rng(seed)
    idx_BS = rng.integers(0, len(gains_S), size=(bootstrap, len(gains_S)))
    lo, hi = np.percentile(gains_S[idx_BS].mean(axis=1), [2.5, 97.5]) if bootstrap else (np.nan, np.nan)
    positive = np.sort(np.clip(gains_S, 0, None))[::-1]
    k = max(1, int(round(top_fraction * len(gains_S))))
    out = dict(states=int(len(gains_S)), mean=float(gains_S.mean()), ci95=[float(lo), float(hi)],
               changed=float(np.mean(np.abs(gains_S) > 1e-9)),
               share_top=float(positive[:k].sum() / positive.sum()) if positive.sum() > 0 else 0.0)
    if groups:
        out["groups"] = {name: summarize_gains(gains_S[np.asarray(mask, bool)], top_fraction=top_fraction,
                                               bootstrap=bootstrap, seed=seed)
                         for name, mask in groups.items() if np.asarray(mask, bool).any()}
    return out


def agreement(policies: Sequence[Mapping[chess.Move, float]], moves: Sequence[chess.Move]) -> float:
    """Mean probability each policy puts on the given move (e.g. the base policy's): top-1
    agreement for an arg-max policy."""
    return float(np.mean([p.get(m, 0.0) for p, m in zip(policies, moves, strict=True)]))


def kl_divergence(p: Mapping[chess.Move, float], q: Mapping[chess.Move, float], floor: float = 1e-9) -> float:
    """KL(p || q) in nats: what q loses on p's moves (q's probability floored at `floor`: a
    tempered distribution drops moves below its threshold)."""
    return float(sum(pm * math.log(pm / max(q.get(m, 0.0), floor)) for m, pm in p.items() if pm > 0))


def mass_on(policy: Mapping[chess.Move, float], moves) -> float:
    """The probability `policy` puts on `moves` (e.g. the vote's arg-max set, or the captures)."""
    return float(sum(policy.get(m, 0.0) for m in moves))
