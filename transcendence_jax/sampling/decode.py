"""The sampler's device side: one jitted decode step that extends the KV cache and ranks moves.

The step feeds each game only its new tokens, then draws moves by Gumbel-max (score = logit /
tau + Gumbel noise; no noise at tau <= threshold: the arg-max; at tau = inf the noise alone:
uniform). The highest-scoring legal move is an exact sample of the distribution renormalised over
the legal moves. In "mask" mode only the side to move's pseudo-legal moves (legality.candidates)
are scored, the best `top_k` go to the host with their king safety (legality.king_safe) and the
free draw's score, packed in one int32 array: one transfer, no [B, V] mask. In "paper" mode the
step returns independent free draws. The noise is threefry bits of the element counters, keyed by
the sampler's seed and its call number: no key split on the host.
"""

from __future__ import annotations

import functools
import weakref

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from transcendence_jax.data.tokenizer import NUM_SPECIAL, VOCAB_SIZE
from transcendence_jax.legality import candidates, king_safe


def threefry_2x32(k0, k1, x0, x1):
    """JAX's threefry_2x32 (20 rounds; the same bits, tested), unrolled into one elementwise
    loop: XLA:CPU runs JAX's own lowering as a rolled loop over whole arrays."""
    rotl = lambda x, d: (x << np.uint32(d)) | (x >> np.uint32(32 - d))
    ks = (k0, k1, k0 ^ k1 ^ np.uint32(0x1BD11BDA))
    x0, x1 = x0 + ks[0], x1 + ks[1]
    for i in range(5):
        for r in ((13, 15, 26, 6), (17, 29, 16, 24))[i % 2]:
            x0 = x0 + x1
            x1 = rotl(x1, r) ^ x0
        x0, x1 = x0 + ks[(i + 1) % 3], x1 + ks[(i + 2) % 3] + np.uint32(i + 1)
    return x0, x1


def gumbel(key, shape):
    """Standard Gumbel noise: threefry bits of the element counters, 23-bit uniforms, -log(-log u)."""
    k0, k1 = jax.random.key_data(key).reshape(-1)[:2]
    n = int(np.prod(shape))
    counter = jax.lax.iota(jnp.uint32, (n + 1) // 2)
    bits = jnp.concatenate(threefry_2x32(k0, k1, counter, counter + np.uint32((n + 1) // 2)))[:n]
    u = jax.lax.bitcast_convert_type((bits >> np.uint32(9)) | np.uint32(0x3F800000), jnp.float32) - 1.0
    return -jnp.log(-jnp.log(jnp.maximum(u, np.float32(2.0 ** -24)))).reshape(shape)  # u > 0: finite noise


def _choose(logits_BV, planes_B64, white_B, temps_B, key, *, threshold, top_k, free_draws):
    """Gumbel-max over move tokens. Paper mode (top_k 0): (free draws [K, B], None). Mask mode:
    ([B, 3 top_k + 1] int32, see `unpack_choice`; and the scored candidates (tokens, scores
    [B, N]) for the host's fallback). Only the own pieces' moves are scored; the other tokens,
    never legal, matter only to the free draw through their best score: their maximum (cold), or
    logsumexp + one Gumbel (hot: the maximum of independent Gumbels). The free draw is compared
    by score with the first candidate (no arg-max over V)."""
    V = logits_BV.shape[-1]
    cold_B = temps_B <= threshold
    scaled_BV = logits_BV / jnp.where(cold_B, 1.0, temps_B)[:, None]
    vocab_V = jnp.arange(V)
    scaled_BV = jnp.where((vocab_V >= NUM_SPECIAL) & (vocab_V < VOCAB_SIZE), scaled_BV, -jnp.inf)
    if not top_k:
        noise_KBV = gumbel(key, (free_draws, *logits_BV.shape))
        scores_KBV = scaled_BV + jnp.where(cold_B[:, None], 0.0, noise_KBV)
        return jnp.argmax(scores_KBV, axis=-1).astype(jnp.int32), None
    tokens_BN, pseudo_BN = candidates(planes_B64, white_B, V)
    B, N = tokens_BN.shape
    noise_BN = gumbel(key, (B, N + 1))  # the last column: the other tokens' Gumbel
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


def unpack_choice(choice_BX: np.ndarray):
    """(top_k moves best first, their scores, their legality: 1 legal, 0 not, 2 castling or en
    passant (python-chess decides), the free draw's score) from mask mode's choice array."""
    K = (choice_BX.shape[1] - 1) // 3
    return (choice_BX[:, :K], choice_BX[:, K:2 * K].view(np.float32), choice_BX[:, 2 * K:3 * K],
            choice_BX[:, 3 * K].view(np.float32))


def _decode_step(state, cache, games_B5, tokens_BT, boards_BT64, planes_B64, key, call, attend_len, *,
                 graphdef, threshold, top_k, free_draws, in_place):
    """Extend the games' cache rows by their new tokens and rank moves for each row, with the
    noise of call number `call` of a sampler seeded with `key`. games_B5: each row's cache slot,
    cache position, last new token, side to move (1 white) and temperature (its float32 bits):
    one array, one transfer. in_place: the batch is every slot in slot order (no slot column read)."""
    key = jax.random.fold_in(key, call)
    rows_B = None if in_place else games_B5[:, 0]
    pos_B, last_B, white_B = games_B5[:, 1], games_B5[:, 2], games_B5[:, 3] > 0
    temps_B = jax.lax.bitcast_convert_type(games_B5[:, 4], jnp.float32)
    model = nnx.merge(graphdef, state)
    logits_B1V, cache = model.extend(tokens_BT, boards_BT64, cache, pos_B, rows_B, last_B, attend_len)
    logits_BV = logits_B1V[:, 0].astype(jnp.float32)
    return cache, logits_BV, *_choose(logits_BV, planes_B64, white_B, temps_B, key, threshold=threshold,
                                      top_k=top_k, free_draws=free_draws)


_step_cache: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()  # model -> settings -> programs


def decode_programs(model, graphdef, *, threshold: float, free_draws: int, top_k: int, mesh) -> dict:
    """The two jitted decode steps of a model ("rows": the asking rows read by index; "all": every
    slot in place), the cache donated and attend_len static; shared by every Sampler of this model
    with these settings, so their compiles are reused."""
    settings = (threshold, free_draws, top_k, mesh)
    steps = _step_cache.setdefault(model, {}).get(settings)
    if steps is None:
        step = functools.partial(_decode_step, graphdef=graphdef, threshold=threshold,
                                 free_draws=free_draws, top_k=top_k)
        steps = _step_cache[model][settings] = {
            name: jax.jit(functools.partial(step, in_place=name == "all"), donate_argnums=1, static_argnums=8)
            for name in ("rows", "all")}
    return steps
