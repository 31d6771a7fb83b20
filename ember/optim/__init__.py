"""Optimizers for ember's inference: PyroOptim, ClippedAdam, torch wrappers, schedulers.

``ember.optim.Adam({"lr": 0.01})`` and friends wrap every optimizer in
``torch.optim``; ``ember.optim.ExponentialLR`` and friends every learning-rate
scheduler in ``torch.optim.lr_scheduler``. All of them take up parameters as
they appear during inference (see :class:`PyroOptim`).
"""

from ember.optim import multi, pytorch_optimizers
from ember.optim.distributed import DistributedOptimizer, HorovodOptimizer
from ember.optim.lr_scheduler import PyroLRScheduler
from ember.optim.multi import (
    MixedMultiOptimizer,
    MultiOptimizer,
    Newton,
    PyroMultiOptimizer,
    TorchMultiOptimizer,
)
from ember.optim.optim import PyroOptim
from ember.optim.pytorch_optimizers import *
from ember.optim.pytorch_optimizers import ClippedAdam

__all__ = (
    [
        "DistributedOptimizer",
        "HorovodOptimizer",
        "PyroOptim",
        "PyroLRScheduler",
        "multi",
    ]
    + list(multi.__all__)
    + list(pytorch_optimizers.__all__)
)
