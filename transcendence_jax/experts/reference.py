"""The theory's two reference players, computed from the experts themselves (no model).

`vote`: at each move the move most experts would play (the arg-max of the summed expert
distributions, exact ties broken at random): what a perfect model plays as tau -> 0. The
paper's Proposition 2 says transcendence is possible exactly when it beats the best expert.
`mixture`: at each move one expert drawn at random plays: what a model that does not read who is
moving from the game samples at tau 1. A perfect sequence model does read it (an expert that left
a piece hanging is blind there), so at tau 1 it plays as one expert drawn per game: `game-mixture`
(`experiment.reference_player`). Each expert plays uniformly among its `choices`, so the
distributions are exact here.
"""

from __future__ import annotations

from collections import Counter
from typing import Sequence

import chess
import chess.polyglot
import numpy as np

from transcendence_jax.experts.population import Expert


def expert_distribution(expert: Expert, board: chess.Board) -> dict[chess.Move, float]:
    """The expert's exact move distribution: uniform over the list of moves it chooses among."""
    moves = expert.choices(board)[0]
    return {m: k / len(moves) for m, k in Counter(moves).items()}  # a move listed k times has k shares


def mixture_distribution(experts: Sequence[Expert], board: chess.Board,
                         weights: Sequence[float] | None = None) -> dict[chess.Move, float]:
    """The experts' average distribution (each expert equally likely to move, or as likely as its
    weight: e.g. the posterior over who is moving)."""
    weights = [1.0 / len(experts)] * len(experts) if weights is None else weights
    total: dict[chess.Move, float] = {}
    for expert, w in zip(experts, weights):
        if w > 0:
            for move, p in expert_distribution(expert, board).items():
                total[move] = total.get(move, 0.0) + w * p
    return total


def vote_distribution(experts: Sequence[Expert], board: chess.Board) -> dict[chess.Move, float]:
    """Uniform over the arg-max moves of the summed expert distributions (up to float ties)."""
    mixture = mixture_distribution(experts, board)
    if not mixture:
        return {}
    best = max(mixture.values())
    top = [m for m, p in mixture.items() if p >= best - 1e-12]
    return {m: 1.0 / len(top) for m in top}


TIE_BREAKS = ("random", "position", "square")


class VotePolicy:
    """The experts' majority vote as an arena policy: `policy(board, rng) -> chess.Move`.

    `tie_break` picks among exactly tied top moves: "random" (uniformly: the vote of the theory);
    or one fixed choice that knows nothing of chess, as a trained model's arg-max is fixed:
    "position" (the least of a seeded hash of the position and the move: no rule shared across
    positions), "square" (the best of a seeded random score per (from, to) square: the same
    preference in every position). Any of them is an arg-max of the summed distributions; where
    those are flat the three can play differently well (FINDINGS, "Which arg-max")."""

    def __init__(self, experts: Sequence[Expert], tie_break: str = "random", seed: int = 0):
        if tie_break not in TIE_BREAKS:
            raise ValueError(f"tie_break {tie_break!r}: use one of {', '.join(TIE_BREAKS)}")
        self.experts, self.tie_break, self.seed = list(experts), tie_break, seed
        self.score = np.random.default_rng([seed, 64]).standard_normal((64, 64))

    def _key(self, board: chess.Board):
        """The fixed tie-break's sort key over `board`'s moves (least first)."""
        if self.tie_break == "square":
            return lambda move: -self.score[move.from_square, move.to_square] - 1e-3 * (move.promotion or 0)
        position = chess.polyglot.zobrist_hash(board)  # once per position, not per move
        return lambda move: float(np.random.default_rng(
            [position, self.seed, move.from_square, move.to_square, move.promotion or 0]).random())

    def __call__(self, board: chess.Board, rng: np.random.Generator) -> chess.Move | None:
        top = list(vote_distribution(self.experts, board))
        if not top:
            return None
        if self.tie_break == "random":
            return top[int(rng.integers(len(top)))]
        return min(top, key=self._key(board))


class MixturePolicy:
    """A random expert at each move, as an arena policy."""

    def __init__(self, experts: Sequence[Expert]):
        self.experts = list(experts)

    def __call__(self, board: chess.Board, rng: np.random.Generator) -> chess.Move | None:
        return self.experts[int(rng.integers(len(self.experts)))](board, rng)
