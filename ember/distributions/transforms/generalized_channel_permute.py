"""Invertible 1x1 convolution (Kingma and Dhariwal 2018, arXiv:1807.03039): a learnable
linear mixing of the channels of images ``(..., C, H, W)``, stored in LU form."""

from __future__ import annotations

import torch
from torch.distributions import constraints
from torch.distributions.transforms import Transform

from ember.distributions.transforms.torch_transform import (
    ConditionalTransformModule,
    TransformModule,
    check_positive_int,
)
from ember.nn.auto_reg_nn import DenseNN


def _permutation_matrix(permutation, channels: int, owner: str) -> torch.Tensor:
    perm = torch.as_tensor(permutation).long()
    if perm.shape != (channels,) or not torch.equal(perm.sort().values, torch.arange(channels)):
        raise ValueError(
            f"{owner}: permutation must be a permutation of range({channels}), got {perm.tolist()}"
        )
    return torch.eye(channels)[perm]


class ConditionedGeneralizedChannelPermute(Transform):
    """``y[..., :, h, w] = P L U x[..., :, h, w]``: the same invertible ``C x C`` matrix
    mixes the channels at every pixel.

    ``P`` is a permutation matrix; ``LU`` holds ``L`` (unit lower triangular,
    strictly below the diagonal) and ``U`` (upper triangular, on and above it)
    in one ``batch + (C, C)`` tensor. ``log|det J| = H W sum_c log|U_cc|`` and
    the inverse is two triangular solves. Built by
    :meth:`ConditionalGeneralizedChannelPermute.condition`.

    Example::

        >>> import torch
        >>> from ember.distributions.transforms.generalized_channel_permute import (
        ...     ConditionedGeneralizedChannelPermute)
        >>> swap = torch.tensor([[0.0, 1.0], [1.0, 0.0]])
        >>> t = ConditionedGeneralizedChannelPermute(swap, torch.eye(2))
        >>> t(torch.arange(4.0).reshape(2, 1, 2))
        tensor([[[2., 3.]],
        <BLANKLINE>
                [[0., 1.]]])
    """

    domain = constraints.independent(constraints.real, 3)
    codomain = constraints.independent(constraints.real, 3)
    bijective = True

    def __init__(self, permutation=None, LU=None) -> None:
        super().__init__(cache_size=1)
        self.permutation = permutation
        self.LU = LU

    @property
    def U_diag(self) -> torch.Tensor:
        """The diagonal of ``U``."""
        return self.LU.diagonal(dim1=-2, dim2=-1)

    @property
    def L(self) -> torch.Tensor:
        """The unit lower-triangular factor."""
        eye = torch.eye(self.LU.size(-1), dtype=self.LU.dtype, device=self.LU.device)
        return self.LU.tril(-1) + eye

    @property
    def U(self) -> torch.Tensor:
        """The upper-triangular factor."""
        return self.LU.triu()

    def weight(self) -> torch.Tensor:
        """The channel-mixing matrix ``P L U``, shape ``batch + (C, C)``."""
        return self.permutation.to(self.LU) @ self.L @ self.U

    def _check(self, x):
        channels = self.LU.size(-1)
        if x.dim() < 3 or x.size(-3) != channels:
            raise ValueError(
                f"{type(self).__name__}: input must have shape (..., {channels}, H, W), got "
                f"{tuple(x.shape)}"
            )

    def _call(self, x):
        self._check(x)
        y = self.weight() @ x.flatten(-2)  # (..., C, H*W)
        return y.reshape(y.shape[:-1] + x.shape[-2:])

    def _inverse(self, y):
        self._check(y)
        flat = y.flatten(-2)
        permuted = self.permutation.to(self.LU).mT @ flat  # P^-1 = P^T
        Ux = torch.linalg.solve_triangular(self.L, permuted, upper=False, unitriangular=True)
        x = torch.linalg.solve_triangular(self.U, Ux, upper=True)
        return x.reshape(x.shape[:-1] + y.shape[-2:])

    def log_abs_det_jacobian(self, x, y):
        """``H W sum_c log|U_cc|``, one value per image."""
        h, w = x.shape[-2:]
        log_det = h * w * self.U_diag.abs().log().sum(-1)
        return log_det.expand(torch.broadcast_shapes(x.shape[:-3], log_det.shape))


class GeneralizedChannelPermute(ConditionedGeneralizedChannelPermute, TransformModule):
    """A learnable invertible mixing of the ``channels`` channels of images
    ``(..., C, H, W)`` (Glow's invertible 1x1 convolution).

    The mixing matrix is ``W = P L U``, initialized to a random orthogonal
    matrix: ``P`` (from its pivoted LU decomposition, or the given
    ``permutation``) stays fixed, and ``L`` (unit lower triangular) and ``U``
    (upper triangular) are learnt, stored together in the parameter ``LU``.
    ``log|det J| = H W sum_c log|U_cc|``; the inverse is exact.

    :param channels: the number ``C`` of channels.
    :param permutation: optional order of the channels fixing ``P`` (a
        permutation of ``range(C)``).

    Example::

        >>> import torch, ember.distributions as dist
        >>> from ember.distributions.transforms import GeneralizedChannelPermute
        >>> flow = GeneralizedChannelPermute(channels=3)
        >>> x = torch.randn(2, 3, 4, 4)
        >>> torch.allclose(flow.inv(flow(x)), x, atol=1e-5)
        True
        >>> base = dist.Normal(torch.zeros(3, 4, 4), 1.0).to_event(3)
        >>> dist.TransformedDistribution(base, [flow]).sample((5,)).shape
        torch.Size([5, 3, 4, 4])
    """

    domain = constraints.independent(constraints.real, 3)
    codomain = constraints.independent(constraints.real, 3)
    bijective = True

    def __init__(self, channels: int = 3, permutation=None) -> None:
        super().__init__()
        check_positive_int("GeneralizedChannelPermute", "channels", channels)
        del self.permutation
        del self.LU
        W, _ = torch.linalg.qr(torch.randn(channels, channels))
        LU, pivots = torch.linalg.lu_factor(W)
        if permutation is None:
            P, _, _ = torch.lu_unpack(LU, pivots)
        else:
            P = _permutation_matrix(permutation, channels, "GeneralizedChannelPermute")
        self.channels = channels
        # a buffer, so that the fixed permutation is saved with the module's state
        self.register_buffer("permutation", P)
        self.LU = torch.nn.Parameter(LU)


class ConditionalGeneralizedChannelPermute(ConditionalTransformModule):
    """An invertible channel mixing ``P L U`` whose ``LU`` a network computes from a context.

    ``nn`` maps a context of shape ``batch + (context_dim,)`` to
    ``batch + (C * C,)``, read row by row as the packed ``LU`` matrix; ``P`` is
    the fixed permutation (random unless ``permutation`` is given).
    ``condition(context)`` returns the :class:`ConditionedGeneralizedChannelPermute`
    map. The context's batch shape must broadcast against the images' batch.

    Example::

        >>> import torch
        >>> from ember.distributions.transforms import conditional_generalized_channel_permute
        >>> flow = conditional_generalized_channel_permute(context_dim=2, channels=3)
        >>> t = flow.condition(torch.randn(2))
        >>> x = torch.randn(5, 3, 4, 4)
        >>> torch.allclose(t.inv(t(x)), x, atol=1e-3)
        True
    """

    domain = constraints.independent(constraints.real, 3)
    codomain = constraints.independent(constraints.real, 3)
    bijective = True
    event_dim = 3

    def __init__(self, nn: torch.nn.Module, channels: int = 3, permutation=None) -> None:
        super().__init__()
        check_positive_int("ConditionalGeneralizedChannelPermute", "channels", channels)
        self.nn = nn
        self.channels = channels
        if permutation is None:
            permutation = torch.randperm(channels)
        P = _permutation_matrix(permutation, channels, "ConditionalGeneralizedChannelPermute")
        self.register_buffer("permutation", P)

    def condition(self, context: torch.Tensor) -> ConditionedGeneralizedChannelPermute:
        """The channel mixing for ``context``."""
        LU = self.nn(context)
        if LU.size(-1) != self.channels**2:
            raise ValueError(
                f"ConditionalGeneralizedChannelPermute: nn must output {self.channels**2} "
                f"values (a {self.channels} x {self.channels} matrix), got {tuple(LU.shape)}"
            )
        LU = LU.reshape(LU.shape[:-1] + (self.channels, self.channels))
        return ConditionedGeneralizedChannelPermute(self.permutation, LU)


def generalized_channel_permute(**kwargs) -> GeneralizedChannelPermute:
    """A :class:`GeneralizedChannelPermute` (keyword arguments ``channels``, ``permutation``).

    Example::

        >>> from ember.distributions.transforms import generalized_channel_permute
        >>> generalized_channel_permute(channels=4).LU.shape
        torch.Size([4, 4])
    """
    return GeneralizedChannelPermute(**kwargs)


def conditional_generalized_channel_permute(
    context_dim: int, channels: int = 3, hidden_dims: list[int] | None = None
) -> ConditionalGeneralizedChannelPermute:
    """A :class:`ConditionalGeneralizedChannelPermute` on a :class:`~ember.nn.DenseNN`
    of the context; ``hidden_dims`` defaults to ``[10 * channels, 10 * channels]``.

    Example::

        >>> import torch
        >>> from ember.distributions.transforms import conditional_generalized_channel_permute
        >>> flow = conditional_generalized_channel_permute(context_dim=2, channels=2)
        >>> flow.condition(torch.zeros(2))(torch.zeros(3, 2, 5, 5)).shape
        torch.Size([3, 2, 5, 5])
    """
    check_positive_int("conditional_generalized_channel_permute", "context_dim", context_dim)
    check_positive_int("conditional_generalized_channel_permute", "channels", channels)
    if hidden_dims is None:
        hidden_dims = [channels * 10, channels * 10]
    net = DenseNN(context_dim, hidden_dims, param_dims=[channels * channels])
    return ConditionalGeneralizedChannelPermute(net, channels)
