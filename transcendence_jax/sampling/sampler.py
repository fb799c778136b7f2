"""The Sampler: the model as a batched, cached chess player (and the arena's backend for it).

One KV cache of `max_games` rows lives on the device (game id -> slot, least recently used slot
reused). A call feeds each game only the tokens its slot has not seen and samples one move per
game at its own temperature, in one jitted step (decode.py): host work per game and ply is
O(new moves). A game whose moves or board are not the ones its cache holds is prefilled afresh,
so no move is ranked on another game's history. Moves are drawn by Gumbel-max; the device ranks
the top pseudo-legal candidates and their king safety, and the host asks python-chess only about
castling and en passant (and ranks all legal moves when no candidate is legal).
- "mask" (default): always a legal move; a free draw (unmasked) that is illegal is counted in
  `unmasked_illegal`. "paper": the paper's protocol, illegal draws retried, `tries` then forfeit.
Games longer than the cache continue on a window: BOS (with the board there) and the last ~max_len/2
moves (policy.window_start).
"""

from __future__ import annotations

import collections
import dataclasses
import itertools
from typing import Sequence

import chess
import jax
import numpy as np
from flax import nnx
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from transcendence_jax.data.boards import planes_after, planes_array
from transcendence_jax.data.tokenizer import BOS, MOVE_OF_TOKEN, PAD, move_token
from transcendence_jax.legality import MAX_PIECES, num_candidates
from transcendence_jax.model import cache_chunks
from transcendence_jax.play.players import MoveChoice
from transcendence_jax.sampling.decode import decode_programs, unpack_choice
from transcendence_jax.sampling.policy import game_context, model_info, window_start
from transcendence_jax.sampling.temperature import check_temperature

LEGAL_MODES = ("mask", "paper")
_MOVE_OF = np.empty(len(MOVE_OF_TOKEN), object)  # token -> chess.Move (None: no move), for numpy indexing
_MOVE_OF[:] = MOVE_OF_TOKEN


def _mesh_of(state):
    """The multi-device mesh the parameters already live on (e.g. from checkpoint.load_model)."""
    for x in jax.tree.leaves(state):
        sh = getattr(x, "sharding", None)
        if isinstance(sh, NamedSharding) and sh.mesh.size > 1 and "data" in sh.mesh.axis_names:
            return sh.mesh
    return None


def _bucket(n: int, sizes: Sequence[int]) -> int:
    return next(s for s in sizes if s >= n)


def _placements(planes_n64: np.ndarray) -> np.ndarray:
    """[n, 7] uint64 bitboards of n boards' planes (bit s: square s): white's pieces, then each
    piece type's, as python-chess keeps them."""
    kind_n64 = np.where(planes_n64 > 6, planes_n64 - 6, planes_n64)  # 1 pawn ... 6 king, 0 empty
    masks = [(planes_n64 >= 1) & (planes_n64 <= 6)] + [kind_n64 == kind for kind in range(1, 7)]
    return np.stack([np.packbits(m, axis=1, bitorder="little").view("<u8")[:, 0] for m in masks], 1)


def _stale(boards: Sequence[chess.Board], planes_n64: np.ndarray) -> list[int]:
    """The boards whose pieces differ from the planes the cache ends on: a game id reused for
    another game that the moves did not tell apart (a new FEN with the same moves, e.g. none).
    Its moves would be ranked on the wrong board."""
    want = np.array([(b.occupied_co[chess.WHITE], b.pawns, b.knights, b.bishops, b.rooks, b.queens, b.kings)
                     for b in boards], np.uint64)
    return np.flatnonzero((_placements(planes_n64) != want).any(1)).tolist()


@dataclasses.dataclass
class _Slot:
    game_id: str | None = None
    start: int = 0    # moves of the game before the window (0 unless the game outgrew max_len)
    end: int = -1     # the game position (moves played) of the last token in the cache; -1: empty
    moves: list = dataclasses.field(default_factory=list)  # the game's moves start..end-1, as fed
    planes: bytes | None = None       # the board planes at position `end`
    last_used: int = -1


class Sampler:
    """Batched, cached move sampler; also the arena backend of every ModelPlayer that shares it."""

    def __init__(self, model, *, max_games: int, max_len: int | None = None, legal: str = "mask",
                 threshold: float = 1e-3, tries: int = 5, seed: int = 0, mesh=None,
                 batch_buckets: Sequence[int] | None = None, top_k: int = 8):
        if legal not in LEGAL_MODES:
            raise ValueError(f"legal={legal!r}: expected one of {LEGAL_MODES}")
        self.vocab_size, model_len, self.board_input = model_info(model)
        n_candidates = num_candidates(self.vocab_size)  # the device ranks top_k of these a position
        if not 1 <= top_k <= n_candidates:
            raise ValueError(f"top_k={top_k}: expected 1..{n_candidates} (the moves ranked on the device per position)")
        self.max_len = min(max_len or model_len, model_len)
        self.legal, self.threshold, self.tries = legal, float(threshold), int(tries)
        graphdef, state = nnx.split(model)
        mesh = mesh or _mesh_of(state)
        shards = 1 if mesh is None else mesh.shape["data"]
        self.max_games = -(-max_games // shards) * shards
        # Powers of four, and half the slots (an arena asks about half its games each round).
        sizes = batch_buckets or [4 ** i for i in range(12)] + [max(1, self.max_games // 2)]
        self.batch_buckets = sorted({min(self.max_games, -(-s // shards) * shards) for s in sizes} | {self.max_games})
        self.len_buckets = sorted({min(self.max_len, 2 ** i) for i in range(16)})
        self.attend_buckets = np.cumsum(cache_chunks(self.max_len)).tolist()
        cache = model.init_cache(self.max_games, self.max_len)  # every leaf: games on axis 0
        self._mesh = mesh
        if mesh is not None:
            replicated, by_game = NamedSharding(mesh, P()), NamedSharding(mesh, P("data"))
            on_mesh = lambda x: isinstance(getattr(x, "sharding", None), NamedSharding) and x.sharding.mesh == mesh
            state = jax.tree.map(lambda x: x if on_mesh(x) else jax.device_put(x, replicated), state)
            cache = jax.tree.map(lambda x: jax.device_put(x, by_game), cache)
        self._state, self._cache = state, cache
        self._steps = decode_programs(model, graphdef, threshold=self.threshold,
                                      free_draws=self.tries if legal == "paper" else 1,
                                      top_k=top_k if legal == "mask" else 0, mesh=mesh)
        self._key = jax.random.key(seed)
        self._slots = [_Slot() for _ in range(self.max_games)]
        self._slot_of: dict[str, int] = {}
        self._clock = 0
        self.illegal = collections.Counter()           # game_id -> real illegal tries (paper mode)
        self.unmasked_illegal = collections.Counter()  # game_id -> moves whose free draw was illegal
        self.sampled = collections.Counter()           # game_id -> moves the model was asked for
        self.calls = 0
        self.fallbacks = 0  # moves chosen from python-chess's legal moves (no legal top_k candidate)
        # The last call's rounds, each (logits [B, V] on the device, its requests' batch rows), and
        # the request each row is (None: one round, in request order).
        self._last = None

    @property
    def last_logits(self) -> np.ndarray | None:
        """[n, V] logits of the last call's requests, every round's, in request order (fetched on
        demand); None after a call with no requests or one refused."""
        if self._last is None:
            return None
        rounds, order = self._last
        by_round_nV = np.concatenate([np.asarray(logits_BV)[rows] for logits_BV, rows in rounds])
        if order is None:
            return by_round_nV
        logits_nV = np.empty_like(by_round_nV)
        logits_nV[order] = by_round_nV  # row j is request order[j]
        return logits_nV

    @property
    def cache(self):
        """The KV cache on the device (model.KVCache: every leaf [max_games, ...], games on the mesh's data axis)."""
        return self._cache

    def reseed(self, seed: int) -> None:
        """Draw the noise of the next calls from `seed` (a UCI engine's Seed option)."""
        self._key = jax.random.key(seed)

    def decode(self, args: Sequence, call: int, attend_len: int, *, in_place: bool) -> tuple:
        """Run one decode step and keep its cache: args are the host inputs (games_B5, tokens_BT,
        boards_BT64 | None, planes_B64; see _inputs), `call` numbers the noise, attend_len (one of
        attend_buckets) bounds the cache positions read, in_place: the batch is every slot in slot
        order. Returns (logits_BV, choice, scored) on the device (decode.py). The step every call
        runs; benchmarks time it."""
        step = self._steps["all" if in_place else "rows"]
        self._cache, logits_BV, choice, scored = step(self._state, self._cache, *args, self._key,
                                                      np.int32(call), attend_len)
        return logits_BV, choice, scored

    # -- slots --
    def release(self, game_id: str) -> None:
        """Forget a game (its slot becomes free at once)."""
        i = self._slot_of.pop(game_id, None)
        if i is not None:
            self._slots[i] = _Slot()

    def _assign(self, game_ids: list[str], busy: set[int]) -> None:
        """Give each new game the least recently used slot outside `busy` (the call's own games)."""
        free = sorted((j for j in range(self.max_games) if j not in busy), key=lambda j: self._slots[j].last_used)
        for game_id, i in zip(game_ids, free):
            old = self._slots[i].game_id
            if old is not None:
                del self._slot_of[old]
            self._slots[i] = _Slot(game_id)
            self._slot_of[game_id] = i

    def _plan(self, slot: _Slot, board: chess.Board):
        """(cache position, tokens, planes: T x 64 bytes) to feed so the slot holds the game up to
        `board`; the slot then records the game's position, moves and current planes."""
        stack = board.move_stack
        n, end = len(stack), slot.end
        start = window_start(n, slot.start, self.max_len)
        # The cache is still valid if the game extends every move it holds (a takeback, another
        # move order or a reused id refills; the caller then compares the board it ends on with
        # the game's, _stale). The list compare tests identity first, in C: the slot keeps the
        # board's own Move objects, so checking a game that only grew is cheap.
        ok = (start == slot.start and start <= end <= n and slot.planes is not None
              and stack[start:end] == slot.moves)
        if not ok:  # refill on a window of the game as it is now (a takeback may end before the old start)
            start = window_start(n, 0, self.max_len)
            tokens, planes = game_context(board, start, start)
            first, slot.moves = start, stack[start:]
        elif end == n:  # unchanged: re-feed the last token for its logits
            tokens, planes, first = [BOS if n == start else move_token(stack[n - 1])], [slot.planes], n
        else:
            new = stack[end:]
            tokens, planes, first = [move_token(m) for m in new], planes_after(slot.planes, new), end + 1
            slot.moves.extend(new)
        slot.start, slot.end, slot.planes = start, n, planes[-1]
        return first - start, tokens, planes

    def _inputs(self, requests, plans, rows, slots, B: int) -> list:
        """The decode step's [B, ...] host arrays (games_B5, tokens, board planes of the new
        tokens, planes now): request i's in batch row rows[i] (its cache slot slots[i])."""
        n, T = len(requests), _bucket(max(len(t) for _, t, _ in plans), self.len_buckets)
        tokens_BT = np.full((B, T), PAD, np.int32)
        boards_BT64 = np.zeros((B, T, 64), np.uint8) if self.board_input else None
        planes_B64 = np.zeros((B, 64), np.uint8)
        # Rows nobody asks for: no slot, and a cache position past the end (their writes are dropped).
        idle_5 = np.array([self.max_games, self.max_len, 0, 1, np.float32(1.0).view(np.int32)], np.int32)
        games_B5 = np.tile(idle_5, (B, 1))
        # Each request's tokens go to its batch row b, columns 0..len-1: one scatter for all.
        b_n, len_n = np.asarray(rows, np.intp), np.fromiter((len(t) for _, t, _ in plans), np.intp, n)
        ends_n = np.cumsum(len_n)
        b_x, col_x = np.repeat(b_n, len_n), np.arange(ends_n[-1]) - np.repeat(ends_n - len_n, len_n)
        tokens_BT[b_x, col_x] = np.fromiter(itertools.chain.from_iterable(t for _, t, _ in plans), np.int32)
        planes_x64 = planes_array(itertools.chain.from_iterable(p for _, _, p in plans))
        if boards_BT64 is not None:
            boards_BT64[b_x, col_x] = planes_x64
        planes_B64[b_n] = planes_x64[ends_n - 1]
        games_B5[b_n, 0], games_B5[b_n, 1], games_B5[b_n, 2] = slots, [p for p, _, _ in plans], len_n - 1
        games_B5[b_n, 3] = [board.turn for _, board, _ in requests]
        games_B5[b_n, 4] = np.array([t for _, _, t in requests], np.float32).view(np.int32)
        args = [games_B5, tokens_BT, boards_BT64, planes_B64]
        if self._mesh is not None:
            args = [None if a is None else jax.device_put(a, NamedSharding(self._mesh, P("data"))) for a in args]
        return args

    # -- sampling --
    def sample(self, requests: Sequence[tuple[str, chess.Board, float]]) -> list[MoveChoice]:
        """One move for each (game_id, board, temperature): one decode call per max_games games
        (none for no requests). A temperature is a number >= 0: 0 (or up to `threshold`) is the
        arg-max, inf uniform over the legal moves. A board with no legal move (a finished game) gets
        MoveChoice(None) and counts in none of the per-game counters: a caller may leave it to
        the sampler to find the end (found only when no ranked move is legal: no cost per call)."""
        self._last = None  # until this call's moves are chosen
        if not requests:
            return []
        for gid, board, temperature in requests:
            check_temperature(temperature, f"game {gid}: temperature")
            # The device ranks the moves of up to 16 pieces (moves.candidates).
            if chess.popcount(board.occupied_co[board.turn]) > MAX_PIECES:
                raise ValueError(f"game {gid}: {board.fen()} has more than {MAX_PIECES} pieces of the side to move; "
                                 "not a chess position")
        if len(requests) <= self.max_games and len({gid for gid, _, _ in requests}) == len(requests):
            choices, last = self._sample_batch(requests)  # the usual call: one batch
            self._last = [last], None
            return choices
        out: list[MoveChoice | None] = [None] * len(requests)
        pending, rounds, order = list(range(len(requests))), [], []
        while pending:  # a game asked twice in one call, or more games than slots: several rounds
            seen, batch, rest = set(), [], []
            for i in pending:
                gid = requests[i][0]
                (rest if gid in seen or len(batch) == self.max_games else batch).append(i)
                seen.add(gid)
            choices, last = self._sample_batch([requests[i] for i in batch])
            for i, choice in zip(batch, choices):
                out[i] = choice
            rounds.append(last)
            order += batch
            pending = rest
        self._last = rounds, order
        return out

    def _sample_batch(self, requests) -> tuple[list[MoveChoice], tuple]:
        """The moves of distinct games, at most max_games, and (logits_BV, their batch rows)."""
        self._clock += 1
        self.calls += 1
        n, N = len(requests), self.max_games
        slot_of = self._slot_of
        new = [g for g, _, _ in requests if g not in slot_of]
        if new:
            self._assign(new, {slot_of[g] for g, _, _ in requests if g in slot_of})
        slots, plans = [], []
        for gid, board, _ in requests:
            i = slot_of[gid]
            slot = self._slots[i]
            slot.last_used = self._clock
            slots.append(i)
            plans.append(self._plan(slot, board))
        for j in _stale([board for _, board, _ in requests], planes_array(p[-1] for _, _, p in plans)):
            self._slots[slots[j]] = slot = _Slot(requests[j][0], last_used=self._clock)  # start afresh
            plans[j] = self._plan(slot, requests[j][1])
        in_place = 4 * n > 3 * N  # most slots ask: the batch is the whole cache in slot order
        rows = slots if in_place else range(n)
        args = self._inputs(requests, plans, rows, slots, N if in_place else _bucket(n, self.batch_buckets))
        # Read only the cache chunks the longest game needs (one compile per chunk count).
        attend_len = _bucket(max(p + len(t) for p, t, _ in plans), self.attend_buckets)
        logits_BV, choice, scored = self.decode(args, self.calls, attend_len, in_place=in_place)
        rows = np.asarray(list(rows), np.int32)
        if self.legal == "mask":
            moves, unmasked, over = self._masked_moves(requests, rows, np.asarray(choice)[rows], scored)
            illegal = [0] * n
        else:
            moves, unmasked, illegal, over = [], [], [], set()
            for i, ((_, board, _), draws) in enumerate(zip(requests, np.asarray(choice)[:, rows].T.tolist())):
                tries = [MOVE_OF_TOKEN[t] for t in draws]  # [K, B] tokens
                unmasked.append(not board.is_legal(tries[0]))
                illegal.append(next((k for k, m in enumerate(tries) if board.is_legal(m)), len(tries)))
                if illegal[-1] == len(tries) and not any(board.generate_legal_moves()):
                    over.add(i)  # no legal move: not a forfeit, nothing to count
                    unmasked[-1], illegal[-1] = False, 0
                moves.append(tries[illegal[-1]] if illegal[-1] < len(tries) and i not in over else None)
        gids = [gid for i, (gid, _, _) in enumerate(requests) if i not in over]  # distinct within a batch
        self.sampled.update(gids)
        self.unmasked_illegal.update(gid for gid, u in zip((g for g, _, _ in requests), unmasked) if u)
        self.illegal.update({gid: k for (gid, _, _), k in zip(requests, illegal) if k})
        return [MoveChoice(move, k) for move, k in zip(moves, illegal)], (logits_BV, rows)

    def _masked_moves(self, requests, rows, choice_nX, scored):
        """Mask mode's moves, unmasked-illegal flags, and the requests with no legal move. The
        candidates are the pseudo-legal moves by Gumbel score: the first legal one is a draw from
        the distribution renormalised over the legal moves. The unmasked draw (the best score over
        all moves: the last column of choice_nX, _choose's array) is the first candidate or an
        illegal move, so one legality test a move serves both. Most games take their first
        candidate, legal on the device's word: those are read off in numpy."""
        top, vals, legal, free = unpack_choice(choice_nX)
        first_ok = (legal[:, 0] == 1) & (vals[:, 0] > -np.inf)
        moves = _MOVE_OF[top[:, 0]].tolist()
        unmasked = (~first_ok | (free != vals[:, 0])).tolist()
        fallback, over = [], set()  # the candidates' scores, fetched only when some game needs them
        for i in np.flatnonzero(~first_ok).tolist():
            board, move, first = requests[i][1], None, False
            for k, (t, v, ok) in enumerate(zip(top[i].tolist(), vals[i].tolist(), legal[i].tolist())):
                if v == -np.inf:
                    break
                if ok == 1 or (ok == 2 and board.is_legal(MOVE_OF_TOKEN[t])):
                    move, first = MOVE_OF_TOKEN[t], k == 0
                    break
            unmasked[i] = not (first and free[i] == vals[i, 0])
            if move is None:  # no legal move among the candidates: rank all legal moves
                if not fallback:
                    fallback.extend(np.asarray(x) for x in scored)
                score_V = np.full(self.vocab_size, -np.inf, np.float32)
                score_V[fallback[0][rows[i]]] = fallback[1][rows[i]]  # padding entries (token 0): no move
                legal_moves = list(board.legal_moves)
                if legal_moves:
                    self.fallbacks += 1
                    move = legal_moves[int(np.argmax(score_V[[move_token(m) for m in legal_moves]]))]
                else:  # the game is over: no move, nothing to count
                    over.add(i)
                    unmasked[i] = False
            moves[i] = move
        return moves, unmasked, over

    # -- arena backend (interface F) --
    def choose(self, requests) -> list[MoveChoice]:
        return self.sample([(state.game_id, state.board, player.temperature) for player, state in requests])

    def close(self) -> None:
        self._slots = [_Slot() for _ in range(self.max_games)]
        self._slot_of.clear()

