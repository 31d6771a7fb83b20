"""Reparameterizers for :func:`ember.poutine.reparam`.

Each class rewrites one kind of sample site into other sample sites plus a
deterministic map, leaving the model's distribution unchanged while changing
the geometry inference sees.
"""

from ember.infer.reparam.conjugate import ConjugateReparam
from ember.infer.reparam.discrete_cosine import DiscreteCosineReparam
from ember.infer.reparam.haar import HaarReparam
from ember.infer.reparam.hmm import LinearHMMReparam
from ember.infer.reparam.loc_scale import LocScaleReparam
from ember.infer.reparam.neutra import NeuTraReparam
from ember.infer.reparam.projected_normal import ProjectedNormalReparam
from ember.infer.reparam.reparam import Reparam
from ember.infer.reparam.softmax import GumbelSoftmaxReparam
from ember.infer.reparam.split import SplitReparam
from ember.infer.reparam.stable import LatentStableReparam, StableReparam, SymmetricStableReparam
from ember.infer.reparam.strategies import AutoReparam, MinimalReparam, Strategy
from ember.infer.reparam.structured import StructuredReparam
from ember.infer.reparam.studentt import StudentTReparam
from ember.infer.reparam.transform import TransformReparam
from ember.infer.reparam.unit_jacobian import UnitJacobianReparam

__all__ = [
    "AutoReparam",
    "ConjugateReparam",
    "DiscreteCosineReparam",
    "GumbelSoftmaxReparam",
    "HaarReparam",
    "LatentStableReparam",
    "LinearHMMReparam",
    "LocScaleReparam",
    "MinimalReparam",
    "NeuTraReparam",
    "ProjectedNormalReparam",
    "Reparam",
    "SplitReparam",
    "StableReparam",
    "Strategy",
    "StructuredReparam",
    "StudentTReparam",
    "SymmetricStableReparam",
    "TransformReparam",
    "UnitJacobianReparam",
]
