"""The model as a chess player: a jitted, batched temperature sampler over the KV cache.

Design. One cache of `max_games` slots lives on the device (game_id -> slot). A call gathers
the slots of the games waiting on the model into a batch padded to a bucket size (1, 4, 16,
64, 256, ...), feeds each game only the tokens its slot has not seen (the moves since its last
call, at cache position pos_B), samples one move per game at its own temperature (a traced
array: no recompile for a new temperature), and scatters the rows back into the cache. Idle
games cost nothing, and compiles are bounded by (#batch buckets x #length buckets). A game
that has not asked for a while loses its slot to a new one (least recently used) and is simply
prefilled again when it comes back.

Legal moves. "mask" (default): the distribution is renormalised over the legal moves of each
game (a host-built boolean mask, one array per step); a free draw over all move tokens is made
alongside and counted as illegal when it is, so the illegal-move rate is reported either way.
"paper": the paper's protocol: draw freely over the move tokens, an illegal draw is drawn
again, and after `tries` illegal draws the model forfeits (MoveChoice(None)). The draws are
independent samples of one distribution, so they are all made in the one decode call.

Games longer than the cache (max_len tokens) continue on a window: BOS (with the board at the
window start when the model reads boards) followed by the last ~max_len/2 moves, an even
number of moves dropped so the side to move keeps its parity.
"""

from __future__ import annotations

import dataclasses
import functools
import weakref
from typing import Sequence

import chess
import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax.sharding import NamedSharding, PartitionSpec as P

from transcendence_jax.arena import MoveChoice
from transcendence_jax.tokenizer import BOS, NUM_SPECIAL, PAD, VOCAB_SIZE, board_planes, move_to_token, token_to_move

LEGAL_MODES = ("mask", "paper")


# --- pure, jitted pieces --------------------------------------------------------------

def _draw(logits_BV, temps_B, key, threshold):
    """One token per row at its temperature; tau <= threshold is the exact arg-max."""
    greedy_B = jnp.argmax(logits_BV, axis=-1)
    scaled_BV = logits_BV / jnp.maximum(temps_B, threshold)[:, None]
    drawn_B = jax.random.categorical(key, scaled_BV, axis=-1)
    return jnp.where(temps_B <= threshold, greedy_B, drawn_B).astype(jnp.int32)


def _choose(logits_BV, legal_BV, temps_B, key, *, threshold, free_draws):
    """(masked draw [B], free draws over all move tokens [K, B])."""
    vocab_V = jnp.arange(logits_BV.shape[-1])
    moves_V = (vocab_V >= NUM_SPECIAL) & (vocab_V < VOCAB_SIZE)
    free_BV = jnp.where(moves_V, logits_BV, -jnp.inf)
    keys = jax.random.split(key, free_draws + 1)
    free_KB = jnp.stack([_draw(free_BV, temps_B, k, threshold) for k in keys[1:]])
    if legal_BV is None:
        return free_KB[0], free_KB
    return _draw(jnp.where(legal_BV, logits_BV, -jnp.inf), temps_B, keys[0], threshold), free_KB


def _decode_step(state, cache, slots_B, write_B, tokens_BT, boards_BT64, pos_B, last_B, temps_B,
                 legal_BV, key, *, graphdef, axes, threshold, free_draws, batch_sharding, gather):
    """Extend the games' cache rows by their new tokens and sample one move per row.

    gather: row b is slot slots_B[b] (gathered, then scattered back; padding rows write out of
    range, dropped). Without it the batch is the whole cache in slot order (no copies)."""
    model = nnx.merge(graphdef, state)
    sub = cache
    if gather:
        sub = jax.tree.map(lambda x, a: x if a < 0 else jnp.take(x, slots_B, axis=a), cache, axes)
        if batch_sharding is not None:
            sub = jax.tree.map(lambda x, a: x if a < 0 else jax.lax.with_sharding_constraint(
                x, batch_sharding(x.ndim, a)), sub, axes)
    logits_BTV, sub = model.extend(tokens_BT, boards_BT64, sub, pos_B)
    if gather:
        cache = jax.tree.map(lambda x, a, s: x if a < 0 else x.at[(slice(None),) * a + (write_B,)].set(
            s.astype(x.dtype), mode="drop"), cache, axes, sub)
    else:
        cache = sub
    logits_BV = jnp.take_along_axis(logits_BTV, last_B[:, None, None], axis=1)[:, 0].astype(jnp.float32)
    choice_B, free_KB = _choose(logits_BV, legal_BV, temps_B, key, threshold=threshold, free_draws=free_draws)
    return cache, choice_B, free_KB, logits_BV


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


_choose_jit = jax.jit(_choose, static_argnames=("threshold", "free_draws"))


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


def _context(board: chess.Board, first: int, start: int, board_input: bool):
    """Tokens (and board planes) of the positions first..n of `board`'s game, where position i is
    the one after i moves and position `start` is fed as BOS. Earlier boards come from popping
    moves off `board` itself (then pushed back: it ends as it began), cheaper than a copy."""
    stack = board.move_stack
    n = len(stack)
    tokens = [BOS if i == start else move_to_token(stack[i - 1]) for i in range(first, n + 1)]
    if not board_input:
        return tokens, None
    planes, popped = [board_planes(board)], []
    try:
        for _ in range(n - first):
            popped.append(board.pop())
            planes.append(board_planes(board))
    finally:
        for move in reversed(popped):
            board.push(move)
    return tokens, np.stack(planes[::-1])


_step_cache: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()  # model -> settings -> programs


@dataclasses.dataclass
class _Slot:
    game_id: str | None = None
    start: int = 0    # moves of the game before the window (0 unless the game outgrew max_len)
    end: int = -1     # the game position (moves played) of the last token in the cache; -1: empty
    moves: list = dataclasses.field(default_factory=list)  # the game's move stack at the last call
    last_used: int = -1


class Sampler:
    """Batched, cached move sampler; also the arena backend of every ModelPlayer that shares it."""

    def __init__(self, model, *, max_games: int, max_len: int | None = None, legal: str = "mask",
                 threshold: float = 1e-3, tries: int = 5, seed: int = 0, mesh=None,
                 batch_buckets: Sequence[int] | None = None):
        if legal not in LEGAL_MODES:
            raise ValueError(f"legal={legal!r}: expected one of {LEGAL_MODES}")
        self.vocab_size, model_len, self.board_input = model_info(model)
        self.max_len = min(max_len or model_len, model_len)
        self.legal, self.threshold, self.tries = legal, float(threshold), int(tries)
        graphdef, state = nnx.split(model)
        mesh = mesh or _mesh_of(state)
        shards = 1 if mesh is None else mesh.shape["data"]
        self.max_games = -(-max_games // shards) * shards
        sizes = batch_buckets or [4 ** i for i in range(12)]
        self.batch_buckets = sorted({min(self.max_games, -(-s // shards) * shards) for s in sizes} | {self.max_games})
        self.len_buckets = sorted({min(self.max_len, 2 ** i) for i in range(16)})
        # The batch axis of every cache leaf: the one axis whose size follows batch_size.
        one, two = (jax.eval_shape(lambda b=b: model.init_cache(b, self.max_len)) for b in (1, 2))
        self._axes = jax.tree.map(
            lambda x, y: next((i for i, (p, q) in enumerate(zip(x.shape, y.shape)) if p != q), -1), one, two)
        cache = model.init_cache(self.max_games, self.max_len)
        self._mesh, batch_sharding = mesh, None
        if mesh is not None:
            def batch_sharding(ndim, axis):
                return NamedSharding(mesh, P(*([None] * axis + ["data"] + [None] * (ndim - axis - 1))))
            replicated = NamedSharding(mesh, P())
            on_mesh = lambda x: isinstance(getattr(x, "sharding", None), NamedSharding) and x.sharding.mesh == mesh
            state = jax.tree.map(lambda x: x if on_mesh(x) else jax.device_put(x, replicated), state)
            cache = jax.tree.map(lambda x, a: jax.device_put(x, replicated if a < 0 else batch_sharding(x.ndim, a)),
                                 cache, self._axes)
        self._state, self._cache = state, cache
        # Two programs: a gathered batch of some slots, and every slot in place (all games waiting),
        # shared by every Sampler of this model with these settings (their compiles are reused).
        settings = (self.threshold, self.tries if legal == "paper" else 1, mesh)
        self._steps = _step_cache.setdefault(model, {}).get(settings)
        if self._steps is None:
            step = functools.partial(_decode_step, graphdef=graphdef, axes=self._axes, threshold=self.threshold,
                                     free_draws=settings[1], batch_sharding=batch_sharding)
            self._steps = _step_cache[model][settings] = {
                g: jax.jit(functools.partial(step, gather=g), donate_argnums=1) for g in (True, False)}
        self._key = jax.random.key(seed)
        self._slots = [_Slot() for _ in range(self.max_games)]
        self._slot_of: dict[str, int] = {}
        self._clock = 0
        self.illegal: dict[str, int] = {}   # game_id -> illegal draws by the model so far
        self.sampled: dict[str, int] = {}   # game_id -> moves the model was asked for
        self.calls = 0
        self.last_logits = None  # [n, V] device array of the last call's logits, rows in request order

    # -- slots --
    def release(self, game_id: str) -> None:
        """Forget a game (its slot becomes free at once)."""
        i = self._slot_of.pop(game_id, None)
        if i is not None:
            self._slots[i] = _Slot()

    def _slot(self, game_id: str, busy: set[int]) -> int:
        i = self._slot_of.get(game_id)
        if i is None:
            i = min((j for j in range(self.max_games) if j not in busy), key=lambda j: self._slots[j].last_used)
            old = self._slots[i].game_id
            if old is not None:
                del self._slot_of[old]
            self._slots[i] = _Slot(game_id)
            self._slot_of[game_id] = i
        return i

    def _plan(self, slot: _Slot, board: chess.Board):
        """(cache position, tokens, planes) to feed so the slot holds the game up to `board`."""
        stack = board.move_stack
        n, end = len(stack), slot.end
        start = _window_start(n, slot.start, self.max_len)
        # The cache is still valid if the game extends what it holds (moves checked at both ends:
        # game ids are unique in an arena; a takeback, or a reused id whose moves differ there, refills).
        ok = (start == slot.start and start <= end <= n
              and all(stack[j] == slot.moves[j] for j in {start, end - 1} if start <= j < end))
        # Feed the positions not yet cached; an unchanged game re-feeds its last token for its logits.
        first = max(start, min(end + 1, n)) if ok else start
        tokens, planes = _context(board, first, start, self.board_input)
        slot.start, slot.end, slot.moves = start, n, list(stack)
        return first - start, tokens, planes

    # -- sampling --
    def sample(self, requests: Sequence[tuple[str, chess.Board, float]]) -> list[MoveChoice]:
        """One move for each (game_id, board, temperature): one decode call per max_games games."""
        out: list[MoveChoice | None] = [None] * len(requests)
        pending = list(range(len(requests)))
        while pending:  # a game asked twice in one call, or more games than slots: several rounds
            seen, batch, rest = set(), [], []
            for i in pending:
                gid = requests[i][0]
                (rest if gid in seen or len(batch) == self.max_games else batch).append(i)
                seen.add(gid)
            for i, choice in zip(batch, self._sample_batch([requests[i] for i in batch])):
                out[i] = choice
            pending = rest
        return out

    def _sample_batch(self, requests) -> list[MoveChoice]:
        self._clock += 1
        self.calls += 1
        n = len(requests)
        busy = {self._slot_of[g] for g, _, _ in requests if g in self._slot_of}
        slots = []
        for gid, _, _ in requests:
            slots.append(self._slot(gid, busy))
            busy.add(slots[-1])
        gather = n < self.max_games
        if not gather:  # every slot asks: row b is slot b, the cache is used in place
            order = np.argsort(slots)
            requests, slots = [requests[i] for i in order], [slots[i] for i in order]
        B = _bucket(n, self.batch_buckets)
        plans, legal_sets = [], []
        for (gid, board, _), i in zip(requests, slots):
            slot = self._slots[i]
            slot.last_used = self._clock
            plans.append(self._plan(slot, board))
            legal_sets.append({move_to_token(m): m for m in board.legal_moves})
        T = _bucket(max(len(t) for _, t, _ in plans), self.len_buckets)
        tokens_BT = np.full((B, T), PAD, np.int32)
        boards_BT64 = np.zeros((B, T, 64), np.uint8) if self.board_input else None
        pos_B, last_B = np.zeros(B, np.int32), np.zeros(B, np.int32)
        temps_B = np.ones(B, np.float32)
        slots_B = np.zeros(B, np.int32)
        write_B = np.full(B, self.max_games, np.int32)  # padding rows write out of range: dropped
        legal_BV = np.zeros((B, self.vocab_size), bool) if self.legal == "mask" else None
        for b, ((gid, _, temp), (pos, toks, planes), slot, legal) in enumerate(zip(requests, plans, slots, legal_sets)):
            tokens_BT[b, :len(toks)] = toks
            if planes is not None:
                boards_BT64[b, :len(toks)] = planes
            pos_B[b], last_B[b], temps_B[b] = pos, len(toks) - 1, temp
            slots_B[b] = write_B[b] = slot
            if legal_BV is not None:
                legal_BV[b, list(legal)] = True
        if legal_BV is not None:
            legal_BV[n:, NUM_SPECIAL] = True  # padding rows: any valid distribution
        self._key, key = jax.random.split(self._key)
        args = [slots_B, write_B, tokens_BT, boards_BT64, pos_B, last_B, temps_B, legal_BV]
        if self._mesh is not None:
            args = [None if a is None else jax.device_put(a, NamedSharding(self._mesh, P("data"))) for a in args]
        self._cache, choice_B, free_KB, logits_BV = self._steps[gather](self._state, self._cache, *args, key)
        self.last_logits = logits_BV[:n] if gather else logits_BV[np.argsort(order)]
        choice_B, free_KB = np.asarray(choice_B), np.asarray(free_KB)
        out = []
        for b, ((gid, board, _), legal) in enumerate(zip(requests, legal_sets)):
            if self.legal == "mask":
                illegal = int(int(free_KB[0, b]) not in legal)
                move = legal.get(int(choice_B[b])) if legal else None
            else:
                tries = [legal.get(int(t)) for t in free_KB[:, b]]
                k = next((k for k, m in enumerate(tries) if m is not None), len(tries))
                move, illegal = (tries[k] if k < len(tries) else None), k
            self.illegal[gid] = self.illegal.get(gid, 0) + illegal
            self.sampled[gid] = self.sampled.get(gid, 0) + 1
            out.append(MoveChoice(move, illegal))
        return out if gather else [out[i] for i in np.argsort(order)]

    # -- arena backend (interface F) --
    def choose(self, requests) -> list[MoveChoice]:
        return self.sample([(state.game_id, state.board, player.temperature) for player, state in requests])

    def close(self) -> None:
        self._slots = [_Slot() for _ in range(self.max_games)]
        self._slot_of.clear()


class ModelPlayer:
    """The model at a temperature. Every ModelPlayer sharing a Sampler is one arena backend."""

    def __init__(self, name: str, sampler: Sampler, temperature: float):
        self.name, self.sampler, self.temperature = name, sampler, float(temperature)
        self.backend = sampler

    def describe(self) -> dict:
        return {"temperature": self.temperature, "legal": self.sampler.legal}


# --- simple API: a batch of positions, no persistent cache --------------------------------

def _positions(model, boards: Sequence[chess.Board]):
    """Right-padded full-game inputs of each board: (tokens_BT, boards_BT64 | None, last_B, legal)."""
    vocab, max_len, board_input = model_info(model)
    contexts = []
    for board in boards:
        start = _window_start(len(board.move_stack), 0, max_len)
        contexts.append(_context(board, start, start, board_input))
    B = 1 << max(0, (len(boards) - 1).bit_length())  # padded to a power of two: few compiles
    T = min(1 << max(0, (max(len(t) for t, _ in contexts) - 1).bit_length()), max_len)
    tokens_BT = np.full((B, T), PAD, np.int32)
    boards_BT64 = np.zeros((B, T, 64), np.uint8) if board_input else None
    last_B = np.zeros(B, np.int32)
    for b, (toks, planes) in enumerate(contexts):
        tokens_BT[b, :len(toks)] = toks
        last_B[b] = len(toks) - 1
        if planes is not None:
            boards_BT64[b, :len(toks)] = planes
    legal_BV = np.zeros((B, vocab), bool)
    legal_BV[len(boards):, NUM_SPECIAL] = True
    for b, board in enumerate(boards):
        legal_BV[b, [move_to_token(m) for m in board.legal_moves]] = True
    return tokens_BT, boards_BT64, last_B, legal_BV


def position_logits(model, boards: Sequence[chess.Board]) -> np.ndarray:
    """The model's next-move logits [B, V] for each board, by a full forward over its game."""
    forward, state = _forward(model)
    tokens_BT, boards_BT64, last_B, _ = _positions(model, boards)
    return np.asarray(forward(state, tokens_BT, boards_BT64, last_B))[:len(boards)]


def sample_moves(model, boards: Sequence[chess.Board], temperatures, key, *, threshold: float = 1e-3) -> list[chess.Move]:
    """One legal move for each board (its whole move stack is the prompt), each at its own
    temperature; tau <= threshold is the arg-max over the legal moves."""
    forward, state = _forward(model)
    tokens_BT, boards_BT64, last_B, legal_BV = _positions(model, boards)
    logits_BV = forward(state, tokens_BT, boards_BT64, last_B)
    temps_B = np.ones(len(legal_BV), np.float32)
    temps_B[:len(boards)] = np.broadcast_to(np.asarray(temperatures, np.float32), (len(boards),))
    choice_B, _ = _choose_jit(logits_BV, legal_BV, temps_B, key, threshold=threshold, free_draws=1)
    return [token_to_move(t) for t in np.asarray(choice_B)[:len(boards)]]


def move_probabilities(model, board: chess.Board, temperature: float = 1.0, *,
                       threshold: float = 1e-3) -> dict[chess.Move, float]:
    """The model's distribution over the legal moves of `board` at `temperature`."""
    logits = position_logits(model, [board])[0]
    moves = list(board.legal_moves)
    x = np.asarray([logits[move_to_token(m)] for m in moves], np.float64)
    if temperature <= threshold:
        p = (np.arange(len(x)) == np.argmax(x)).astype(np.float64)
    else:
        p = np.exp((x - x.max()) / temperature)
        p /= p.sum()
    return dict(zip(moves, p.tolist()))
