"""Transforms and normalizing flows.

Every transform of ``torch.distributions.transforms`` is re-exported here,
next to :class:`TransformModule` (a transform that is an ``nn.Module``) and
the learnable flows: :class:`InverseAutoregressiveFlow`,
:class:`InverseAutoregressiveFlowStable`, :class:`PlanarFlow`,
:class:`RadialFlow`, :class:`BatchNormTransform`,
:class:`DeepSigmoidalFlow` and :class:`PermuteTransform`. The lowercase
helpers (:func:`iaf`, :func:`planar`, ...) build a flow with its network;
:func:`iterated` composes several.

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
from ember.distributions.transforms.batchnorm import BatchNormTransform, batchnorm
from ember.distributions.transforms.block_autoregressive import (
    BlockAutoregressive,
    block_autoregressive,
)
from ember.distributions.transforms.neural_autoregressive import (
    ConditionalNeuralAutoregressive,
    DeepSigmoidalFlow,
    NeuralAutoregressive,
    conditional_neural_autoregressive,
    deep_sigmoidal,
    neural_autoregressive,
)
from ember.distributions.transforms.permute import PermuteTransform, permute
from ember.distributions.transforms.planar import (
    ConditionalPlanar,
    PlanarFlow,
    conditional_planar,
    planar,
)
from ember.distributions.transforms.polynomial import Polynomial, polynomial
from ember.distributions.transforms.radial import (
    ConditionalRadial,
    RadialFlow,
    conditional_radial,
    radial,
)
from ember.distributions.transforms.sylvester import Sylvester, sylvester
from ember.distributions.transforms.torch_transform import (
    ComposeTransformModule,
    ConditionalTransformModule,
    InverseNotAvailableError,
    TransformModule,
    iterated,
)

# Names of the same flows in later Pyro releases.
Planar = PlanarFlow
Radial = RadialFlow
BatchNorm = BatchNormTransform
Permute = PermuteTransform

__all__ = list(_torch_all) + [
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
