"""Distributions for ember: wrappers of every torch distribution, ember's own
families, constraints, transforms and flows.

``import ember.distributions as dist`` gives all of them.
"""

from torch.distributions import biject_to, kl_divergence, register_kl, transform_to

from ember.distributions import (
    constraints,
    kl,  # registers ember's extra KL rules
)
from ember.distributions.distribution import Distribution
from ember.distributions.score_parts import ScoreParts
from ember.distributions.torch import *  # noqa: F403
from ember.distributions.torch import __all__ as _torch_all
from ember.distributions.torch_distribution import (
    ExpandedDistribution,
    MaskedDistribution,
    TorchDistribution,
    TorchDistributionMixin,
)
from ember.util import enable_validation, is_validation_enabled, validation_enabled

__all__ = [
    "Distribution",
    "ExpandedDistribution",
    "MaskedDistribution",
    "ScoreParts",
    "TorchDistribution",
    "TorchDistributionMixin",
    "biject_to",
    "constraints",
    "enable_validation",
    "is_validation_enabled",
    "validation_enabled",
    "kl_divergence",
    "register_kl",
    "transform_to",
] + list(_torch_all)

# Transforms and normalizing flows.
from ember.distributions import transforms
from ember.distributions.transforms import (
    AffineAutoregressive,
    BatchNormTransform,
    ComposeTransformModule,
    ConditionalTransformModule,
    DeepSigmoidalFlow,
    InverseAutoregressiveFlow,
    InverseAutoregressiveFlowStable,
    PermuteTransform,
    PlanarFlow,
    RadialFlow,
    TransformModule,
)

__all__ += [
    "AffineAutoregressive",
    "BatchNormTransform",
    "ComposeTransformModule",
    "ConditionalTransformModule",
    "DeepSigmoidalFlow",
    "InverseAutoregressiveFlow",
    "InverseAutoregressiveFlowStable",
    "PermuteTransform",
    "PlanarFlow",
    "RadialFlow",
    "TransformModule",
    "transforms",
]

# Ember's own families: mixtures with pathwise gradients, OMT/AVF normals, spanning trees.
from ember.distributions.avf_mvn import AVFMultivariateNormal
from ember.distributions.diag_normal_mixture import (
    MixtureOfDiagNormals,
    MixtureOfDiagNormalsSharedCovariance,
)
from ember.distributions.gaussian_scale_mixture import GaussianScaleMixture
from ember.distributions.masked_mixture import MaskedMixture
from ember.distributions.omt_mvn import OMTMultivariateNormal
from ember.distributions.spanning_tree import SpanningTree

__all__ += [
    "AVFMultivariateNormal",
    "GaussianScaleMixture",
    "MaskedMixture",
    "MixtureOfDiagNormals",
    "MixtureOfDiagNormalsSharedCovariance",
    "OMTMultivariateNormal",
    "SpanningTree",
]

# Ember's own families: point mass, empirical, conjugate compounds, LKJ, von Mises on
# the sphere, rejection sampling and straight-through relaxations. (InverseGamma and
# VonMises are wrappers of torch's classes: they come with ember.distributions.torch.)
from ember.distributions.conjugate import BetaBinomial, DirichletMultinomial, GammaPoisson
from ember.distributions.delta import Delta
from ember.distributions.empirical import Empirical
from ember.distributions.lkj import LKJCorrCholesky
from ember.distributions.rejector import Rejector
from ember.distributions.relaxed_straight_through import (
    RelaxedBernoulliStraightThrough,
    RelaxedOneHotCategoricalStraightThrough,
)
from ember.distributions.von_mises_3d import VonMises3D

__all__ += [
    "BetaBinomial",
    "Delta",
    "DirichletMultinomial",
    "Empirical",
    "GammaPoisson",
    "LKJCorrCholesky",
    "Rejector",
    "RelaxedBernoulliStraightThrough",
    "RelaxedOneHotCategoricalStraightThrough",
    "VonMises3D",
]

# More families: Laplace and logistic variants, extended and zero-inflated counts, folded,
# improper and unit distributions, directional families and the multivariate Student t.
from ember.distributions.affine_beta import AffineBeta
from ember.distributions.asymmetric_laplace import AsymmetricLaplace, SoftAsymmetricLaplace
from ember.distributions.conditional import (
    ConditionalDistribution,
    ConditionalTransform,
    ConditionalTransformedDistribution,
)
from ember.distributions.exponential_family import ExponentialFamily
from ember.distributions.extended import ExtendedBetaBinomial, ExtendedBinomial
from ember.distributions.folded import FoldedDistribution
from ember.distributions.improper_uniform import ImproperUniform
from ember.distributions.lkj import LKJ
from ember.distributions.log_normal_negative_binomial import LogNormalNegativeBinomial
from ember.distributions.logistic import Logistic, SkewLogistic
from ember.distributions.multivariate_studentt import MultivariateStudentT
from ember.distributions.ordered_logistic import OrderedLogistic
from ember.distributions.projected_normal import ProjectedNormal
from ember.distributions.sine_bivariate_von_mises import SineBivariateVonMises
from ember.distributions.sine_skewed import SineSkewed
from ember.distributions.soft_laplace import SoftLaplace
from ember.distributions.stable import Stable, StableWithLogProb
from ember.distributions.unit import Unit
from ember.distributions.zero_inflated import (
    ZeroInflatedDistribution,
    ZeroInflatedNegativeBinomial,
    ZeroInflatedPoisson,
)

__all__ += [
    "AffineBeta",
    "AsymmetricLaplace",
    "ConditionalDistribution",
    "ConditionalTransform",
    "ConditionalTransformedDistribution",
    "ExponentialFamily",
    "ExtendedBetaBinomial",
    "ExtendedBinomial",
    "FoldedDistribution",
    "ImproperUniform",
    "LKJ",
    "LogNormalNegativeBinomial",
    "Logistic",
    "MultivariateStudentT",
    "OrderedLogistic",
    "ProjectedNormal",
    "SineBivariateVonMises",
    "SineSkewed",
    "SkewLogistic",
    "SoftAsymmetricLaplace",
    "SoftLaplace",
    "Stable",
    "StableWithLogProb",
    "Unit",
    "ZeroInflatedDistribution",
    "ZeroInflatedNegativeBinomial",
    "ZeroInflatedPoisson",
]

# Hidden Markov models over whole sequences.
from ember.distributions.hmm import (  # noqa: E402
    DiscreteHMM,
    GammaGaussianHMM,
    GaussianHMM,
    GaussianMRF,
    IndependentHMM,
    LinearHMM,
)

__all__ += [
    "DiscreteHMM",
    "GammaGaussianHMM",
    "GaussianHMM",
    "GaussianMRF",
    "IndependentHMM",
    "LinearHMM",
]

# Missing-data normals, the truncated Polya-Gamma and grouped normal-normal likelihoods.
from ember.distributions.grouped_normal_normal import GroupedNormalNormal  # noqa: E402
from ember.distributions.nanmasked import (  # noqa: E402
    NanMaskedMultivariateNormal,
    NanMaskedNormal,
)
from ember.distributions.polya_gamma import TruncatedPolyaGamma  # noqa: E402

__all__ += [
    "GroupedNormalNormal",
    "NanMaskedMultivariateNormal",
    "NanMaskedNormal",
    "TruncatedPolyaGamma",
]

# Random matchings with edge logits (exact dynamic programs and Bethe approximations).
from ember.distributions.one_one_matching import OneOneMatching  # noqa: E402
from ember.distributions.one_two_matching import OneTwoMatching  # noqa: E402

__all__ += ["OneOneMatching", "OneTwoMatching"]

# Kingman's coalescent.
from ember.distributions.coalescent import (  # noqa: E402
    CoalescentRateLikelihood,
    CoalescentTimes,
    CoalescentTimesWithRate,
)

__all__ += ["CoalescentRateLikelihood", "CoalescentTimes", "CoalescentTimesWithRate"]
