"""The CPU demo's decoder: 1.2M parameters, board input, the board head and the legal-move loss.

Small enough to learn the synthetic experts' policy in minutes on 2 CPU cores.
"""

from transcendence_jax.config import base_config


def get_config():
    config = base_config()
    m = config.model
    m.num_layers, m.num_heads, m.embed_dim, m.mlp_dim = 4, 4, 128, 512
    m.max_len = 128  # >= seq_len; positions past 101 are untrained (games are capped at 100 plies)
    m.board_input = True
    m.board_head = True  # a move's logit reads the pieces on its squares: KL from the experts' mixture 0.37 -> 0.15
    m.dtype, m.param_dtype = "float32", "float32"
    d = config.data
    d.seq_len, d.packing, d.boards = 101, "pad", True  # BOS + 100 plies: one game a row
    t = config.train
    t.steps, t.batch_size, t.grad_accum = 900, 32, 1
    t.lr, t.min_lr, t.warmup_steps, t.decay_steps = 2e-3, 2e-4, 50, 900
    t.legal_loss, t.legal_mask = True, "device"  # pseudo-legal masks made in the step: no host cost
    t.eval_every, t.eval_batches, t.checkpoint_every, t.log_every = 200, 4, 200, 10
    config.mesh.shape = (-1, 1, 1)
    return config
