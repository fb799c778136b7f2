"""Re-export of transcendence_jax/configs/tiny.py (the packaged canonical file)."""

from transcendence_jax.configs.tiny import get_config  # noqa: F401
