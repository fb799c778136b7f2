"""Specialists: experts each competent on its own region of the board and guessing elsewhere.

The blind-spot experts of `population.py` are generalists with a hole: they play the base policy
everywhere but miss captures onto their own squares. A specialist is the opposite: it plays the
base policy only where the base's move lands on its region (for MVV-LVA: captures onto its
squares, and any move when there is no capture, as the base does) and a uniformly random legal
move everywhere else. Its `blind` mask holds the squares outside its region, so what every tool
reads from an expert (`describe`'s per-square counts, `error_probability`, the blind flags of its
games) keeps its meaning: where this expert errs.

Why it matters: where one specialist knows the move and the others guess uniformly, the plurality
vote still finds the competent move (its mass c/K against the guessers' ~1/legal-moves each), so a
crowd of specialists can transcend as a crowd of generalists does; it breaks where no expert covers
the square (fewer experts, or regions that overlap). docs/EXPERTS.md, "Specialists".
"""

from __future__ import annotations

import dataclasses

import chess
import numpy as np

from transcendence_jax.errors import UserError
from transcendence_jax.experts import policies
from transcendence_jax.experts.population import DEFAULT_BASE, Expert
from transcendence_jax.experts.population import population as deal_population

KIND = "specialists"
REGION_FRACTION = 0.25  # 16 of 64 squares: 3 experts leave 16 squares uncovered, 5 cover every one


def choices(board: chess.Board, blind: int, base: str = DEFAULT_BASE) -> tuple[list[chess.Move], list[bool]]:
    """(the moves a specialist erring outside its region chooses among, uniformly, in legal-move
    order; whether each is one of the base's best moves): the base's own choices when one of
    them lands on the region (not on `blind`), else every legal move."""
    best = policies.choices(board, 0, base)[0]
    if any(not blind >> move.to_square & 1 for move in best):
        return best, [True] * len(best)
    legal = list(board.legal_moves)
    good = set(best)
    return legal, [move in good for move in legal]


@dataclasses.dataclass(frozen=True)
class Specialist(Expert):
    """An expert competent on `region` (the squares not in `blind`) and guessing elsewhere.

    Callable as an arena policy, like every Expert: `specialist(board, rng) -> chess.Move`."""

    kind: str = KIND

    @property
    def region(self) -> int:
        return chess.BB_ALL & ~self.blind

    def choices(self, board: chess.Board) -> tuple[list[chess.Move], list[bool]]:
        return choices(board, self.blind, self.base)

    def decide(self, board: chess.Board, rng: np.random.Generator) -> tuple[chess.Move | None, bool]:
        """(a move drawn uniformly from `choices`, whether it is not a base-best move)."""
        moves, good = self.choices(board)
        if not moves:
            return None, False
        k = int(rng.integers(len(moves))) if len(moves) > 1 else 0
        return moves[k], not good[k]

    def error_probability(self, board: chess.Board) -> float:
        good = self.choices(board)[1]
        return 1.0 - sum(good) / len(good) if good else 0.0

    def __call__(self, board: chess.Board, rng: np.random.Generator) -> chess.Move:
        return self.decide(board, rng)[0]


def population(k: int = 5, seed: int = 0, *, region_fraction: float = REGION_FRACTION, overlap: float = 0.0,
               base: str = DEFAULT_BASE) -> list[Specialist]:
    """K specialists, each competent on round(region_fraction * 64) squares.

    The regions are dealt as `population.population` deals blind sets (each square in as few
    regions as possible, every region carrying about the same capture traffic); `overlap` is the
    shared share of every region: 0 spreads them over the board (5 x 16 covers every square),
    1 gives all K the same region (48 squares nobody covers)."""
    if not 0.0 < region_fraction <= 1.0:
        raise UserError(f"region_fraction must be in (0, 1], got {region_fraction}")
    regions = deal_population("diverse", k, seed, blind_fraction=region_fraction, overlap=overlap, base=base)
    return [Specialist(id=e.id, blind=chess.BB_ALL & ~e.blind, base=base) for e in regions]


def coverage(experts) -> list[int]:
    """Per square (a1 .. h8), how many experts are competent on it (not blind there)."""
    return [sum(not e.blind >> sq & 1 for e in experts) for sq in range(64)]
