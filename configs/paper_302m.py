"""Re-export of transcendence_jax/configs/paper_302m.py (the packaged canonical file)."""

from transcendence_jax.configs.paper_302m import get_config  # noqa: F401
