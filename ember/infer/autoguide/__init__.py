"""Automatic guides (``ember.infer.autoguide``): variational families made from a model.

``guide = AutoNormal(model)`` gives a guide for every latent site of
``model``, ready for :class:`~ember.infer.SVI`. The guides live in
:mod:`~ember.infer.autoguide.guides` (per-site and joint guides),
:mod:`~ember.infer.autoguide.effect` (guides that run as effect handlers
around the model), :mod:`~ember.infer.autoguide.structured` and
:mod:`~ember.infer.autoguide.gaussian`; the initialization strategies in
:mod:`~ember.infer.autoguide.initialization`.
"""

from ember.infer.autoguide.effect import (
    AutoHierarchicalNormalMessenger,
    AutoMessenger,
    AutoNormalMessenger,
    AutoRegressiveMessenger,
)
from ember.infer.autoguide.gaussian import AutoGaussian
from ember.infer.autoguide.guides import (
    AutoCallable,
    AutoContinuous,
    AutoDelta,
    AutoDiagonalNormal,
    AutoDiscreteParallel,
    AutoGuide,
    AutoGuideList,
    AutoIAFNormal,
    AutoLaplaceApproximation,
    AutoLowRankMultivariateNormal,
    AutoMultivariateNormal,
    AutoNormal,
    AutoNormalizingFlow,
)
from ember.infer.autoguide.initialization import (
    init_to_feasible,
    init_to_generated,
    init_to_mean,
    init_to_median,
    init_to_sample,
    init_to_uniform,
    init_to_value,
)
from ember.infer.autoguide.structured import AutoStructured
from ember.infer.autoguide.utils import mean_field_entropy

__all__ = [
    "AutoCallable",
    "AutoContinuous",
    "AutoDelta",
    "AutoDiagonalNormal",
    "AutoDiscreteParallel",
    "AutoGaussian",
    "AutoGuide",
    "AutoGuideList",
    "AutoHierarchicalNormalMessenger",
    "AutoIAFNormal",
    "AutoLaplaceApproximation",
    "AutoLowRankMultivariateNormal",
    "AutoMessenger",
    "AutoMultivariateNormal",
    "AutoNormal",
    "AutoNormalMessenger",
    "AutoNormalizingFlow",
    "AutoRegressiveMessenger",
    "AutoStructured",
    "init_to_feasible",
    "init_to_generated",
    "init_to_mean",
    "init_to_median",
    "init_to_sample",
    "init_to_uniform",
    "init_to_value",
    "mean_field_entropy",
]
