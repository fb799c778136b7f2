"""Re-export of transcendence_jax/configs/paper_50m.py (the packaged canonical file)."""

from transcendence_jax.configs.paper_50m import get_config  # noqa: F401
