"""The paper's 707M shape (36 layers, 20 heads, width 1280), otherwise as paper_302m (remat, FSDP)."""

from transcendence_jax.configs import paper_302m


def get_config():
    config = paper_302m.get_config()
    m = config.model
    m.num_layers, m.num_heads, m.embed_dim, m.mlp_dim = 36, 20, 1280, 5120
    return config
