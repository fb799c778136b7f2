"""The paper's 50M ChessFormer (nanoGPT 16 layers, 8 heads, width 512) over move tokens.

Context 512 move tokens (longer than the longest game the paper's 1023 characters held).
The paper's optimizer: AdamW 3e-4, betas (0.9, 0.95), wd 0.1, clip 1, warmup 2000, cosine to
3e-5 over 4e6 steps (so the lr stays near 3e-4 for the ~100k steps run), 500 sequences a
step, bf16. Board input and the legal-move loss are off, as in the paper.
"""

from transcendence_jax.config import base_config


def get_config():
    config = base_config()
    m = config.model
    m.num_layers, m.num_heads, m.embed_dim, m.mlp_dim = 16, 8, 512, 2048
    m.max_len = 512
    m.dtype, m.param_dtype = "bfloat16", "float32"
    d = config.data
    d.seq_len, d.packing = 512, "pack"
    t = config.train
    # 500 sequences a step, as the paper (125 x 4 GPUs): it divides over 1, 2, 4, 5, 10, 20...
    # data-parallel devices; on 8 / 16 / 32 chips use --config.train.batch_size=512. Raise
    # grad_accum when a device runs out of memory (the per-step batch must still divide).
    t.steps, t.batch_size, t.grad_accum = 100_000, 500, 1
    t.lr, t.min_lr, t.warmup_steps, t.decay_steps = 3e-4, 3e-5, 2000, 4_000_000
    t.eval_every, t.eval_batches, t.checkpoint_every, t.log_every = 1000, 20, 1000, 50
    config.mesh.shape = (-1, 1, 1)  # pure data parallel: 50M parameters fit anywhere
    return config
