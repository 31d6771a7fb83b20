"""Transforms and normalizing flows.

Every transform of ``torch.distributions.transforms`` is re-exported here,
next to :class:`TransformModule` (a transform that is an ``nn.Module``) and
the learnable flows: :class:`InverseAutoregressiveFlow`,
:class:`InverseAutoregressiveFlowStable`, :class:`PlanarFlow`,
:class:`RadialFlow`, :class:`BatchNormTransform`,
:class:`DeepSigmoidalFlow` and :class:`PermuteTransform`. The lowercase
helpers (:func:`iaf`, :func:`planar`, ...) build a flow with its network;
:func:`iterated` composes several. Fixed bijections beyond torch's
(:class:`CholeskyTransform`, :class:`DiscreteCosineTransform`,
:class:`HaarTransform`, :class:`OrderedTransform`, ...) and the linear flows
:class:`Householder`, :class:`MatrixExponential` and
:class:`GeneralizedChannelPermute` (with their ``Conditional*`` variants) live
here too; the modules that define the transforms onto ember's constraints
register them with ``biject_to`` / ``transform_to``.

Example::

    >>> import torch, ember.distributions as dist
    >>> from ember.distributions import transforms as T
    >>> flows = [T.iaf(2, [8]), T.permute(2), T.planar(2), T.radial(2)]
    >>> d = dist.TransformedDistribution(dist.Normal(torch.zeros(2), 1.0), flows)
    >>> d.log_prob(d.sample((7,))).shape
    torch.Size([7])
"""

from torch.distributions.transforms import *  # noqa: F403
from torch.distributions.transforms import __all__ as _torch_all

from ember.distributions.transforms.affine_autoregressive import (
    AffineAutoregressive,
    ConditionalAffineAutoregressive,
    InverseAutoregressiveFlow,
    InverseAutoregressiveFlowStable,
    affine_autoregressive,
    clamp_preserve_gradients,
    conditional_affine_autoregressive,
    iaf,
)
from ember.distributions.transforms.affine_coupling import (
    AffineCoupling,
    ConditionalAffineCoupling,
    affine_coupling,
    conditional_affine_coupling,
)
from ember.distributions.transforms.basic import ELUTransform, LeakyReLUTransform, elu, leaky_relu
from ember.distributions.transforms.batchnorm import BatchNormTransform, batchnorm
from ember.distributions.transforms.block_autoregressive import (
    BlockAutoregressive,
    block_autoregressive,
)
from ember.distributions.transforms.cholesky import (
    CholeskyTransform,
    CorrLCholeskyTransform,
    CorrMatrixCholeskyTransform,
)
from ember.distributions.transforms.discrete_cosine import DiscreteCosineTransform
from ember.distributions.transforms.generalized_channel_permute import (
    ConditionalGeneralizedChannelPermute,
    GeneralizedChannelPermute,
    conditional_generalized_channel_permute,
    generalized_channel_permute,
)
from ember.distributions.transforms.haar import HaarTransform
from ember.distributions.transforms.householder import (
    ConditionalHouseholder,
    Householder,
    conditional_householder,
    householder,
)
from ember.distributions.transforms.lower_cholesky_affine import LowerCholeskyAffine
from ember.distributions.transforms.matrix_exponential import (
    ConditionalMatrixExponential,
    MatrixExponential,
    conditional_matrix_exponential,
    matrix_exponential,
)
from ember.distributions.transforms.neural_autoregressive import (
    ConditionalNeuralAutoregressive,
    DeepSigmoidalFlow,
    NeuralAutoregressive,
    conditional_neural_autoregressive,
    deep_sigmoidal,
    neural_autoregressive,
)
from ember.distributions.transforms.normalize import Normalize
from ember.distributions.transforms.ordered import OrderedTransform
from ember.distributions.transforms.permute import PermuteTransform, permute
from ember.distributions.transforms.planar import (
    ConditionalPlanar,
    PlanarFlow,
    conditional_planar,
    planar,
)
from ember.distributions.transforms.polynomial import Polynomial, polynomial
from ember.distributions.transforms.power import PositivePowerTransform
from ember.distributions.transforms.radial import (
    ConditionalRadial,
    RadialFlow,
    conditional_radial,
    radial,
)
from ember.distributions.transforms.simplex_to_ordered import SimplexToOrderedTransform
from ember.distributions.transforms.softplus import (
    SoftplusLowerCholeskyTransform,
    SoftplusTransform,
)
from ember.distributions.transforms.spline import (
    ConditionalSpline,
    Spline,
    conditional_spline,
    spline,
)
from ember.distributions.transforms.spline_autoregressive import (
    ConditionalSplineAutoregressive,
    SplineAutoregressive,
    conditional_spline_autoregressive,
    spline_autoregressive,
)
from ember.distributions.transforms.spline_coupling import SplineCoupling, spline_coupling
from ember.distributions.transforms.sylvester import Sylvester, sylvester
from ember.distributions.transforms.torch_transform import (
    ComposeTransformModule,
    ConditionalTransformModule,
    InverseNotAvailableError,
    TransformModule,
    iterated,
)
from ember.distributions.transforms.unit_cholesky import UnitLowerCholeskyTransform

# Names of the same flows in later Pyro releases.
Planar = PlanarFlow
Radial = RadialFlow
BatchNorm = BatchNormTransform
Permute = PermuteTransform

__all__ = list(_torch_all) + [
    "CholeskyTransform",
    "ConditionalGeneralizedChannelPermute",
    "ConditionalHouseholder",
    "ConditionalMatrixExponential",
    "CorrLCholeskyTransform",
    "CorrMatrixCholeskyTransform",
    "DiscreteCosineTransform",
    "ELUTransform",
    "GeneralizedChannelPermute",
    "HaarTransform",
    "Householder",
    "LeakyReLUTransform",
    "LowerCholeskyAffine",
    "MatrixExponential",
    "Normalize",
    "OrderedTransform",
    "PositivePowerTransform",
    "SimplexToOrderedTransform",
    "SoftplusLowerCholeskyTransform",
    "SoftplusTransform",
    "UnitLowerCholeskyTransform",
    "conditional_generalized_channel_permute",
    "conditional_householder",
    "conditional_matrix_exponential",
    "elu",
    "generalized_channel_permute",
    "householder",
    "leaky_relu",
    "matrix_exponential",
    "BlockAutoregressive",
    "ConditionalNeuralAutoregressive",
    "ConditionalPlanar",
    "ConditionalRadial",
    "NeuralAutoregressive",
    "Polynomial",
    "Sylvester",
    "block_autoregressive",
    "conditional_neural_autoregressive",
    "conditional_planar",
    "conditional_radial",
    "polynomial",
    "sylvester",
    "AffineAutoregressive",
    "AffineCoupling",
    "ConditionalAffineCoupling",
    "ConditionalSpline",
    "ConditionalSplineAutoregressive",
    "Spline",
    "SplineAutoregressive",
    "SplineCoupling",
    "affine_coupling",
    "conditional_affine_coupling",
    "conditional_spline",
    "conditional_spline_autoregressive",
    "spline",
    "spline_autoregressive",
    "spline_coupling",
    "BatchNorm",
    "BatchNormTransform",
    "ComposeTransformModule",
    "ConditionalAffineAutoregressive",
    "ConditionalTransformModule",
    "DeepSigmoidalFlow",
    "InverseAutoregressiveFlow",
    "InverseAutoregressiveFlowStable",
    "InverseNotAvailableError",
    "Permute",
    "PermuteTransform",
    "Planar",
    "PlanarFlow",
    "Radial",
    "RadialFlow",
    "TransformModule",
    "affine_autoregressive",
    "batchnorm",
    "clamp_preserve_gradients",
    "conditional_affine_autoregressive",
    "deep_sigmoidal",
    "iaf",
    "iterated",
    "neural_autoregressive",
    "permute",
    "planar",
    "radial",
]
