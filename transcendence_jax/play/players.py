"""Players and the backends that move for them: the arena's only interface.

A player has a `name` and a `backend`. Each round the arena groups the games waiting on a move
by backend and calls `backend.choose([(player, GameState), ...])` once, every backend in its own
thread, so one model call serves all of its games and the engines search meanwhile. Three kinds
ship: `PolicyPlayer` (a Python function of the board), `ModelPlayer` (the model at a temperature;
its backend is a `sampling.Sampler`) and `engines.EnginePlayer` (Stockfish).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Callable, NamedTuple, Protocol, Sequence, Union

import chess
import numpy as np


@dataclass
class GameState:
    """A game waiting on a move; `board` holds the full move stack from its start.

    The board is the arena's own: a backend must leave it as it found it (copy to modify)."""

    game_id: str
    board: chess.Board


@dataclass
class MoveChoice:
    """A backend's answer: the move (None: the player forfeits) and the illegal tries before it."""

    move: chess.Move | None
    illegal: int = 0


class Player(Protocol):
    """Anything with a `name` (its rating label) and the `backend` that moves for it."""

    name: str
    backend: Backend


class Backend(Protocol):
    """Moves for many games at once. An optional `release(game_id)` is called when a game ends."""

    def choose(self, requests: Sequence[tuple[Player, GameState]]) -> list[MoveChoice]: ...

    def close(self) -> None: ...


class Pairing(NamedTuple):
    """One game to play; `headers` go to its PGN and its results row (OpeningKey picks its opening)."""

    game_id: str
    white: Player
    black: Player
    headers: dict


Opening = Union[str, Sequence[str]]  # a FEN, or moves (UCI/SAN) from the start position


def seed_of(*parts) -> int:
    """A stable 64-bit seed from strings/ints (Python's hash() is salted per process)."""
    return int.from_bytes(hashlib.sha256("\x1f".join(map(str, parts)).encode()).digest()[:8], "little")


class PolicyBackend:
    """Runs Python policies in turn; each move's RNG is seeded by (player seed, game, ply), so a
    game replays identically whatever else is in flight and after a resume."""

    def choose(self, requests):
        choices = []
        for player, state in requests:
            rng = np.random.default_rng(seed_of(player.seed, state.game_id, state.board.ply()))
            # A shallow copy (no move stack): far cheaper than a full copy mid-game, and a policy
            # sees the position only.
            choices.append(MoveChoice(player.policy_for(state.game_id)(state.board.copy(stack=False), rng)))
        return choices

    def close(self) -> None:
        pass


_POLICY_BACKEND = PolicyBackend()  # stateless: every PolicyPlayer shares it


class PolicyPlayer:
    """A Python policy `policy(board, rng) -> chess.Move` as a player."""

    def __init__(self, name: str, policy: Callable[[chess.Board, np.random.Generator], chess.Move], *,
                 seed: int = 0):
        self.name, self.policy, self.seed = name, policy, seed
        self.backend = _POLICY_BACKEND

    def policy_for(self, game_id: str) -> Callable[[chess.Board, np.random.Generator], chess.Move]:
        return self.policy


class PerGamePolicyPlayer(PolicyPlayer):
    """One of `policies` plays the whole of each game, drawn by (seed, name, game id): with the
    experts, a random expert per game (the experts' mixture per game, where `MixturePolicy` draws
    one per move)."""

    def __init__(self, name: str, policies: Sequence[Callable[[chess.Board, np.random.Generator], chess.Move]], *,
                 seed: int = 0):
        super().__init__(name, policies[0], seed=seed)
        self.policies = list(policies)

    def policy_for(self, game_id: str):
        return self.policies[seed_of(self.seed, self.name, game_id) % len(self.policies)]


def random_policy(board: chess.Board, rng: np.random.Generator) -> chess.Move:
    """A legal move uniformly at random."""
    moves = list(board.legal_moves)
    return moves[rng.integers(len(moves))]


class ModelPlayer:
    """The model at a temperature. Every ModelPlayer sharing a `sampling.Sampler` is one backend."""

    def __init__(self, name: str, sampler, temperature: float):
        self.name, self.sampler, self.temperature = name, sampler, float(temperature)
        self.backend = sampler

    def describe(self) -> dict:
        """This player's settings as a dict (for logs and reports)."""
        return {"temperature": self.temperature, "legal": self.sampler.legal}


def close_players(players) -> None:
    """Close each distinct backend once (engine processes, sampler state)."""
    seen = {}
    for p in players:
        seen.setdefault(id(p.backend), p.backend)
    for backend in seen.values():
        backend.close()


class _OwnSampler:
    """A backend over a Sampler of its own: a game's cache slot and the sampler go with it."""

    sampler: object

    def _sample_with_logits(self, requests):
        """The Sampler's own moves for `requests`, and a function (request index, moves,
        temperature) -> the distribution over those moves from the logits that call computed."""
        from transcendence_jax.data.tokenizer import move_token
        from transcendence_jax.sampling.policy import tempered

        if self.sampler.legal != "mask":
            raise ValueError(f"{type(self).__name__} draws among the legal moves: use a Sampler with legal='mask'")
        first = self.sampler.choose(requests)
        logits_nV, threshold = self.sampler.last_logits, self.sampler.threshold

        def distribution(i: int, moves: list, temperature: float) -> np.ndarray:
            p = tempered({m: float(logits_nV[i, move_token(m)]) for m in moves}, temperature, threshold)
            return np.array([p[m] for m in moves])

        return first, distribution

    def release(self, game_id: str) -> None:
        self.sampler.release(game_id)

    def close(self) -> None:
        self.sampler.close()


class ModelVoteBackend(_OwnSampler):
    """Inference-time majority vote over one model: k moves sampled at the player's temperature,
    the most frequent played (exact ties at random). The first draw is the Sampler's own move
    (so k = 1 is the model's sampler); the other k - 1 are drawn on the host from the same
    distribution (the legal moves' softmax of the logits that call computed). Its Sampler must
    be its own: the arena calls each backend from its own thread."""

    def __init__(self, sampler, seed: int = 0):
        self.sampler, self.seed = sampler, seed

    def choose(self, requests):
        first, distribution = self._sample_with_logits(requests)
        choices = []
        for i, ((player, state), choice) in enumerate(zip(requests, first)):
            if player.votes == 1 or choice.move is None:
                choices.append(choice)
                continue
            legal = list(state.board.legal_moves)
            rng = np.random.default_rng(seed_of(self.seed, player.name, state.game_id, state.board.ply()))
            draws = rng.choice(len(legal), size=player.votes - 1, p=distribution(i, legal, player.temperature))
            counts = np.bincount(draws, minlength=len(legal))
            counts[legal.index(choice.move)] += 1
            top = np.flatnonzero(counts == counts.max())
            choices.append(MoveChoice(legal[int(top[rng.integers(len(top))])], choice.illegal))
        return choices


class ModelVotePlayer:
    """The model voting with itself: `votes` samples at `temperature` a move, the mode played."""

    def __init__(self, name: str, backend: ModelVoteBackend, votes: int, temperature: float = 1.0):
        if votes < 1:
            raise ValueError(f"{name}: votes must be >= 1, got {votes}")
        self.name, self.backend, self.votes, self.temperature = name, backend, int(votes), float(temperature)

    def describe(self) -> dict:
        return {"temperature": self.temperature, "votes": self.votes}


class QuietRandomBackend(_OwnSampler):
    """The model where a capture is legal; where none is, a uniformly random legal move (what the
    MVV-LVA experts play there). A diagnostic: it keeps what the model learned about captures,
    where the experts' knowledge and flaws lie, and takes away its arg-max's fixed choice among
    the quiet moves the experts treat as equal. Its Sampler must be its own (as ModelVoteBackend's)."""

    def __init__(self, sampler, seed: int = 0):
        self.sampler, self.seed = sampler, seed

    def choose(self, requests):
        choices = []
        for (player, state), choice in zip(requests, self.sampler.choose(requests)):
            board = state.board
            legal = list(board.legal_moves)
            if choice.move is None or any(board.is_capture(m) for m in legal):
                choices.append(choice)
                continue
            rng = np.random.default_rng(seed_of(self.seed, player.name, state.game_id, board.ply()))
            choices.append(MoveChoice(legal[int(rng.integers(len(legal)))], choice.illegal))
        return choices


class _ModelVariantPlayer:
    """The model at `temperature`, its moves altered by its backend; `variant` says how (describe)."""

    variant: dict = {}

    def __init__(self, name: str, backend, temperature: float):
        self.name, self.backend, self.temperature = name, backend, float(temperature)

    def describe(self) -> dict:
        return {"temperature": self.temperature, **self.variant}


class QuietRandomPlayer(_ModelVariantPlayer):
    """The model at `temperature` where a capture is legal, a random legal move elsewhere."""

    variant = {"quiet": "random"}


class SupportBackend(_OwnSampler):
    """The model with the moves outside a support removed: its distribution at the player's
    temperature over the legal moves `support(board)` holds, renormalized (where it holds none,
    the model's own choice). A diagnostic: with the experts' support (every move some expert may
    play) it is the model without the errors no expert makes. A first sample inside the support is
    kept, else one is drawn from the restriction: together exactly the renormalized distribution.
    Its Sampler must be its own (as ModelVoteBackend's) and mask to the legal moves."""

    def __init__(self, sampler, support: Callable[[chess.Board], set], seed: int = 0):
        self.sampler, self.support, self.seed = sampler, support, seed

    def choose(self, requests):
        first, distribution = self._sample_with_logits(requests)
        choices = []
        for i, ((player, state), choice) in enumerate(zip(requests, first)):
            support = self.support(state.board)
            allowed = [m for m in state.board.legal_moves if m in support]
            if choice.move is None or not allowed or choice.move in allowed:
                choices.append(choice)
                continue
            rng = np.random.default_rng(seed_of(self.seed, player.name, state.game_id, state.board.ply()))
            p = distribution(i, allowed, player.temperature)
            choices.append(MoveChoice(allowed[int(rng.choice(len(allowed), p=p))], choice.illegal))
        return choices


class SupportPlayer(_ModelVariantPlayer):
    """The model at `temperature` restricted to its backend's support."""

    variant = {"restricted": "support"}


class EnsembleVoteBackend:
    """An ensemble of agents voting move by move: each member model (one Sampler each) samples
    its own move at the player's temperature, the most frequent is played (ties at random)."""

    def __init__(self, samplers, seed: int = 0):
        self.samplers, self.seed = list(samplers), seed

    def choose(self, requests):
        ballots = [sampler.choose(requests) for sampler in self.samplers]
        choices = []
        for i, (player, state) in enumerate(requests):
            moves = [b[i].move for b in ballots if b[i].move is not None]
            if not moves:
                choices.append(MoveChoice(None))
                continue
            counts: dict = {}
            for move in moves:
                counts[move] = counts.get(move, 0) + 1
            top = [m for m, c in counts.items() if c == max(counts.values())]
            rng = np.random.default_rng(seed_of(self.seed, player.name, state.game_id, state.board.ply()))
            choices.append(MoveChoice(top[int(rng.integers(len(top)))]))
        return choices

    def release(self, game_id: str) -> None:
        for sampler in self.samplers:
            sampler.release(game_id)

    def close(self) -> None:
        for sampler in self.samplers:
            sampler.close()


class EnsembleVotePlayer:
    """The ensemble of per-expert models as one player."""

    def __init__(self, name: str, backend: EnsembleVoteBackend, temperature: float = 1.0):
        self.name, self.backend, self.temperature = name, backend, float(temperature)

    def describe(self) -> dict:
        return {"temperature": self.temperature, "members": len(self.backend.samplers)}
