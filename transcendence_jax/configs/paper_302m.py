"""The paper's 302M shape (24 layers, 16 heads, width 1024), otherwise as paper_50m."""

from transcendence_jax.configs import paper_50m


def get_config():
    config = paper_50m.get_config()
    m = config.model
    m.num_layers, m.num_heads, m.embed_dim, m.mlp_dim = 24, 16, 1024, 4096
    m.remat = True
    config.mesh.shape = (1, -1, 1)  # FSDP over every device
    return config
