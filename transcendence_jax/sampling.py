"""The model as a chess player: a jitted, batched temperature sampler over the KV cache.

Design. One cache of `max_games` rows lives on the device (game_id -> slot). A call feeds each
waiting game only the tokens its slot has not seen (the moves since its last call, at cache
position pos_B) and samples one move per game at its own temperature (a traced array: no
recompile for a new temperature). The slots are indexed inside the jitted step and the cache is
donated, so only the new tokens' keys/values are written, in place: when most slots ask, the
batch is the whole cache in slot order (idle rows write past the end: dropped); otherwise the
asking rows are read by index; either way only the cache chunks the longest game needs are read
(model.cache_chunks). Compiles are bounded by (#batch buckets x #length buckets x #chunks). A
game that has not asked for a while loses its slot to a new one (least recently used) and is
prefilled again when it comes back. Host work per game and ply is O(new moves): the new tokens
come from a token table, the board planes from the previous planes plus the move. A game whose
moves are not the ones its cache holds (all of the window's are compared, in C, by identity
first: a few ns a move) or whose board is not the one its cache ends on (a game id reused for
another position: all games' pieces are compared at once) is prefilled afresh, so no move is
ranked on another game's history or board.

Legal moves, by Gumbel-max: every move token's score is logit / tau + Gumbel noise (no noise at
tau <= threshold: the arg-max; at tau = inf the noise alone: uniform), and the highest-scoring
legal move is an exact sample of the distribution renormalised over the legal moves. The
device ranks the top `top_k` moves among a superset of the legal ones (moves.candidates, from
the board planes: the own pieces' moves by their geometry, a clear path, pawn rules) and tells
which of them leave their king safe (moves.king_safe); the host takes the first legal one
(asking python-chess only about castling and en passant); only when none of them is does it
generate the legal moves (the same scores: still exact). No mask is built and no [B, V] array
crosses to the device per step.
- "mask" (default): the model always plays a legal move; MoveChoice.illegal is 0. The free
  draw (the top score over all move tokens) is what the model would have played unmasked:
  when it is illegal it is counted in `unmasked_illegal` (per game), not booked as a try.
- "paper": the paper's protocol: independent free draws, an illegal one is drawn again, and
  after `tries` illegal draws the model forfeits (MoveChoice(None, tries)); MoveChoice.illegal
  is the number of real illegal tries. All the draws are made in the one decode call.

Games longer than the cache (max_len tokens) continue on a window: BOS (with the board at the
window start when the model reads boards) followed by the last ~max_len/2 moves, an even
number of moves dropped so the side to move keeps its parity.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import itertools
import weakref
from typing import Sequence

import chess
import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from transcendence_jax.data.boards import board_planes, planes_after, planes_array
from transcendence_jax.data.tokenizer import BOS, MOVE_OF_TOKEN, NUM_SPECIAL, PAD, VOCAB_SIZE, move_token, token_to_move
from transcendence_jax.legality import MAX_PIECES, candidates, king_safe, num_candidates
from transcendence_jax.model import cache_chunks
from transcendence_jax.play.players import MoveChoice

LEGAL_MODES = ("mask", "paper")
_MOVE_OF = np.empty(len(MOVE_OF_TOKEN), object)  # token -> chess.Move (None: no move), for numpy indexing
_MOVE_OF[:] = MOVE_OF_TOKEN


# --- pure, jitted pieces --------------------------------------------------------------

def _threefry_2x32(k0, k1, x0, x1):
    """JAX's threefry_2x32 (20 rounds; the same bits, tested), unrolled into one elementwise
    loop: XLA:CPU runs JAX's own lowering as a rolled loop over whole arrays (~2 ms a step more)."""
    rotl = lambda x, d: (x << np.uint32(d)) | (x >> np.uint32(32 - d))
    ks = (k0, k1, k0 ^ k1 ^ np.uint32(0x1BD11BDA))
    x0, x1 = x0 + ks[0], x1 + ks[1]
    for i in range(5):
        for r in ((13, 15, 26, 6), (17, 29, 16, 24))[i % 2]:
            x0 = x0 + x1
            x1 = rotl(x1, r) ^ x0
        x0, x1 = x0 + ks[(i + 1) % 3], x1 + ks[(i + 2) % 3] + np.uint32(i + 1)
    return x0, x1


def _gumbel(key, shape):
    """Standard Gumbel noise: threefry bits of the element counters, 23-bit uniforms, -log(-log u)."""
    k0, k1 = jax.random.key_data(key).reshape(-1)[:2]
    n = int(np.prod(shape))
    counter = jax.lax.iota(jnp.uint32, (n + 1) // 2)
    bits = jnp.concatenate(_threefry_2x32(k0, k1, counter, counter + np.uint32((n + 1) // 2)))[:n]
    u = jax.lax.bitcast_convert_type((bits >> np.uint32(9)) | np.uint32(0x3F800000), jnp.float32) - 1.0
    return -jnp.log(-jnp.log(jnp.maximum(u, np.float32(2.0 ** -24)))).reshape(shape)  # u > 0: finite noise


def _choose(logits_BV, planes_B64, white_B, temps_B, key, *, threshold, top_k, free_draws):
    """Gumbel-max over move tokens (scores logit / tau + Gumbel noise; no noise at tau <=
    threshold). Paper mode (top_k 0): (free draws [K, B], None). Mask mode: ([B, 3 top_k + 1]
    int32: the top_k pseudo-legal moves best first, their scores, their legality (1 legal, 0
    not, 2 castling or en passant: python-chess decides) and the free draw's score, floats as
    their bits: one array for the host to fetch; and the scored candidates (tokens, scores
    [B, N]) for the host's fallback).
    In mask mode only the own pieces' moves are scored (moves.candidates; every legal move is
    among them); the other move tokens, never legal, matter only to the free draw, through
    their best score: their maximum (cold), or logsumexp + one Gumbel (hot: the maximum of
    independent Gumbels). The free draw is compared by score with the first candidate (its
    arg-max costs 8x a max on XLA:CPU)."""
    V = logits_BV.shape[-1]
    cold_B = temps_B <= threshold
    scaled_BV = logits_BV / jnp.where(cold_B, 1.0, temps_B)[:, None]
    vocab_V = jnp.arange(V)
    scaled_BV = jnp.where((vocab_V >= NUM_SPECIAL) & (vocab_V < VOCAB_SIZE), scaled_BV, -jnp.inf)
    if not top_k:
        noise_KBV = _gumbel(key, (free_draws, *logits_BV.shape))
        scores_KBV = scaled_BV + jnp.where(cold_B[:, None], 0.0, noise_KBV)
        return jnp.argmax(scores_KBV, axis=-1).astype(jnp.int32), None
    tokens_BN, pseudo_BN = candidates(planes_B64, white_B, V)
    B, N = tokens_BN.shape
    noise_BN = _gumbel(key, (B, N + 1))  # the last column: the other tokens' Gumbel
    scaled_BN = jnp.where(tokens_BN > 0, jnp.take_along_axis(scaled_BV, tokens_BN, axis=1), -jnp.inf)
    scores_BN = scaled_BN + jnp.where(cold_B[:, None], 0.0, noise_BN[:, :N])
    top_vals_BK, j_BK = jax.lax.top_k(jnp.where(pseudo_BN, scores_BN, -jnp.inf), top_k)
    top_BK = jnp.take_along_axis(tokens_BN, j_BK, axis=1)
    # The other tokens' mass: all minus the candidates' (a float32 difference: a share under
    # ~1e-7 of the total reads as none, and that free draw as legal).
    max_B = scaled_BV.max(-1)
    rest_B = (jnp.exp(scaled_BV - max_B[:, None]).sum(-1) - jnp.exp(scaled_BN - max_B[:, None]).sum(-1))
    rest_best_B = jnp.where(rest_B > 0, max_B + jnp.log(jnp.maximum(rest_B, 1e-30)) + noise_BN[:, N], -jnp.inf)
    free_B = jnp.maximum(scores_BN.max(-1), jnp.where(cold_B, max_B, rest_best_B))
    safe_BK, special_BK = king_safe(planes_B64, white_B, top_BK)
    legal_BK = jnp.where(special_BK, 2, safe_BK).astype(jnp.int32)
    bits = lambda x: jax.lax.bitcast_convert_type(x, jnp.int32)
    return jnp.concatenate([top_BK, bits(top_vals_BK), legal_BK, bits(free_B)[:, None]], 1), (tokens_BN, scores_BN)


def _unpack_choice(choice_BX: np.ndarray):
    """(top_k moves, their scores, their legality, the free draw's score) from _choose's array."""
    K = (choice_BX.shape[1] - 1) // 3
    return (choice_BX[:, :K], choice_BX[:, K:2 * K].view(np.float32), choice_BX[:, 2 * K:3 * K],
            choice_BX[:, 3 * K].view(np.float32))


def _decode_step(state, cache, games_B5, tokens_BT, boards_BT64, planes_B64, key, call, attend_len, *,
                 graphdef, threshold, top_k, free_draws, in_place):
    """Extend the games' cache rows by their new tokens and rank moves for each row (the noise
    of call number `call` of a sampler seeded with `key`: no key split dispatched on the host).
    games_B5: each row's cache slot, cache position, last new token, side to move (1 white) and
    temperature (its float32 bits): one array, so one transfer (each costs ~0.1 ms on a GPU).
    in_place: the batch is every slot in slot order (no slot column read)."""
    key = jax.random.fold_in(key, call)
    rows_B = None if in_place else games_B5[:, 0]
    pos_B, last_B, white_B = games_B5[:, 1], games_B5[:, 2], games_B5[:, 3] > 0
    temps_B = jax.lax.bitcast_convert_type(games_B5[:, 4], jnp.float32)
    model = nnx.merge(graphdef, state)
    logits_B1V, cache = model.extend(tokens_BT, boards_BT64, cache, pos_B, rows_B, last_B, attend_len)
    logits_BV = logits_B1V[:, 0].astype(jnp.float32)
    return cache, logits_BV, *_choose(logits_BV, planes_B64, white_B, temps_B, key, threshold=threshold,
                                      top_k=top_k, free_draws=free_draws)


@functools.partial(jax.jit, static_argnames=("threshold",))
def _masked_draw(logits_BV, legal_BV, temps_B, key, threshold):
    """One legal token per row at its temperature; tau <= threshold is the exact arg-max. The
    logits are divided before the mask: at tau = inf they are all 0 (uniform), where -inf / inf
    would be NaN."""
    greedy_B = jnp.argmax(jnp.where(legal_BV, logits_BV, -jnp.inf), axis=-1)
    scaled_BV = jnp.where(legal_BV, logits_BV / jnp.maximum(temps_B, threshold)[:, None], -jnp.inf)
    drawn_B = jax.random.categorical(key, scaled_BV, axis=-1)
    return jnp.where(temps_B <= threshold, greedy_B, drawn_B).astype(jnp.int32)


def _forward_logits(state, tokens_BT, boards_BT64, last_B, *, graphdef):
    """Full causal recompute over the (right-padded) prefix: the logits after the last token."""
    logits_BTV = nnx.merge(graphdef, state)(tokens_BT, boards_BT64)
    return jnp.take_along_axis(logits_BTV, last_B[:, None, None], axis=1)[:, 0].astype(jnp.float32)


_forward_jits: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def _forward(model):
    """(jitted full forward, params) of a model; one compiled function per model (its GraphDef
    holds the config, which is not hashable, so it is closed over rather than static)."""
    graphdef, state = nnx.split(model)
    fn = _forward_jits.get(model)
    if fn is None:
        fn = _forward_jits[model] = jax.jit(functools.partial(_forward_logits, graphdef=graphdef))
    return fn, state


# --- host side --------------------------------------------------------------------------

def model_info(model) -> tuple[int, int, bool]:
    """(vocab_size, max_len, board_input) of a Transformer, read from its config."""
    cfg = model.cfg
    return int(cfg.vocab_size), int(cfg.max_len), bool(cfg.get("board_input", False))


def _mesh_of(state):
    """The multi-device mesh the parameters already live on (e.g. from checkpoint.load_model)."""
    for x in jax.tree.leaves(state):
        sh = getattr(x, "sharding", None)
        if isinstance(sh, NamedSharding) and sh.mesh.size > 1 and "data" in sh.mesh.axis_names:
            return sh.mesh
    return None


def _bucket(n: int, sizes: Sequence[int]) -> int:
    return next(s for s in sizes if s >= n)


def _window_start(num_moves: int, start: int, max_len: int) -> int:
    """Moves dropped from the front so BOS + the rest fits in max_len (even: parity kept)."""
    if 1 + num_moves - start <= max_len:
        return start
    start = num_moves - max(1, max_len // 2 - 1)
    return start + (start % 2)


def _context(board: chess.Board, first: int, start: int):
    """Tokens and board planes (bytes) of the positions first..n of `board`'s game, where
    position i is the one after i moves and position `start` is fed as BOS (a refill: the planes
    start from the board at `first`, reached by popping moves off `board`, which ends as it began)."""
    stack = board.move_stack
    n = len(stack)
    tokens = [BOS if i == start else move_token(stack[i - 1]) for i in range(first, n + 1)]
    popped = [board.pop() for _ in range(n - first)]
    try:
        before = board_planes(board).tobytes()
    finally:
        for move in reversed(popped):
            board.push(move)
    return tokens, [before] + planes_after(before, stack[first:])


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


_step_cache: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()  # model -> settings -> programs


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
        # Two programs: the asking rows read by index, and every slot in place (most games waiting),
        # shared by every Sampler of this model with these settings (their compiles are reused).
        settings = (self.threshold, self.tries if legal == "paper" else 1, top_k if legal == "mask" else 0, mesh)
        self._steps = _step_cache.setdefault(model, {}).get(settings)
        if self._steps is None:
            step = functools.partial(_decode_step, graphdef=graphdef, threshold=self.threshold,
                                     free_draws=settings[1], top_k=settings[2])
            self._steps = _step_cache[model][settings] = {
                name: jax.jit(functools.partial(step, in_place=name == "all"), donate_argnums=1, static_argnums=8)
                for name in ("rows", "all")}
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
        start = _window_start(n, slot.start, self.max_len)
        # The cache is still valid if the game extends every move it holds (a takeback, another
        # move order or a reused id refills; the caller then compares the board it ends on with
        # the game's, _stale). The list compare tests identity first, in C: the slot keeps the
        # board's own Move objects, so a game that only grew costs a few ns a move (~0.2 ms a
        # ply for 256 games of ~115 moves).
        ok = (start == slot.start and start <= end <= n and slot.planes is not None
              and stack[start:end] == slot.moves)
        if not ok:  # refill on a window of the game as it is now (a takeback may end before the old start)
            start = _window_start(n, 0, self.max_len)
            tokens, planes = _context(board, start, start)
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
        games_B5 = np.tile(np.array([self.max_games, self.max_len, 0, 1, np.float32(1.0).view(np.int32)], np.int32), (B, 1))
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
            if not temperature >= 0:  # NaN too
                raise ValueError(f"game {gid}: temperature {temperature!r} is not a number >= 0 "
                                 "(0: the arg-max, inf: uniform over the legal moves)")
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
        step = self._steps["all" if in_place else "rows"]
        # Read only the cache chunks the longest game needs (one compile per chunk count).
        attend_len = _bucket(max(p + len(t) for p, t, _ in plans), self.attend_buckets)
        self._cache, logits_BV, choice, scored = step(self._state, self._cache, *args, self._key,
                                                      np.int32(self.calls), attend_len)
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
        illegal move, so one legality test a move serves both. Most games take their first candidate, legal on the device's
        word: those are read off in numpy."""
        top, vals, legal, free = _unpack_choice(choice_nX)
        first_ok = (legal[:, 0] == 1) & (vals[:, 0] > -np.inf)
        moves = _MOVE_OF[top[:, 0]].tolist()
        unmasked = (~first_ok | (free != vals[:, 0])).tolist()
        fallback, over = [], set()  # the candidates' scores, fetched only when some game needs them
        for i in np.flatnonzero(~first_ok).tolist():
            board, move, k = requests[i][1], None, 0
            for k, (t, v, ok) in enumerate(zip(top[i].tolist(), vals[i].tolist(), legal[i].tolist())):
                if v == -np.inf:
                    break
                if ok == 1 or (ok == 2 and board.is_legal(MOVE_OF_TOKEN[t])):
                    move = MOVE_OF_TOKEN[t]
                    break
            unmasked[i] = not (move is not None and k == 0 and free[i] == vals[i, 0])
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


# --- simple API: a batch of positions, no persistent cache --------------------------------

def _positions(model, boards: Sequence[chess.Board]):
    """Right-padded full-game inputs of each board: (tokens_BT, boards_BT64 | None, last_B, legal)."""
    vocab, max_len, board_input = model_info(model)
    contexts = []
    for board in boards:
        start = _window_start(len(board.move_stack), 0, max_len)
        contexts.append(_context(board, start, start))
    B = 1 << max(0, (len(boards) - 1).bit_length())  # padded to a power of two: few compiles
    T = min(1 << max(0, (max(len(t) for t, _ in contexts) - 1).bit_length()), max_len)
    tokens_BT = np.full((B, T), PAD, np.int32)
    boards_BT64 = np.zeros((B, T, 64), np.uint8) if board_input else None
    last_B = np.zeros(B, np.int32)
    for b, (toks, planes) in enumerate(contexts):
        tokens_BT[b, :len(toks)] = toks
        last_B[b] = len(toks) - 1
        if board_input:
            boards_BT64[b, :len(toks)] = planes_array(planes)
    legal_BV = np.zeros((B, vocab), bool)
    legal_BV[len(boards):, NUM_SPECIAL] = True
    for b, board in enumerate(boards):
        legal_BV[b, [move_token(m) for m in board.legal_moves]] = True
    return tokens_BT, boards_BT64, last_B, legal_BV


def position_logits(model, boards: Sequence[chess.Board]) -> np.ndarray:
    """The model's next-move logits [B, V] for each board, by a full forward over its game."""
    forward, state = _forward(model)
    tokens_BT, boards_BT64, last_B, _ = _positions(model, boards)
    return np.asarray(forward(state, tokens_BT, boards_BT64, last_B))[:len(boards)]


def sample_moves(model, boards: Sequence[chess.Board], temperatures, key, *,
                 threshold: float = 1e-3) -> list[chess.Move | None]:
    """One legal move for each board (its whole move stack is the prompt), each at its own
    temperature; tau <= threshold is the arg-max over the legal moves, tau = inf uniform over
    them. None for a board with no legal move (the game is over)."""
    temps_n = np.broadcast_to(np.asarray(temperatures, np.float32), (len(boards),))
    if not (temps_n >= 0).all():  # NaN too
        raise ValueError(f"temperatures {temperatures!r}: each must be a number >= 0 (0: the arg-max, inf: uniform)")
    forward, state = _forward(model)
    tokens_BT, boards_BT64, last_B, legal_BV = _positions(model, boards)
    logits_BV = forward(state, tokens_BT, boards_BT64, last_B)
    temps_B = np.ones(len(legal_BV), np.float32)
    temps_B[:len(boards)] = temps_n
    choice_B = _masked_draw(logits_BV, legal_BV, temps_B, key, threshold=threshold)
    return [token_to_move(t) if legal_V.any() else None
            for t, legal_V in zip(np.asarray(choice_B).tolist(), legal_BV[:len(boards)])]


def tempered(logits: dict, temperature: float, threshold: float = 1e-3) -> dict:
    """softmax(logit / tau) over the given moves' logits; tau <= threshold is the arg-max, as in
    the sampler, and tau = inf uniform. No moves (a finished game): {}."""
    if not temperature >= 0:  # NaN too
        raise ValueError(f"temperature {temperature!r}: expected a number >= 0 (0: the arg-max, inf: uniform)")
    moves = list(logits)
    if not moves:
        return {}
    x = np.array([logits[m] for m in moves], np.float64)
    if temperature <= threshold:
        p = (np.arange(len(x)) == np.argmax(x)).astype(np.float64)
    else:
        p = np.exp((x - x.max()) / temperature)
        p /= p.sum()
    return dict(zip(moves, p.tolist()))


def move_probabilities(model, board: chess.Board, temperature: float = 1.0, *,
                       threshold: float = 1e-3) -> dict[chess.Move, float]:
    """The model's distribution over the legal moves of `board` at `temperature`."""
    logits = position_logits(model, [board])[0]
    return tempered({m: float(logits[move_token(m)]) for m in board.legal_moves}, temperature, threshold)
