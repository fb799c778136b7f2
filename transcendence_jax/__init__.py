"""transcendence-jax: the Transcendence experiments (Zhang et al., 2024) in JAX/Flax."""

__version__ = "0.1.0"
__all__ = ["__version__"]
