"""Inverse autoregressive flows (Kingma et al. 2016, arXiv:1606.04934).

``y = mu(x) + sigma(x) * x`` where ``mu`` and ``sigma`` come from an
autoregressive network, so the Jacobian is triangular (in the network's
ordering) and ``log|det J| = sum(log sigma)``. Sampling is one network pass;
inverting an arbitrary ``y`` takes ``D`` sequential passes, unless ``y`` was
produced by the latest forward call, whose input is cached.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch.distributions import constraints
from torch.nn import functional as F

from ember.distributions.transforms.torch_transform import (
    ConditionalTransformModule,
    TransformModule,
    check_last_dim,
)
from ember.nn.auto_reg_nn import AutoRegressiveNN, ConditionalAutoRegressiveNN


def clamp_preserve_gradients(x: torch.Tensor, min: float, max: float) -> torch.Tensor:
    """Clamp ``x`` to ``[min, max]`` in value while keeping the identity's gradient.

    Example::

        >>> import torch
        >>> x = torch.tensor([-10.0, 0.0, 10.0], requires_grad=True)
        >>> y = clamp_preserve_gradients(x, -5.0, 3.0)
        >>> y.detach()
        tensor([-5.,  0.,  3.])
        >>> y.sum().backward(); x.grad
        tensor([1., 1., 1.])
    """
    return x + (x.clamp(min, max) - x).detach()


def _input_dim(arn) -> int | None:
    return getattr(arn, "input_dim", None)


class AffineAutoregressive(TransformModule):
    """An affine autoregressive flow: the inverse autoregressive flow of Kingma et al. 2016.

    With ``stable=False`` (Eq. 10): ``y = mu + sigma * x`` with
    ``log sigma`` the network's second output clipped to
    ``[log_scale_min_clip, log_scale_max_clip]`` (the clipping keeps the
    gradient of the unclipped value). With ``stable=True`` (Eqs. 13/14):
    ``sigma = sigmoid(s + sigmoid_bias)`` in ``(0, 1)`` and
    ``y = sigma * x + (1 - sigma) * mu``.

    ``autoregressive_nn(x)`` must return ``(mu, s)`` shaped like ``x`` with
    entry ``i`` depending only on the inputs before ``i`` in some ordering,
    e.g. an :class:`~ember.nn.AutoRegressiveNN` with ``param_dims=[1, 1]``.
    The inverse is cached from the forward call (cheap scoring of samples);
    otherwise it is computed in ``D`` sequential network passes.

    Example::

        >>> import torch, ember.distributions as dist
        >>> from ember.nn import AutoRegressiveNN
        >>> from ember.distributions.transforms import AffineAutoregressive
        >>> flow = AffineAutoregressive(AutoRegressiveNN(3, [10]))
        >>> d = dist.TransformedDistribution(dist.Normal(torch.zeros(3), 1.0), [flow])
        >>> x = d.sample((4,))
        >>> d.log_prob(x).shape
        torch.Size([4])
    """

    domain = constraints.real_vector
    codomain = constraints.real_vector
    bijective = True
    autoregressive = True

    def __init__(
        self,
        autoregressive_nn: torch.nn.Module,
        log_scale_min_clip: float = -5.0,
        log_scale_max_clip: float = 3.0,
        sigmoid_bias: float = 2.0,
        stable: bool = False,
    ) -> None:
        super().__init__(cache_size=1)
        if not callable(autoregressive_nn):
            raise TypeError(
                f"{type(self).__name__}: autoregressive_nn must be a callable module, "
                f"got {type(autoregressive_nn).__name__}"
            )
        if log_scale_min_clip >= log_scale_max_clip:
            raise ValueError(
                f"{type(self).__name__}: log_scale_min_clip={log_scale_min_clip} must be "
                f"below log_scale_max_clip={log_scale_max_clip}"
            )
        self.arn = autoregressive_nn
        self.log_scale_min_clip = log_scale_min_clip
        self.log_scale_max_clip = log_scale_max_clip
        self.sigmoid_bias = sigmoid_bias
        self.stable = stable
        self._cached_log_scale = None

    def get_arn(self) -> torch.nn.Module:
        """The autoregressive network of this flow."""
        return self.arn

    def _params(self, x):
        out = self.arn(x)
        if not isinstance(out, (tuple, list)) or len(out) != 2:
            raise ValueError(
                f"{type(self).__name__}: autoregressive_nn must return a pair (mean, "
                f"log_scale), e.g. AutoRegressiveNN(..., param_dims=[1, 1]); got {type(out)}"
            )
        mean, s = out
        if mean.shape[-1:] != x.shape[-1:] or s.shape[-1:] != x.shape[-1:]:
            raise ValueError(
                f"{type(self).__name__}: the network's outputs have shapes "
                f"{tuple(mean.shape)}, {tuple(s.shape)}; they must be shaped like the "
                f"input {tuple(x.shape)}"
            )
        if self.stable:
            s = s + self.sigmoid_bias
            return mean, torch.sigmoid(s), F.logsigmoid(s)
        log_scale = clamp_preserve_gradients(s, self.log_scale_min_clip, self.log_scale_max_clip)
        return mean, torch.exp(log_scale), log_scale

    def _call(self, x):
        check_last_dim(type(self).__name__, x, _input_dim(self.arn))
        mean, scale, log_scale = self._params(x)
        # Kept with the x it belongs to, so log_abs_det_jacobian can tell it applies.
        self._cached_log_scale = x, log_scale
        if self.stable:
            return scale * x + (1 - scale) * mean
        return mean + scale * x

    def _inverse(self, y):
        check_last_dim(type(self).__name__, y, _input_dim(self.arn))
        # Fixed-point sweep: after k passes the first k variables of the ordering are
        # exact (each depends only on earlier ones), so D passes recover x exactly
        # whatever the ordering.
        x = torch.zeros_like(y)
        for _ in range(y.shape[-1]):
            mean, scale, log_scale = self._params(x)
            if self.stable:
                x = (y - (1 - scale) * mean) / scale
            else:
                x = (y - mean) * torch.exp(-log_scale)
        self._cached_log_scale = x, log_scale
        return x

    def log_abs_det_jacobian(self, x, y):
        """``sum(log sigma)`` over the last dim (cached when ``(x, y)`` is the latest pair)."""
        cached = self._cached_log_scale
        if cached is not None and cached[0] is x and self._cache_is_fresh(x, y):
            return cached[1].sum(-1)
        # Not the pair computed last: recompute the scale from x.
        _, _, log_scale = self._params(x)
        return log_scale.sum(-1)


class InverseAutoregressiveFlow(AffineAutoregressive):
    """Inverse autoregressive flow, Eq. (10) of Kingma et al. 2016: ``y = mu + sigma * x``.

    ``log sigma`` is clipped to ``[log_scale_min_clip, log_scale_max_clip]``.
    See :class:`AffineAutoregressive` for the network contract and the cost
    of the inverse (cached after a forward call, else ``D`` passes).

    Example::

        >>> import torch, ember.distributions as dist
        >>> from ember.nn import AutoRegressiveNN
        >>> iaf = dist.InverseAutoregressiveFlow(AutoRegressiveNN(10, [40]))
        >>> d = dist.TransformedDistribution(dist.Normal(torch.zeros(10), 1.0), [iaf])
        >>> d.sample().shape
        torch.Size([10])
    """

    def __init__(
        self,
        autoregressive_nn: torch.nn.Module,
        log_scale_min_clip: float = -5.0,
        log_scale_max_clip: float = 3.0,
    ) -> None:
        super().__init__(autoregressive_nn, log_scale_min_clip, log_scale_max_clip, stable=False)


class InverseAutoregressiveFlowStable(AffineAutoregressive):
    """The "stable" inverse autoregressive flow, Eqs. (13)/(14) of Kingma et al. 2016.

    ``sigma = sigmoid(s + sigmoid_bias)`` and ``y = sigma * x + (1 - sigma) * mu``.

    Example::

        >>> import torch, ember.distributions as dist
        >>> from ember.nn import AutoRegressiveNN
        >>> iaf = dist.InverseAutoregressiveFlowStable(AutoRegressiveNN(4, [8]))
        >>> x = torch.randn(4)
        >>> y = iaf(x)
        >>> iaf.inv(y) is x  # the cached input
        True
        >>> torch.allclose(iaf.inv(y.clone()), x, atol=1e-5)  # computed in 4 passes
        True
    """

    def __init__(self, autoregressive_nn: torch.nn.Module, sigmoid_bias: float = 2.0) -> None:
        super().__init__(autoregressive_nn, sigmoid_bias=sigmoid_bias, stable=True)


class _ContextBoundARN(torch.nn.Module):
    """A conditional autoregressive network with its context fixed."""

    def __init__(self, arn: ConditionalAutoRegressiveNN, context: torch.Tensor) -> None:
        super().__init__()
        self.arn = arn
        self.context = context
        self.input_dim = arn.input_dim

    def forward(self, x):
        return self.arn(x, self.context)

    @property
    def permutation(self) -> torch.Tensor:
        """The order in which the network's outputs depend on its inputs."""
        return self.arn.permutation

    def get_permutation(self) -> torch.Tensor:
        """The network's input ordering (see :attr:`permutation`)."""
        return self.arn.get_permutation()


class ConditionalAffineAutoregressive(ConditionalTransformModule):
    """An affine autoregressive flow whose network also sees a context vector.

    ``condition(context)`` returns an :class:`AffineAutoregressive` transform
    built on ``autoregressive_nn(x, context)``, e.g. a
    :class:`~ember.nn.ConditionalAutoRegressiveNN`.

    Example::

        >>> import torch
        >>> from ember.nn import ConditionalAutoRegressiveNN
        >>> from ember.distributions.transforms import ConditionalAffineAutoregressive
        >>> flow = ConditionalAffineAutoregressive(ConditionalAutoRegressiveNN(2, 3, [8]))
        >>> flow.condition(torch.randn(3))(torch.randn(2)).shape
        torch.Size([2])
    """

    domain = constraints.real_vector
    codomain = constraints.real_vector
    bijective = True
    event_dim = 1

    def __init__(self, autoregressive_nn: torch.nn.Module, **kwargs) -> None:
        super().__init__()
        self.nn = autoregressive_nn
        self.kwargs = kwargs

    def condition(self, context: torch.Tensor) -> AffineAutoregressive:
        """The affine autoregressive transform for ``context``."""
        return AffineAutoregressive(_ContextBoundARN(self.nn, context), **self.kwargs)


def affine_autoregressive(
    input_dim: int,
    hidden_dims: Sequence[int] | None = None,
    **kwargs,
) -> AffineAutoregressive:
    """An :class:`AffineAutoregressive` flow on an :class:`~ember.nn.AutoRegressiveNN`.

    ``hidden_dims`` defaults to ``[3 * input_dim + 1]``; ``kwargs`` go to the
    flow (``log_scale_min_clip``, ``log_scale_max_clip``, ``sigmoid_bias``,
    ``stable``).

    Example::

        >>> import torch
        >>> from ember.distributions.transforms import affine_autoregressive
        >>> affine_autoregressive(2, [16])(torch.zeros(5, 2)).shape
        torch.Size([5, 2])
    """
    if hidden_dims is None:
        hidden_dims = [3 * input_dim + 1]
    return AffineAutoregressive(AutoRegressiveNN(input_dim, hidden_dims), **kwargs)


def iaf(
    input_dim: int, hidden_dims: Sequence[int] | None = None, **kwargs
) -> InverseAutoregressiveFlow:
    """An :class:`InverseAutoregressiveFlow` on an :class:`~ember.nn.AutoRegressiveNN`.

    Example::

        >>> import torch
        >>> from ember.distributions.transforms import iaf
        >>> iaf(3, [12]).log_abs_det_jacobian(torch.zeros(3), torch.zeros(3)).shape
        torch.Size([])
    """
    if hidden_dims is None:
        hidden_dims = [3 * input_dim + 1]
    return InverseAutoregressiveFlow(AutoRegressiveNN(input_dim, hidden_dims), **kwargs)


def conditional_affine_autoregressive(
    input_dim: int, context_dim: int, hidden_dims: Sequence[int] | None = None, **kwargs
) -> ConditionalAffineAutoregressive:
    """A :class:`ConditionalAffineAutoregressive` on a ``ConditionalAutoRegressiveNN``.

    Example::

        >>> import torch
        >>> from ember.distributions.transforms import conditional_affine_autoregressive
        >>> t = conditional_affine_autoregressive(2, 1, [8]).condition(torch.ones(1))
        >>> t(torch.zeros(2)).shape
        torch.Size([2])
    """
    if hidden_dims is None:
        hidden_dims = [10 * input_dim]
    arn = ConditionalAutoRegressiveNN(input_dim, context_dim, hidden_dims)
    return ConditionalAffineAutoregressive(arn, **kwargs)
