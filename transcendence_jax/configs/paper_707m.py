"""The paper's 707M shape (36 layers, 20 heads, width 1280), otherwise as paper_50m."""

from transcendence_jax.configs import paper_50m


def get_config():
    config = paper_50m.get_config()
    m = config.model
    m.num_layers, m.num_heads, m.embed_dim, m.mlp_dim = 36, 20, 1280, 5120
    m.remat = True
    config.mesh.shape = (1, -1, 1)  # FSDP over every device
    return config
