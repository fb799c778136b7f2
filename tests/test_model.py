"""The decoder: cached decoding equals the full forward, causality, board input, legal loss."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from flax import nnx

from transcendence_jax.errors import UserError
from transcendence_jax.model import Transformer, count_params, cross_entropy


def small_cfg(**kw):
    cfg = dict(vocab_size=2048, num_layers=2, num_heads=4, embed_dim=32, mlp_dim=128, max_len=24,
               dropout=0.0, board_input=True, dtype="float32", param_dtype="float32", remat=False)
    cfg.update(kw)
    return ml_collections.ConfigDict(cfg)


def batch(B=3, T=20, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(5, 1973, (B, T)).astype(np.int32), rng.integers(0, 13, (B, T, 64)).astype(np.uint8)


@pytest.fixture(autouse=True)
def float32_matmuls():
    """GPUs run float32 matmuls as TF32 by default (~1e-3 relative), and cached and full
    forwards multiply different shapes: these tests compare the cache's logic, not the GPU's
    default precision (on the CPU this changes nothing)."""
    with jax.default_matmul_precision("highest"):
        yield


@pytest.fixture(scope="module", params=[False, True], ids=["tied-head", "board-head"])
def model(request):
    return Transformer(small_cfg(board_head=request.param), rngs=nnx.Rngs(0))


def test_forward_shape_and_dtype(model):
    tok, bd = batch()
    logits = model(tok, bd)
    assert logits.shape == (3, 20, 2048) and logits.dtype == jnp.float32
    assert np.isfinite(np.asarray(logits)).all()


def test_prefill_then_one_token_at_a_time_matches_full_forward(model):
    tok, bd = batch()
    full = np.asarray(model(tok, bd))
    cache = model.init_cache(3)
    logits, cache = model.extend(tok[:, :7], bd[:, :7], cache, jnp.zeros(3, jnp.int32))
    outs = [logits]
    step = jax.jit(lambda t, b, c, p: model.extend(t, b, c, p))
    for t in range(7, 20):
        logits, cache = step(tok[:, t:t + 1], bd[:, t:t + 1], cache, jnp.full(3, t, jnp.int32))
        outs.append(logits)
    np.testing.assert_allclose(np.concatenate(outs, 1), full, atol=2e-5)


def test_chunks_of_varying_length_per_row_match_full_forward(model):
    """Each row advances by its own number of tokens a call, padding the chunk on the right."""
    tok, bd = batch(B=3, T=20, seed=1)
    full = np.asarray(model(tok, bd))
    lengths = [[5, 3, 8, 4], [1, 9, 2, 8], [7, 7, 6, 0]]  # per row, per call; sums to 20
    C = 9
    cache, pos = model.init_cache(3), np.zeros(3, np.int32)
    got = np.zeros_like(full)
    for call in range(4):
        chunk_t = np.zeros((3, C), np.int32)
        chunk_b = np.zeros((3, C, 64), np.uint8)
        for b in range(3):
            n = lengths[b][call]
            chunk_t[b, :n], chunk_b[b, :n] = tok[b, pos[b]:pos[b] + n], bd[b, pos[b]:pos[b] + n]
            chunk_t[b, n:] = 999  # garbage padding: must never be seen
        logits, cache = model.extend(chunk_t, chunk_b, cache, jnp.asarray(pos))
        for b in range(3):
            n = lengths[b][call]
            got[b, pos[b]:pos[b] + n] = np.asarray(logits[b, :n])
            pos[b] += n
    np.testing.assert_allclose(got, full, atol=2e-5)


def test_writes_past_max_len_are_dropped(model):
    tok, bd = batch(B=1, T=24)
    cache = model.init_cache(1)
    _, cache = model.extend(tok[:, :20], bd[:, :20], cache, jnp.zeros(1, jnp.int32))
    before = np.asarray(cache.k[0][0][0, :, :20])
    _, cache = model.extend(tok[:, :8], bd[:, :8], cache, jnp.full(1, 20, jnp.int32))  # 20..27, S=24
    np.testing.assert_array_equal(np.asarray(cache.k[0][0][0, :, :20]), before)  # no clamped overwrite
    assert [chunk.shape[2] for chunk in cache.k[0]] == [24]  # one chunk of [B, H, S, E]


def test_decoding_across_cache_chunks_with_attend_len_matches_full_forward():
    """A 100-position cache is chunks of 32, 32, 32 and 4: rows of different lengths decode one token
    a call over only the chunks attend_len needs, across the chunk boundaries."""
    model = Transformer(small_cfg(max_len=100), rngs=nnx.Rngs(1))
    tok, bd = batch(B=2, T=90, seed=2)
    full = np.asarray(model(tok, bd))
    cache = model.init_cache(2)
    assert [chunk.shape[2] for chunk in cache.k[0]] == [32, 32, 32, 4]
    start = np.array([0, 20])  # row 1 is 20 tokens ahead: prefill it
    _, cache = model.extend(tok[1:, :20], bd[1:, :20], cache, jnp.zeros(1, jnp.int32), rows_B=jnp.array([1]))
    step = jax.jit(model.extend, static_argnums=6)
    got = np.zeros((2, 70, full.shape[-1]), np.float32)
    for t in range(70):
        pos = start + t
        attend = next(a for a in (32, 64, 96, 100) if pos.max() < a)
        logits, cache = step(np.take_along_axis(tok, pos[:, None], 1), bd[np.arange(2), pos][:, None], cache,
                             jnp.asarray(pos, jnp.int32), None, None, attend)
        got[:, t] = np.asarray(logits[:, 0])
    want = np.stack([full[0, :70], full[1, 20:90]])
    np.testing.assert_allclose(got, want, atol=3e-5)


def test_causality(model):
    tok, bd = batch()
    tok2, bd2 = tok.copy(), bd.copy()
    tok2[:, 12:] = 7
    bd2[:, 12:] = 0
    a, b = np.asarray(model(tok, bd)), np.asarray(model(tok2, bd2))
    np.testing.assert_allclose(a[:, :12], b[:, :12], atol=1e-6)
    assert np.abs(a[:, 12:] - b[:, 12:]).max() > 1e-3


@pytest.mark.parametrize("context", [1, 3])
def test_context_window_reads_only_the_last_positions_and_the_cache_agrees(context):
    """With model.context = c each layer reads its last c positions, so position t's logits
    depend on tokens and boards within the receptive field, r = layers x (c - 1) + 1 positions
    (c = 1: position t alone): changing everything before it moves nothing (but the positions
    changed), changing its first position moves them; the cached decode, prefill then a token at
    a time, equals the full forward."""
    model = Transformer(small_cfg(board_head=True, context=context), rngs=nnx.Rngs(0))
    r = 2 * (context - 1) + 1
    tok, bd = batch()
    t = 15
    tok2, bd2 = tok.copy(), bd.copy()
    tok2[:, :t - r + 1] = 7
    bd2[:, :t - r + 1] = 0
    a, b = np.asarray(model(tok, bd)), np.asarray(model(tok2, bd2))
    np.testing.assert_array_equal(a[:, t], b[:, t])  # masked keys: exactly nothing
    assert np.abs(a[:, t - r] - b[:, t - r]).max() > 1e-3
    tok3 = tok.copy()
    tok3[:, t - r + 1] = 9  # at the field's edge the effect passes through every layer: small at init
    assert np.abs(np.asarray(model(tok3, bd))[:, t] - a[:, t]).max() > 1e-6
    with pytest.raises(UserError, match="model.context"):
        Transformer(small_cfg(context=-1), rngs=nnx.Rngs(0))
    cache = model.init_cache(3)
    logits, cache = model.extend(tok[:, :7], bd[:, :7], cache, jnp.zeros(3, jnp.int32))
    outs = [logits]
    for s in range(7, 20):
        logits, cache = model.extend(tok[:, s:s + 1], bd[:, s:s + 1], cache, jnp.full(3, s, jnp.int32))
        outs.append(logits)
    np.testing.assert_allclose(np.concatenate(outs, 1), a, atol=2e-5)


def test_board_input_changes_logits(model):
    tok, bd = batch()
    bd2 = bd.copy()
    bd2[:, 5, 10] = (bd2[:, 5, 10] + 1) % 13
    a, b = np.asarray(model(tok, bd)), np.asarray(model(tok, bd2))
    np.testing.assert_allclose(a[:, :5], b[:, :5], atol=1e-6)
    assert np.abs(a[:, 5] - b[:, 5]).max() > 1e-4
    with pytest.raises(ValueError, match="board"):
        model(tok)


def test_board_head_adds_the_scores_of_the_pieces_on_each_moves_squares():
    """The board head's share of a move's logit is the final state's score for the (square, piece)
    on its to-square plus the one for the piece on its from-square; special tokens get none."""
    from transcendence_jax.data.tokenizer import MOVE_OF_TOKEN
    model = Transformer(small_cfg(board_head=True), rngs=nnx.Rngs(3))
    tok, bd = batch(B=2, T=6, seed=4)
    with_head = np.asarray(model(tok, bd))
    to, frm = np.asarray(model.head_to[...]), np.asarray(model.head_from[...])
    model.head_to[...], model.head_from[...] = jnp.zeros_like(to), jnp.zeros_like(frm)
    tied = np.asarray(model(tok, bd))
    model.head_to[...], model.head_from[...] = to, frm
    x = np.asarray(model.ln_f(nnx.jit(lambda m, t, b: _final_state(m, t, b))(model, tok, bd)))
    for b, t in [(0, 0), (1, 5)]:
        for token in (6, 300, 1500, 1972):
            move = MOVE_OF_TOKEN[token]
            to_score = x[b, t] @ to[:, move.to_square, bd[b, t, move.to_square]]
            want = to_score + x[b, t] @ frm[:, bd[b, t, move.from_square]]
            np.testing.assert_allclose(with_head[b, t, token] - tied[b, t, token], want, atol=1e-5)
        np.testing.assert_allclose(with_head[b, t, :5], tied[b, t, :5], atol=1e-6)  # special tokens


def _final_state(model, tokens_BT, boards_BT64):
    B, T = tokens_BT.shape
    x = model._embed(tokens_BT, boards_BT64, jnp.broadcast_to(jnp.arange(T)[None], (B, T)), True)
    mask = jnp.tril(jnp.ones((T, T), bool))[None]
    for block in model.blocks:
        x, _ = block(x, mask)
    return x


def test_accuracy_is_the_arg_max_over_the_softmax_it_scores():
    """accuracy: the weighted share of positions whose arg-max is the target, over the legal moves
    when a mask is given (an illegal logit above the target's does not count against it)."""
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(4, 50, 32)).astype(np.float32)
    targets = rng.integers(0, 32, (4, 50))
    targets[:, :10] = logits[:, :10].argmax(-1)  # some positions right, most wrong
    w = (rng.random((4, 50)) < 0.8).astype(np.float32)
    legal = rng.random((4, 50, 32)) < 0.3
    for mask in (None, legal):
        allowed = np.ones_like(legal) if mask is None else mask | (np.arange(32) == targets[..., None])
        argmax = np.where(allowed, logits, -np.inf).argmax(-1)
        expected = ((argmax == targets) * w).sum() / w.sum()
        accuracy = float(cross_entropy(logits, targets, w, mask)[1]["accuracy"])
        assert accuracy == pytest.approx(expected, abs=1e-6) and 0.1 < expected < 0.9


def test_board_head_needs_board_input():
    from transcendence_jax.errors import UserError
    with pytest.raises(UserError, match="board_input"):
        Transformer(small_cfg(board_input=False, board_head=True), rngs=nnx.Rngs(0))


def test_legal_loss_ignores_illegal_logits():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(2, 3, 16)).astype(np.float32)
    legal = np.zeros((2, 3, 16), bool)
    legal[..., 4:8] = True
    targets = np.full((2, 3), 5)
    w = np.ones((2, 3), np.float32)
    loss, m = cross_entropy(logits, targets, w, legal)
    bumped = logits.copy()
    bumped[..., 8:] += 50.0  # illegal logits: no effect on the restricted loss
    loss2, _ = cross_entropy(bumped, targets, w, legal)
    np.testing.assert_allclose(loss, loss2, rtol=1e-6)
    expected = -jax.nn.log_softmax(logits[..., 4:8], -1)[..., 1].mean()
    np.testing.assert_allclose(loss, expected, rtol=1e-5)
    assert float(cross_entropy(bumped, targets, w)[0]) > float(loss) + 10  # unrestricted does see them
    # Weights: padding positions count for nothing.
    w0 = w.copy()
    w0[:, 2] = 0
    bumped[:, 2] = 1e3 * rng.normal(size=16)
    np.testing.assert_allclose(cross_entropy(bumped, targets, w0, legal)[0],
                               cross_entropy(logits, targets, w0, legal)[0], rtol=1e-6)
    assert m["tokens"] == 6


def test_every_param_has_logical_axes(model):
    leaves = jax.tree.leaves(nnx.state(model, nnx.Param), is_leaf=lambda x: isinstance(x, nnx.Variable))
    assert leaves
    for v in leaves:
        axes = v.get_metadata().get("out_sharding")
        assert axes is not None and len(axes) == v.shape.__len__(), (v.shape, axes)
    assert model.wte.get_metadata()["out_sharding"] == ("vocab", "embed")
    assert model.blocks[0].mlp.fc.get_metadata()["out_sharding"] == ("embed", "mlp")


def test_bf16_remat_dropout_variants_train_under_jit():
    """bf16 compute on fp32 params, remat and dropout: finite grads through a pure jitted step."""
    cfg = small_cfg(dtype="bfloat16", remat=True, dropout=0.1)
    model = Transformer(cfg, rngs=nnx.Rngs(1))
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)  # rest: dropout RNG state
    tok, bd = batch()

    @jax.jit
    def loss_fn(params, rest):
        def f(params):
            m = nnx.merge(graphdef, params, rest, copy=True)  # copy: fresh Variables at this trace level
            logits = m(tok[:, :-1], bd[:, :-1], deterministic=False)
            return cross_entropy(logits, tok[:, 1:], np.ones((3, 19)))[0]
        return jax.value_and_grad(f)(params)

    loss, grads = loss_fn(params, rest)
    assert np.isfinite(float(loss))
    params = nnx.state(model, nnx.Param)
    assert all(x.dtype == jnp.float32 for x in jax.tree.leaves(params))
    g = [x for x in jax.tree.leaves(grads) if jnp.issubdtype(x.dtype, jnp.floating)]
    assert all(np.isfinite(np.asarray(x)).all() for x in g)
    assert model(tok, bd, deterministic=True).dtype == jnp.float32
    assert count_params(model) > 0


def test_attention_implementation_is_checked_and_auto_picks_xla_off_gpu():
    cfg = small_cfg(attention="auto")
    m = Transformer(cfg, rngs=nnx.Rngs(0))
    expected = "auto" if jax.default_backend() == "gpu" and cfg.dtype in ("bfloat16", "float16") else "xla"
    assert {b.attn.implementation for b in m.blocks} == {expected}
    cfg.attention = "flash"
    with pytest.raises(ValueError, match="use auto, xla or cudnn"):
        Transformer(cfg, rngs=nnx.Rngs(0))


@pytest.mark.parametrize("context", [0, 7])
def test_attention_by_query_blocks_equals_the_full_one(context):
    """attend_blocks (the CPU full forward's) skips the all-masked blocks above the diagonal and
    gives `attend`'s outputs and gradients, at a length that is not a multiple of the block."""
    from transcendence_jax.model import attend, attend_blocks, causal_mask

    B, T, H, E = 2, 37, 3, 8
    q, k, v, g = (jax.random.normal(jax.random.key(i), (B, T, H, E)) for i in range(4))
    mask = causal_mask(jnp.arange(T)[:, None], jnp.arange(T)[None], context)[None]
    full = lambda q, k, v: attend(q, k, v, mask)  # noqa: E731
    blocks = lambda q, k, v: attend_blocks(q, k, v, mask, 16)  # noqa: E731
    np.testing.assert_allclose(blocks(q, k, v), full(q, k, v), rtol=1e-5, atol=1e-6)
    for a, b in zip(jax.vjp(blocks, q, k, v)[1](g), jax.vjp(full, q, k, v)[1](g)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
