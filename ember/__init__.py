"""ember: a probabilistic programming language on PyTorch with Pyro's API.

``import ember as pyro`` runs Pyro programs unchanged.
"""

from ember import settings
from ember.util import enable_validation, set_rng_seed

__version__ = "0.1.0"

__all__ = ["enable_validation", "set_rng_seed", "settings", "__version__"]

# Optimizers (issue 6); language: runtime, primitives, param store (issue 5).
from ember import optim, poutine  # noqa: E402
from ember.poutine import condition, do  # noqa: E402
from ember.primitives import (  # noqa: E402
    barrier,
    clear_param_store,
    deterministic,
    factor,
    get_param_store,
    iarange,
    irange,
    module,
    observe,
    param,
    plate,
    plate_stack,
    random_module,
    sample,
    subsample,
)
from ember.util import validation_enabled  # noqa: E402

__all__ += [
    "barrier",
    "clear_param_store",
    "condition",
    "do",
    "plate_stack",
    "deterministic",
    "factor",
    "get_param_store",
    "iarange",
    "irange",
    "module",
    "observe",
    "param",
    "plate",
    "poutine",
    "random_module",
    "sample",
    "subsample",
    "validation_enabled",
]

# Inference: SVI, ELBOs, Importance, Search, Predictive (issue 6).
from ember import infer  # noqa: E402

__all__ += ["infer"]

# Markov declarations for enumeration (``pyro.markov``).
from ember.poutine.handlers import markov  # noqa: E402

__all__ += ["markov"]
