"""ember: a probabilistic programming language on PyTorch with Pyro's API.

``import ember as pyro`` runs Pyro programs unchanged.
"""

from ember import settings
from ember.logger import log
from ember.util import enable_validation, set_rng_seed, validation_enabled

__version__ = "0.1.0"

# The language: effect handlers, primitives and the param store; then the optimizers
# and inference, which are built on them.
from ember import infer, optim, poutine  # noqa: E402
from ember.infer.inspect import render_model  # noqa: E402
from ember.poutine import condition, do, markov  # noqa: E402
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

__all__ = [
    "__version__",
    "barrier",
    "clear_param_store",
    "condition",
    "deterministic",
    "do",
    "enable_validation",
    "factor",
    "get_param_store",
    "iarange",
    "infer",
    "irange",
    "log",
    "markov",
    "module",
    "observe",
    "optim",
    "param",
    "plate",
    "plate_stack",
    "poutine",
    "random_module",
    "render_model",
    "sample",
    "set_rng_seed",
    "settings",
    "subsample",
    "validation_enabled",
]
