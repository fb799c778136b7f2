"""Re-export of transcendence_jax/configs/paper_707m.py (the packaged canonical file)."""

from transcendence_jax.configs.paper_707m import get_config  # noqa: F401
