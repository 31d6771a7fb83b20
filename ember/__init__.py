"""ember: a probabilistic programming language on PyTorch with Pyro's API.

``import ember as pyro`` runs Pyro programs unchanged.
"""

from ember import settings
from ember.util import enable_validation, set_rng_seed

__version__ = "0.1.0"

__all__ = ["enable_validation", "set_rng_seed", "settings", "__version__"]
