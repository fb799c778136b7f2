"""The decoder: nanoGPT's transformer in Flax NNX, over move tokens, with a KV cache.

The paper's nanoGPT (pre-norm LayerNorm without bias, GELU MLP, learned positions, no biases,
optional dropout, tied input/output embedding), with three differences, options or speed choices:
- GELU uses the tanh approximation (cheaper than erf on CPU; nanoGPT uses erf).
- q, k, v come from one fused kernel [D, 3, H, E].
- Optional board input: the (square, piece) embeddings of the board after each move, summed
  over the 64 squares, are added to that move's embedding (a one-hot matmul: its backward is
  one dense matmul, not a scatter-add of 64 rows per token).
- Optional board head (`board_head`): a move's logit adds two scores read off the final hidden
  state: one for the (square, piece) pair on its to-square and one for the piece on its
  from-square. Tied logits score a move by its token alone, so "this move captures a queen" had
  to be composed from the summed board embedding through the layers; here it is one linear
  read, as in square-based policy heads (Leela, AlphaZero). The to-score is per square: a
  player's habits tied to squares (an expert blind to captures landing on some) are learnable
  as such, not smeared over the board.
- Optional context window (`context`): each layer attends to its last `context` positions
  (the model reads num_layers x (context - 1) + 1). A model that reads the whole game can tell
  which expert is moving (one that left a piece hanging is blind there) and imitate that
  expert; with `context` 1 and board input it is a policy of the position, as Maia and
  searchless_chess are, whose target is the experts' mixture (docs/FINDINGS.md, "Populations
  without flat distributions", measures how near it gets).
- On CPU the full forward attends by blocks of 64 queries over the keys up to each block's end
  (`attend_blocks`): XLA does not skip the masked half of causal attention, this does.
The KV cache is kept in chunks so a short game reads only the positions it has (`extend`).
Every parameter carries logical axis names in its `out_sharding` metadata; `sharding.py` maps
them onto mesh axes. Parameters live in `param_dtype`; the forward computes in `dtype`, keeps
LayerNorm and softmax in fp32, and returns fp32 logits.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
from flax import nnx

from transcendence_jax.data.boards import NUM_PIECE_CODES as NUM_PIECES
from transcendence_jax.data.tokenizer import move_squares
from transcendence_jax.errors import UserError

NEG_INF = -1e30


def _param(rngs: nnx.Rngs, shape, axes, std: float, dtype) -> nnx.Param:
    """A normal(0, std) parameter annotated with its logical axes (no eager sharding:
    sharded initialisation is the caller's jit with out_shardings from sharding.py)."""
    value = std * jax.random.normal(rngs.params(), shape, jnp.float32)
    return nnx.Param(value.astype(dtype), out_sharding=axes, eager_sharding=False)


def _dtype(name: str):
    return {"float32": jnp.float32, "bfloat16": jnp.bfloat16, "float16": jnp.float16}[name]


class LayerNorm(nnx.Module):
    """LayerNorm with a scale and no bias (nanoGPT bias=False), computed in fp32."""

    def __init__(self, dim: int, param_dtype, eps: float = 1e-5):
        self.scale = nnx.Param(jnp.ones((dim,), param_dtype), out_sharding=("embed",), eager_sharding=False)
        self.eps = eps

    def __call__(self, x_BTD):
        x = x_BTD.astype(jnp.float32)
        mean = x.mean(-1, keepdims=True)
        var = jnp.square(x - mean).mean(-1, keepdims=True)
        y = (x - mean) * jax.lax.rsqrt(var + self.eps) * self.scale[...].astype(jnp.float32)
        return y.astype(x_BTD.dtype)


def dense(x_BTK, w_KM):
    """x @ w over the last axis, as one 2-D matmul of [B*T, K] rows. Speed only (same values):
    with 3-D operands the weight gradients contract two axes (b, t), and XLA:CPU materialises a
    transposed copy of each operand, fusing the whole elementwise backward (GELU, LayerNorm,
    residual sums) into that strided copy."""
    y_NM = x_BTK.reshape(-1, x_BTK.shape[-1]) @ w_KM
    return y_NM.reshape(*x_BTK.shape[:-1], w_KM.shape[-1])


def causal_mask(q_pos, k_pos, context: int = 0):
    """True where a query at position q_pos may read a key at k_pos (broadcast): the keys at or
    before it and, with context > 0, within its last `context` positions."""
    allowed = q_pos >= k_pos
    return allowed & (q_pos - k_pos < context) if context else allowed


def attend(q_BTHE, k_BSHE, v_BSHE, mask_BTS, dropout=None):
    """Softmax attention of T queries over S keys; mask_BTS (broadcastable) is True where allowed."""
    scores_BHTS = jnp.einsum("bthe,bshe->bhts", q_BTHE, k_BSHE, preferred_element_type=jnp.float32)
    scores_BHTS = jnp.where(mask_BTS[:, None], scores_BHTS, NEG_INF)
    probs_BHTS = jax.nn.softmax(scores_BHTS, axis=-1).astype(v_BSHE.dtype)
    if dropout is not None:
        probs_BHTS = dropout(probs_BHTS)
    return jnp.einsum("bhts,bshe->bthe", probs_BHTS, v_BSHE)


# On CPU the full forward attends by blocks of this many queries (`attend_blocks`).
CPU_QUERY_BLOCK = 64


def attend_blocks(q_BTHE, k_BSHE, v_BSHE, mask_BTS, block: int):
    """`attend` for a causal mask (no query reads a later key), by blocks of `block` queries, each
    over the keys up to its own last: the blocks above the diagonal, all masked, are never
    computed (on CPU, where XLA does not skip them, a third less attention time at T = 256:
    benchmarks/RESULTS.md, "Train step against PyTorch eager")."""
    T = q_BTHE.shape[1]
    return jnp.concatenate([attend(q_BTHE[:, a : a + block], k_BSHE[:, : a + block], v_BSHE[:, : a + block],
                                   mask_BTS[:, a : a + block, : a + block]) for a in range(0, T, block)], axis=1)


def cache_chunks(max_len: int) -> list[int]:
    """Chunk lengths of a cache of max_len positions: 32 each up to 256, then doubling (256, 512,
    ...), the last cut to fit. A call reads its longest game's positions rounded up to whole
    chunks: a game at position 70 reads 96, not 128 (and short dots run faster per position than
    longer ones on CPU), while a long cache still takes few chunks (11 at 2048 positions)."""
    chunks, covered = [], 0
    while covered < max_len:
        chunks.append(min(max_len - covered, 32 if covered < 256 else covered))
        covered += chunks[-1]
    return chunks


def chunks_covering(chunks, length: int) -> int:
    """How many leading chunks it takes to hold positions 0..length-1."""
    n, covered = 0, 0
    while covered < length:
        covered += chunks[n].shape[2]
        n += 1
    return n


def write_cache(chunks, x_BTHE, r_BT, pos_BT, n: int):
    """Write each token's key or value at (row r, position pos) of the first n chunks (a token
    outside a chunk's positions is dropped there; in place when the cache is donated)."""
    out, start = list(chunks), 0
    for c in range(n):
        size = chunks[c].shape[2]
        inside_BT = (pos_BT >= start) & (pos_BT < start + size)
        out[c] = chunks[c].at[r_BT, :, jnp.where(inside_BT, pos_BT - start, size)].set(
            x_BTHE.astype(chunks[c].dtype), mode="drop")
        start += size
    return tuple(out)


def attend_cache(q_BTHE, k_chunks, v_chunks, rows_B, mask_BTS):
    """Attention of row b's T new queries over cache row rows_B[b] (None: row b) of the first
    chunks of a cache in [rows, H, S, E] layout, covering mask_BTS's S positions. Per chunk the
    scores and outputs are plain (b, h)-batched matmuls: no transposed copy of the cache (the
    [B, S, H, E] layout cost one per layer and call, more than the matmuls), and a short game
    reads only its first chunks with no copy (a slice of one [.., S, ..] array was a copy)."""
    n = chunks_covering(k_chunks, mask_BTS.shape[-1])
    take = (lambda x: x) if rows_B is None else (lambda x: jnp.take(x, rows_B, axis=0, mode="clip"))
    q_BHTE = q_BTHE.transpose(0, 2, 1, 3)
    scores_BHTS = jnp.concatenate([jnp.einsum("bhte,bhse->bhts", q_BHTE, take(k).astype(q_BTHE.dtype),
                                              preferred_element_type=jnp.float32) for k in k_chunks[:n]], -1)
    scores_BHTS = jnp.where(mask_BTS[:, None], scores_BHTS, NEG_INF)
    probs_BHTS = jax.nn.softmax(scores_BHTS, axis=-1).astype(q_BTHE.dtype)
    y_BHTE, start = 0.0, 0
    for v in v_chunks[:n]:
        size = v.shape[2]
        y_BHTE = y_BHTE + jnp.einsum("bhts,bhse->bhte", probs_BHTS[..., start:start + size],
                                     take(v).astype(q_BTHE.dtype))
        start += size
    return y_BHTE.transpose(0, 2, 1, 3)


class Attention(nnx.Module):
    def __init__(self, cfg, *, rngs: nnx.Rngs):
        D, H = cfg.embed_dim, cfg.num_heads
        E = D // H
        pdt = _dtype(cfg.param_dtype)
        self.num_heads, self.head_dim, self.dtype = H, E, _dtype(cfg.dtype)
        self.implementation = cfg.get("attention", "xla")
        self.windowed = bool(cfg.get("context", 0))  # cuDNN's causal kernel has no window here
        self.query_block = CPU_QUERY_BLOCK if jax.default_backend() == "cpu" else 0
        if self.implementation not in ("xla", "cudnn", "auto"):
            raise ValueError(f"model.attention {self.implementation!r}: use auto, xla or cudnn")
        if self.implementation == "auto":  # cuDNN's fused attention needs an NVIDIA GPU and 16-bit inputs
            gpu = jax.default_backend() == "gpu" and self.dtype in (jnp.bfloat16, jnp.float16)
            self.implementation = "auto" if gpu and cfg.dropout == 0 else "xla"
        self.qkv = _param(rngs, (D, 3, H, E), ("embed", None, "heads", "head_dim"), 0.02, pdt)
        proj_std = 0.02 / math.sqrt(2 * cfg.num_layers)  # nanoGPT's scaled init of c_proj
        self.proj = _param(rngs, (H, E, D), ("heads", "head_dim", "embed"), proj_std, pdt)
        self.attn_drop = nnx.Dropout(cfg.dropout, rngs=rngs) if cfg.dropout > 0 else None
        self.resid_drop = nnx.Dropout(cfg.dropout, rngs=rngs) if cfg.dropout > 0 else None

    def __call__(self, x_BTD, mask_BTS, *, kv=None, pos_BT=None, rows_B=None, deterministic=True):
        """Full attention over x (kv=None), or write x's keys/values into the cache
        kv = (k_NHSE, v_NHSE) at rows rows_B (None: row b), positions pos_BT (out-of-range
        writes dropped, in place when the cache is donated) and attend over those rows."""
        B, T, D = x_BTD.shape
        H, E = self.num_heads, self.head_dim
        # One contraction axis per einsum, over [B*T] rows (see dense); weights keep their axes.
        qkv_NKHE = jnp.einsum("nd,dkhe->nkhe", x_BTD.reshape(B * T, D), self.qkv[...].astype(self.dtype))
        qkv_BTKHE = qkv_NKHE.reshape(B, T, 3, H, E)
        q_BTHE = qkv_BTKHE[:, :, 0] * (1.0 / math.sqrt(self.head_dim))
        k_BSHE, v_BSHE = qkv_BTKHE[:, :, 1], qkv_BTKHE[:, :, 2]  # S = T without a cache
        if kv is not None:
            r_B = jnp.arange(B, dtype=jnp.int32) if rows_B is None else rows_B
            r_BT = jnp.broadcast_to(r_B[:, None], pos_BT.shape)
            n = chunks_covering(kv[0], mask_BTS.shape[-1])  # the chunks read (attend_len), the only ones written
            kv = (write_cache(kv[0], k_BSHE, r_BT, pos_BT, n), write_cache(kv[1], v_BSHE, r_BT, pos_BT, n))
            y_BTHE = attend_cache(q_BTHE, kv[0], kv[1], rows_B, mask_BTS)
        else:
            dropout = None
            if self.attn_drop is not None and not deterministic:
                dropout = lambda p: self.attn_drop(p, deterministic=False)  # nanoGPT's attn_dropout
            # cuDNN's flash kernel takes sequence lengths in multiples of 64 (training): "auto"
            # falls back to the einsums for others (e.g. the demo's 101).
            cudnn = not self.windowed and (
                self.implementation == "cudnn" or (self.implementation == "auto" and T % 64 == 0))
            if cudnn and dropout is None:  # the full forward's mask is causal
                y_BTHE = jax.nn.dot_product_attention(q_BTHE, k_BSHE.astype(self.dtype), v_BSHE.astype(self.dtype),
                                                      scale=1.0, is_causal=True, implementation="cudnn")
            elif dropout is None and self.query_block and T > self.query_block:
                y_BTHE = attend_blocks(q_BTHE, k_BSHE.astype(self.dtype), v_BSHE.astype(self.dtype), mask_BTS,
                                       self.query_block)
            else:
                y_BTHE = attend(q_BTHE, k_BSHE.astype(self.dtype), v_BSHE.astype(self.dtype), mask_BTS, dropout)
        y_ND = jnp.einsum("nhe,hed->nd", y_BTHE.reshape(B * T, H, E), self.proj[...].astype(self.dtype))
        y_BTD = y_ND.reshape(B, T, D)
        if self.resid_drop is not None:
            y_BTD = self.resid_drop(y_BTD, deterministic=deterministic)
        return y_BTD, kv


class MLP(nnx.Module):
    def __init__(self, cfg, *, rngs: nnx.Rngs):
        pdt = _dtype(cfg.param_dtype)
        self.dtype = _dtype(cfg.dtype)
        self.fc = _param(rngs, (cfg.embed_dim, cfg.mlp_dim), ("embed", "mlp"), 0.02, pdt)
        proj_std = 0.02 / math.sqrt(2 * cfg.num_layers)
        self.proj = _param(rngs, (cfg.mlp_dim, cfg.embed_dim), ("mlp", "embed"), proj_std, pdt)
        self.drop = nnx.Dropout(cfg.dropout, rngs=rngs) if cfg.dropout > 0 else None

    def __call__(self, x_BTD, *, deterministic=True):
        h_BTM = jax.nn.gelu(dense(x_BTD, self.fc[...].astype(self.dtype)), approximate=True)
        y_BTD = dense(h_BTM, self.proj[...].astype(self.dtype))
        if self.drop is not None:
            y_BTD = self.drop(y_BTD, deterministic=deterministic)
        return y_BTD


class Block(nnx.Module):
    """Pre-norm residual block: x + attn(ln(x)), then x + mlp(ln(x))."""

    def __init__(self, cfg, *, rngs: nnx.Rngs):
        pdt = _dtype(cfg.param_dtype)
        self.ln1 = LayerNorm(cfg.embed_dim, pdt)
        self.attn = Attention(cfg, rngs=rngs)
        self.ln2 = LayerNorm(cfg.embed_dim, pdt)
        self.mlp = MLP(cfg, rngs=rngs)

    def __call__(self, x_BTD, mask_BTS, *, kv=None, pos_BT=None, rows_B=None, deterministic=True):
        a_BTD, kv = self.attn(self.ln1(x_BTD), mask_BTS, kv=kv, pos_BT=pos_BT, rows_B=rows_B,
                              deterministic=deterministic)
        x_BTD = x_BTD + a_BTD
        x_BTD = x_BTD + self.mlp(self.ln2(x_BTD), deterministic=deterministic)
        return x_BTD, kv


class KVCache(NamedTuple):
    """Keys and values of every layer: k[layer], v[layer] are tuples of [B, H, chunk, E] arrays
    over the positions (cache_chunks: a short game reads only its first chunks; the layout the
    decode attention's batched matmuls read without a transposed copy)."""

    k: tuple
    v: tuple


class Transformer(nnx.Module):
    """Decoder-only transformer over move tokens; position t predicts token t+1."""

    def __init__(self, cfg, *, rngs: nnx.Rngs):
        if cfg.num_heads < 1 or cfg.embed_dim % cfg.num_heads:
            raise UserError(f"model.num_heads {cfg.num_heads} does not divide model.embed_dim {cfg.embed_dim}: "
                            "pick a head count that divides the width (e.g. --config.model.num_heads=4)")
        self.cfg = cfg
        pdt = _dtype(cfg.param_dtype)
        self.dtype = _dtype(cfg.dtype)
        D = cfg.embed_dim
        self.wte = _param(rngs, (cfg.vocab_size, D), ("vocab", "embed"), 0.02, pdt)  # tied with the head
        self.wpe = _param(rngs, (cfg.max_len, D), (None, "embed"), 0.02, pdt)
        self.board_emb = (_param(rngs, (64 * NUM_PIECES, D), (None, "embed"), 0.02, pdt)
                          if cfg.board_input else None)
        self.context = cfg.get("context", 0)  # older configs lack it: the whole game
        if self.context < 0:
            raise UserError(f"model.context {cfg.context}: use 0 (the whole game) or the positions a layer "
                            "reads (>= 1)")
        if cfg.get("board_head") and not cfg.board_input:
            raise UserError("model.board_head needs model.board_input (the head reads the boards): "
                            "set --config.model.board_input=true or board_head=false")
        # Scores for the (square, piece) on a move's to-square, [D, 64, 13], and the piece on its
        # from-square, [D, 13].
        head = bool(cfg.get("board_head"))
        self.head_to = _param(rngs, (D, 64, NUM_PIECES), ("embed", None, None), 0.02, pdt) if head else None
        self.head_from = _param(rngs, (D, NUM_PIECES), ("embed", None), 0.02, pdt) if head else None
        self.drop = nnx.Dropout(cfg.dropout, rngs=rngs) if cfg.dropout > 0 else None
        self.blocks = nnx.List([Block(cfg, rngs=rngs) for _ in range(cfg.num_layers)])
        self.ln_f = LayerNorm(D, pdt)

    def _embed(self, tokens_BT, boards_BT64, pos_BT, deterministic):
        x_BTD = jnp.take(self.wte[...], tokens_BT, axis=0).astype(self.dtype)
        x_BTD = x_BTD + jnp.take(self.wpe[...], pos_BT, axis=0, mode="clip").astype(self.dtype)
        if self.board_emb is not None:
            if boards_BT64 is None:
                raise ValueError("this model has board_input on: pass boards_BT64 (uint8 [B, T, 64])")
            B, T = tokens_BT.shape
            # One-hot of each square's piece, flattened to square * 13 + piece: [B, T, 832].
            onehot_BTP = jax.nn.one_hot(boards_BT64.astype(jnp.int32), NUM_PIECES, dtype=self.dtype)
            x_BTD = x_BTD + onehot_BTP.reshape(B, T, 64 * NUM_PIECES) @ self.board_emb[...].astype(self.dtype)
        if self.drop is not None:
            x_BTD = self.drop(x_BTD, deterministic=deterministic)
        return x_BTD

    def _head(self, x_BTD, boards_BT64=None):
        x_BTD = self.ln_f(x_BTD)
        B, T, D = x_BTD.shape
        x_ND = x_BTD.reshape(B * T, D)
        logits_NV = jnp.einsum("nd,vd->nv", x_ND, self.wte[...].astype(self.dtype),
                               preferred_element_type=jnp.float32)
        if self.head_to is not None:
            # Each square's score for the piece on it, as a to-square and as a from-square
            # ([N, 2, 64]), summed into the moves by one-hot [2, 64, V] square tables (matmuls, not
            # gathers: XLA:CPU's gathers and their scatter-add backward are slow).
            onehot_NSP = jax.nn.one_hot(boards_BT64.reshape(B * T, 64).astype(jnp.int32), NUM_PIECES,
                                        dtype=self.dtype)
            to_NSP = jnp.einsum("nd,dsp->nsp", x_ND, self.head_to[...].astype(self.dtype),
                                preferred_element_type=jnp.float32)
            from_NP = jnp.einsum("nd,dp->np", x_ND, self.head_from[...].astype(self.dtype),
                                 preferred_element_type=jnp.float32)
            squares_NRS = jnp.stack([(to_NSP * onehot_NSP).sum(-1),
                                     jnp.einsum("np,nsp->ns", from_NP, onehot_NSP.astype(jnp.float32))], 1)
            logits_NV = logits_NV + jnp.einsum("nrs,rsv->nv", squares_NRS, move_squares(logits_NV.shape[1]))
        return logits_NV.reshape(B, T, -1)

    def __call__(self, tokens_BT, boards_BT64=None, *, deterministic=True):
        """Full causal forward: float32 logits [B, T, vocab_size]."""
        B, T = tokens_BT.shape
        if T > self.cfg.max_len:
            raise ValueError(f"sequence length {T} exceeds the model's max_len {self.cfg.max_len}")
        pos_BT = jnp.broadcast_to(jnp.arange(T)[None], (B, T))
        x_BTD = self._embed(tokens_BT, boards_BT64, pos_BT, deterministic)
        mask_1TT = causal_mask(jnp.arange(T)[:, None], jnp.arange(T)[None], self.context)[None]
        for block in self.blocks:
            if self.cfg.remat:
                x_BTD = nnx.remat(lambda blk, x: blk(x, mask_1TT, deterministic=deterministic)[0])(block, x_BTD)
            else:
                x_BTD, _ = block(x_BTD, mask_1TT, deterministic=deterministic)
        return self._head(x_BTD, boards_BT64)

    def init_cache(self, batch_size: int, max_len: int | None = None) -> KVCache:
        """An empty (zero) cache of max_len positions (default cfg.max_len) per row."""
        H, L = self.cfg.num_heads, self.cfg.num_layers
        zeros = lambda: tuple(jnp.zeros((batch_size, H, size, self.cfg.embed_dim // H), self.dtype)
                              for size in cache_chunks(max_len or self.cfg.max_len))
        return KVCache(k=tuple(zeros() for _ in range(L)), v=tuple(zeros() for _ in range(L)))

    def extend(self, tokens_BT, boards_BT64, cache: KVCache, pos_B, rows_B=None, last_B=None, attend_len=None):
        """Append T tokens per row at cache positions pos_B[b]..pos_B[b]+T-1; each attends to
        the cache positions <= its own. Returns (float32 logits [B, T, V], updated cache).

        Rows with fewer real tokens pad on the right: their extra entries are garbage that no
        real query sees and that the next extend (from the true next position) overwrites.
        Writes past the cache length are dropped. Prefill = extend from pos_B = 0.
        rows_B (optional): batch row b lives in cache row rows_B[b] of a cache of N rows (e.g.
        one per game in flight; only those rows are read, and written in place when the cache
        is donated); a row >= N writes nothing. Default: row b (N = B).
        last_B (optional): return only the logits of token last_B[b] of each row ([B, 1, V]: a
        sampler needs no others, and the vocabulary head is a large share of a decode step).
        attend_len (optional, static): read (and write) only the cache chunks that hold the first
        attend_len positions (every query's position must be below it): short games need not
        read the whole cache.
        """
        B, T = tokens_BT.shape
        sizes = [chunk.shape[2] for chunk in cache.k[0]]
        S = sum(sizes[:chunks_covering(cache.k[0], attend_len or sum(sizes))])  # whole chunks
        rows_B = None if rows_B is None else jnp.asarray(rows_B, jnp.int32)
        pos_BT = jnp.asarray(pos_B, jnp.int32)[:, None] + jnp.arange(T, dtype=jnp.int32)[None]
        x_BTD = self._embed(tokens_BT, boards_BT64, pos_BT, True)
        mask_BTS = causal_mask(pos_BT[:, :, None], jnp.arange(S)[None, None, :], self.context)
        ks, vs = [], []
        for i, block in enumerate(self.blocks):
            x_BTD, (k, v) = block(x_BTD, mask_BTS, kv=(cache.k[i], cache.v[i]), pos_BT=pos_BT, rows_B=rows_B)
            ks.append(k)
            vs.append(v)
        if last_B is not None:
            last_B11 = jnp.asarray(last_B, jnp.int32)[:, None, None]
            x_BTD = jnp.take_along_axis(x_BTD, last_B11, axis=1)
            if boards_BT64 is not None:
                boards_BT64 = jnp.take_along_axis(boards_BT64, last_B11, axis=1)
        return self._head(x_BTD, boards_BT64), KVCache(k=tuple(ks), v=tuple(vs))


def cross_entropy(logits_BTV, targets_BT, weights_BT, legal_BTV=None):
    """Weighted mean next-token cross-entropy; returns (loss, metrics).

    With legal_BTV (bool), the softmax runs over the legal moves only. The target is always
    allowed (a result token or a move the mask lacks keeps a finite loss), and a position
    with no legal move at all (e.g. padding) falls back to the full softmax.
    metrics: loss, accuracy (arg-max == target, over the same softmax; a tie counts), tokens (sum of weights).
    """
    logits_BTV = logits_BTV.astype(jnp.float32)
    if legal_BTV is not None:
        V = logits_BTV.shape[-1]
        legal_BTV = legal_BTV[..., :V]
        if legal_BTV.shape[-1] < V:
            legal_BTV = jnp.pad(legal_BTV, ((0, 0), (0, 0), (0, V - legal_BTV.shape[-1])))
        allowed_BTV = legal_BTV | (jnp.arange(V) == targets_BT[..., None])
        allowed_BTV = allowed_BTV | ~legal_BTV.any(-1, keepdims=True)
        logits_BTV = jnp.where(allowed_BTV, logits_BTV, NEG_INF)
    # log-sum-exp minus the target's logit, picked by a one-hot compare: a gather here makes a
    # scatter in the backward, which XLA:CPU runs slowly.
    is_target_BTV = jnp.arange(logits_BTV.shape[-1]) == targets_BT[..., None]
    target_logit_BT = jnp.where(is_target_BTV, logits_BTV, 0.0).sum(-1)
    nll_BT = jax.nn.logsumexp(logits_BTV, axis=-1) - target_logit_BT
    weights_BT = weights_BT.astype(jnp.float32)
    tokens = weights_BT.sum()
    denom = jnp.maximum(tokens, 1e-8)
    loss = (nll_BT * weights_BT).sum() / denom
    # The target is the arg-max when its logit is the maximum: the max is logsumexp's own, where
    # an argmax is a second pass (a variadic reduce, slow on XLA:CPU). A tie counts as correct.
    correct_BT = (target_logit_BT >= logits_BTV.max(-1)).astype(jnp.float32)
    accuracy = (correct_BT * weights_BT).sum() / denom
    return loss, {"loss": loss, "accuracy": accuracy, "tokens": tokens}


def count_params(model: nnx.Module) -> int:
    """Number of parameters (the tied embedding counted once)."""
    return sum(x.size for x in jax.tree.leaves(nnx.state(model, nnx.Param)))


def flops_per_token(cfg, seq_len: int) -> float:
    """Training FLOPs per token (forward + backward), PaLM-style: 6 N + 12 L T D."""
    D, L, V = cfg.embed_dim, cfg.num_layers, cfg.vocab_size
    n_matmul = L * (4 * D * D + 2 * D * cfg.mlp_dim) + V * D
    return 6.0 * n_matmul + 12.0 * L * seq_len * D
