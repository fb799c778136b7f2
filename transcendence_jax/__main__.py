import sys

from transcendence_jax.cli import main

sys.exit(main())
