"""The model's move distribution without a cache: a batch of positions, each a full forward.

`position_logits`, `sample_moves`, `move_probabilities` and `tempered` take whole games (each
board's move stack is the prompt) and recompute them: simple and stateless, for analysis and
tests (the Sampler's cached logits are checked against `position_logits`). Wrong argument types
(a board for a list of boards, an int for a PRNG key, load_model's tuple for a model) are a
TypeError that says what was passed. Also here, shared with
the Sampler: a model's input sizes (`model_info`) and the windows of games longer than the
model's context (`window_start`, `game_context`).
"""

from __future__ import annotations

import functools
import weakref
from typing import Sequence

import chess
import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from transcendence_jax.data.boards import board_planes, planes_after, planes_array
from transcendence_jax.data.tokenizer import BOS, NUM_SPECIAL, PAD, move_token, token_to_move
from transcendence_jax.sampling.temperature import check_temperature


def model_info(model) -> tuple[int, int, bool]:
    """(vocab_size, max_len, board_input) of a Transformer, read from its config."""
    cfg = getattr(model, "cfg", None)
    if cfg is None:
        hint = " (load_model returns (model, config, step): unpack it)" if isinstance(model, tuple) else ""
        raise TypeError(f"expected a transcendence_jax Transformer, got {type(model).__name__}{hint}")
    return int(cfg.vocab_size), int(cfg.max_len), bool(cfg.get("board_input", False))


def window_start(num_moves: int, start: int, max_len: int) -> int:
    """The moves dropped from the front of a game so BOS + the rest fits in max_len: `start` while
    it fits, else all but the last ~max_len/2 moves (an even number: the side to move keeps its parity)."""
    if 1 + num_moves - start <= max_len:
        return start
    start = num_moves - max(1, max_len // 2 - 1)
    return start + (start % 2)


def game_context(board: chess.Board, first: int, start: int):
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


def compiled_forward(model):
    """(jitted fn(state, tokens_BT, boards_BT64 | None, last_B) -> logits [B, V], the model's
    params): the full forward, compiled once per model (its GraphDef holds the config, which is
    not hashable, so it is closed over rather than static)."""
    model_info(model)  # a TypeError for anything but a Transformer, before the cache's weak reference
    graphdef, state = nnx.split(model)
    fn = _forward_jits.get(model)
    if fn is None:
        fn = _forward_jits[model] = jax.jit(functools.partial(_forward_logits, graphdef=graphdef))
    return fn, state


def check_boards(boards) -> list[chess.Board]:
    """`boards` as a list of chess.Board, or a TypeError that says what was passed instead."""
    items = [boards] if isinstance(boards, chess.Board) else list(boards)
    wrong = next((b for b in items if not isinstance(b, chess.Board)), None)
    if isinstance(boards, chess.Board) or wrong is not None:
        what = type(boards if wrong is None else wrong).__name__
        raise TypeError(f"expected a sequence of chess.Board, got {what} (wrap one board in a list)")
    return items


def check_key(key) -> None:
    """A TypeError unless `key` is a JAX PRNG key (jax.random.key(seed), or the legacy
    jax.random.PRNGKey(seed)): an int seed is not one."""
    legacy = getattr(key, "shape", None) == (2,) and getattr(key, "dtype", None) == np.uint32
    if not (legacy or (hasattr(key, "dtype") and jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key))):
        raise TypeError(f"key must be a JAX PRNG key, e.g. jax.random.key(0); got {type(key).__name__} {key!r:.40}")


def _positions(model, boards: Sequence[chess.Board]):
    """Right-padded full-game inputs of each board: (tokens_BT, boards_BT64 | None, last_B, legal)."""
    vocab, max_len, board_input = model_info(model)
    contexts = []
    for board in boards:
        start = window_start(len(board.move_stack), 0, max_len)
        contexts.append(game_context(board, start, start))
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


def position_logits(model, boards: Sequence[chess.Board], *, batch_size: int = 64) -> np.ndarray:
    """The model's next-move logits [B, V] for each board, by a full forward over its game
    (`batch_size` boards a forward, so the [batch, length, vocab] logits stay small)."""
    boards = check_boards(boards)
    forward, state = compiled_forward(model)
    out = []
    for start in range(0, len(boards), batch_size):
        chunk = boards[start:start + batch_size]
        tokens_BT, boards_BT64, last_B, _ = _positions(model, chunk)
        out.append(np.asarray(forward(state, tokens_BT, boards_BT64, last_B))[:len(chunk)])
    return np.concatenate(out) if out else np.zeros((0, model_info(model)[0]), np.float32)


def sample_moves(model, boards: Sequence[chess.Board], temperatures, key, *,
                 threshold: float = 1e-3) -> list[chess.Move | None]:
    """One legal move for each board (its whole move stack is the prompt), each at its own
    temperature; tau <= threshold is the arg-max over the legal moves, tau = inf uniform over
    them. None for a board with no legal move (the game is over). `key`: a JAX PRNG key."""
    boards = check_boards(boards)
    check_key(key)
    temps_n = np.broadcast_to(np.asarray(temperatures, np.float32), (len(boards),))
    for i, temperature in enumerate(temps_n.tolist()):
        check_temperature(temperature, f"board {i}: temperature")
    forward, state = compiled_forward(model)
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
    check_temperature(temperature)
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


def move_probabilities(model, boards, temperature=1.0, *, threshold: float = 1e-3):
    """The model's distribution over the legal moves at `temperature`: a {chess.Move: p} dict for
    one chess.Board, a list of them for a sequence of boards (batched forwards; `temperature` one
    number or one per board). Each board's move stack is its prompt. tau <= threshold (0.001) is
    the arg-max, a one-hot (p = 1 on the likeliest move), tau = inf uniform; no legal move: {}."""
    single = isinstance(boards, chess.Board)
    boards = [boards] if single else check_boards(boards)
    temps = np.broadcast_to(np.asarray(temperature, np.float64), (len(boards),)).tolist()
    out = [tempered({m: float(logits_V[move_token(m)]) for m in board.legal_moves}, tau, threshold)
           for board, tau, logits_V in zip(boards, temps, position_logits(model, boards))]
    return out[0] if single else out
