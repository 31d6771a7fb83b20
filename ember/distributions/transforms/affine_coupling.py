"""Affine coupling flows: the coupling layer of RealNVP (Dinh et al. 2017, arXiv:1605.08803).

The input is split along dimension ``dim`` after ``split_dim`` entries,
``x = (x_1, x_2)``; then ``y_1 = x_1`` and ``y_2 = mu(x_1) + sigma(x_1) * x_2``
with ``(mu, log sigma)`` computed by a network of ``x_1``. The Jacobian is
block triangular with ``log|det J| = sum(log sigma)``, and the inverse is
as cheap as the forward map.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch.distributions import constraints

from ember.distributions.transforms.affine_autoregressive import clamp_preserve_gradients
from ember.distributions.transforms.neural_autoregressive import ContextBoundNN
from ember.distributions.transforms.torch_transform import (
    ConditionalTransformModule,
    TransformModule,
)
from ember.nn.auto_reg_nn import ConditionalDenseNN, DenseNN


def _check_dim(owner: str, dim) -> None:
    if not isinstance(dim, int) or isinstance(dim, bool) or dim >= 0:
        raise ValueError(
            f"{owner}: the 'dim' keyword argument must be a negative int (the event "
            f"dimension to split, counted from the right), got {dim!r}"
        )


class AffineCoupling(TransformModule):
    """An affine coupling layer (RealNVP): ``y_1 = x_1``, ``y_2 = mu + sigma * x_2``.

    ``x`` is split along ``dim`` (a negative int; the transform's event has
    ``-dim`` dimensions) into its first ``split_dim`` entries ``x_1`` and the
    rest ``x_2``. ``hypernet`` maps ``x_1`` flattened over the event dims,
    shape ``batch + (split_dim * m,)`` with ``m`` the size of the event dims
    right of ``dim``, to ``(mu, log_sigma)``, each with ``x_2.numel()`` entries
    per batch element (e.g. a :class:`~ember.nn.DenseNN` with
    ``param_dims=[n, n]``). ``log_sigma`` is clipped to
    ``[log_scale_min_clip, log_scale_max_clip]``, keeping the gradient of the
    unclipped value.

    Example::

        >>> import torch, ember.distributions as dist
        >>> from ember.nn import DenseNN
        >>> from ember.distributions.transforms import AffineCoupling
        >>> flow = AffineCoupling(2, DenseNN(2, [10], param_dims=[1, 1]))
        >>> d = dist.TransformedDistribution(dist.Normal(torch.zeros(3), 1.0), [flow])
        >>> y = d.sample((4,))
        >>> d.log_prob(y).shape
        torch.Size([4])
        >>> torch.equal(flow.inv(y.clone())[..., :2], y[..., :2])
        True
    """

    bijective = True

    def __init__(
        self,
        split_dim: int,
        hypernet: torch.nn.Module,
        *,
        dim: int = -1,
        log_scale_min_clip: float = -5.0,
        log_scale_max_clip: float = 3.0,
    ) -> None:
        super().__init__(cache_size=1)
        _check_dim("AffineCoupling", dim)
        if not isinstance(split_dim, int) or isinstance(split_dim, bool) or split_dim < 1:
            raise ValueError(
                f"AffineCoupling: split_dim must be a positive int (the size of the part "
                f"that conditions the other), got {split_dim!r}"
            )
        if not callable(hypernet):
            raise TypeError(
                f"AffineCoupling: hypernet must be a callable module, got {type(hypernet).__name__}"
            )
        if log_scale_min_clip >= log_scale_max_clip:
            raise ValueError(
                f"AffineCoupling: log_scale_min_clip={log_scale_min_clip} must be below "
                f"log_scale_max_clip={log_scale_max_clip}"
            )
        self.split_dim = split_dim
        self.nn = hypernet
        self.dim = dim
        self.log_scale_min_clip = log_scale_min_clip
        self.log_scale_max_clip = log_scale_max_clip
        self._cached_log_scale = None

    @constraints.dependent_property(is_discrete=False)
    def domain(self):
        return constraints.independent(constraints.real, -self.dim)

    @constraints.dependent_property(is_discrete=False)
    def codomain(self):
        return constraints.independent(constraints.real, -self.dim)

    def _split(self, value):
        if value.dim() < -self.dim:
            raise ValueError(
                f"AffineCoupling: input of shape {tuple(value.shape)} has fewer than "
                f"{-self.dim} dims (the event dims for dim={self.dim})"
            )
        size = value.size(self.dim)
        if not self.split_dim < size:
            raise ValueError(
                f"AffineCoupling: split_dim={self.split_dim} leaves nothing to transform "
                f"in dim {self.dim} of size {size} (input shape {tuple(value.shape)})"
            )
        return value.split([self.split_dim, size - self.split_dim], dim=self.dim)

    def _mean_log_scale(self, x1, x2_shape):
        """``(mu, log sigma)`` from ``x1``, shaped like ``x2`` (batch broadcast)."""
        out = self.nn(x1.reshape(x1.shape[: x1.dim() + self.dim] + (-1,)))
        if not isinstance(out, (tuple, list)) or len(out) != 2:
            raise ValueError(
                "AffineCoupling: hypernet must return a pair (mean, log_scale), e.g. "
                f"DenseNN(..., param_dims=[n, n]); got {type(out).__name__}"
            )
        event_shape = x2_shape[len(x2_shape) + self.dim :]
        numel = math.prod(event_shape)
        shaped = []
        for name, t in zip(("mean", "log_scale"), out):
            if t.dim() < 1 or t.shape[-1] != numel:
                raise ValueError(
                    f"AffineCoupling: hypernet's {name} has shape {tuple(t.shape)}; it "
                    f"needs {numel} entries in its last dim (the part of shape "
                    f"{tuple(event_shape)} that is transformed)"
                )
            shaped.append(t.reshape(t.shape[:-1] + tuple(event_shape)))
        mean, log_scale = shaped
        log_scale = clamp_preserve_gradients(
            log_scale, self.log_scale_min_clip, self.log_scale_max_clip
        )
        return mean, log_scale

    def _call(self, x):
        x1, x2 = self._split(x)
        mean, log_scale = self._mean_log_scale(x1, x2.shape)
        y2 = torch.exp(log_scale) * x2 + mean
        x1 = x1.expand(y2.shape[: y2.dim() + self.dim] + x1.shape[x1.dim() + self.dim :])
        self._cached_log_scale = x, log_scale
        return torch.cat([x1, y2], dim=self.dim)

    def _inverse(self, y):
        y1, y2 = self._split(y)
        mean, log_scale = self._mean_log_scale(y1, y2.shape)
        x2 = (y2 - mean) * torch.exp(-log_scale)
        y1 = y1.expand(x2.shape[: x2.dim() + self.dim] + y1.shape[y1.dim() + self.dim :])
        x = torch.cat([y1, x2], dim=self.dim)
        self._cached_log_scale = x, log_scale
        return x

    def log_abs_det_jacobian(self, x, y):
        """``sum(log sigma)`` over the ``-dim`` event dims."""
        cached = self._cached_log_scale
        if cached is not None and cached[0] is x and self._cache_is_fresh(x, y):
            log_scale = cached[1]
        else:
            x1, x2 = self._split(x)
            log_scale = self._mean_log_scale(x1, x2.shape)[1]
        return log_scale.reshape(log_scale.shape[: log_scale.dim() + self.dim] + (-1,)).sum(-1)


class ConditionalAffineCoupling(ConditionalTransformModule):
    """An affine coupling layer whose network also sees a context vector.

    ``hypernet(x_1, context=context)`` returns ``(mu, log_sigma)`` as for
    :class:`AffineCoupling` (e.g. a :class:`~ember.nn.ConditionalDenseNN`);
    ``condition(context)`` returns that :class:`AffineCoupling`. Keyword
    arguments (``dim``, ``log_scale_min_clip``, ``log_scale_max_clip``) go to it.

    Example::

        >>> import torch
        >>> from ember.nn import ConditionalDenseNN
        >>> from ember.distributions.transforms import ConditionalAffineCoupling
        >>> net = ConditionalDenseNN(1, 3, [8], param_dims=[2, 2])
        >>> flow = ConditionalAffineCoupling(1, net)
        >>> flow.condition(torch.randn(3))(torch.randn(5, 3)).shape
        torch.Size([5, 3])
    """

    bijective = True

    def __init__(self, split_dim: int, hypernet: torch.nn.Module, **kwargs) -> None:
        super().__init__()
        _check_dim("ConditionalAffineCoupling", kwargs.get("dim", -1))
        self.split_dim = split_dim
        self.nn = hypernet
        self.kwargs = kwargs

    @property
    def event_dim(self) -> int:
        """The number of event dims the coupling acts on (``-dim``)."""
        return -self.kwargs.get("dim", -1)

    @property
    def domain(self):
        """Real tensors with :attr:`event_dim` event dims."""
        return constraints.independent(constraints.real, self.event_dim)

    @property
    def codomain(self):
        """Real tensors with :attr:`event_dim` event dims."""
        return constraints.independent(constraints.real, self.event_dim)

    def condition(self, context: torch.Tensor) -> AffineCoupling:
        """The affine coupling layer for ``context``."""
        return AffineCoupling(self.split_dim, ContextBoundNN(self.nn, context), **self.kwargs)


def _coupling_sizes(owner: str, input_dim, split_dim, dim):
    """``(size along dim, split_dim, size of the event dims right of dim)``."""
    _check_dim(owner, dim)
    if isinstance(input_dim, int) and not isinstance(input_dim, bool):
        if dim != -1:
            raise ValueError(
                f"{owner}: with dim={dim} give input_dim as the event shape (a tuple of "
                f"{-dim} sizes), got the int {input_dim}"
            )
        event_shape = [input_dim]
    else:
        event_shape = list(input_dim)
        if len(event_shape) != -dim:
            raise ValueError(
                f"{owner}: event shape {tuple(event_shape)} must have -dim = {-dim} "
                f"entries (the event dims)"
            )
    if any(not isinstance(n, int) or n < 1 for n in event_shape):
        raise ValueError(f"{owner}: event shape {tuple(event_shape)} must hold positive ints")
    size = event_shape[dim]
    if split_dim is None:
        split_dim = size // 2
    if not isinstance(split_dim, int) or not 0 < split_dim < size:
        raise ValueError(
            f"{owner}: split_dim must be an int with 0 < split_dim < {size} (the size "
            f"of dim {dim}), got {split_dim!r}"
        )
    return size, split_dim, math.prod(event_shape[dim + 1 :] if dim < -1 else [])


def affine_coupling(
    input_dim,
    hidden_dims: Sequence[int] | None = None,
    split_dim: int | None = None,
    dim: int = -1,
    **kwargs,
) -> AffineCoupling:
    """An :class:`AffineCoupling` on a :class:`~ember.nn.DenseNN` hypernetwork.

    ``input_dim`` is the event size (an int, for ``dim=-1``) or the event shape
    (a tuple of ``-dim`` sizes). ``split_dim`` defaults to half the size of
    ``dim``; ``hidden_dims`` to ``[10 * n]`` with ``n`` the event's number of
    entries from ``dim`` rightwards. ``kwargs`` (``log_scale_min_clip``,
    ``log_scale_max_clip``) go to the layer.

    Example::

        >>> import torch
        >>> from ember.distributions.transforms import affine_coupling
        >>> affine_coupling(4, [16])(torch.randn(3, 4)).shape
        torch.Size([3, 4])
        >>> affine_coupling((4, 2), dim=-2)(torch.randn(3, 4, 2)).shape
        torch.Size([3, 4, 2])
    """
    size, split_dim, extra = _coupling_sizes("affine_coupling", input_dim, split_dim, dim)
    if hidden_dims is None:
        hidden_dims = [10 * size * extra]
    n = (size - split_dim) * extra
    hypernet = DenseNN(split_dim * extra, hidden_dims, param_dims=[n, n])
    return AffineCoupling(split_dim, hypernet, dim=dim, **kwargs)


def conditional_affine_coupling(
    input_dim,
    context_dim: int,
    hidden_dims: Sequence[int] | None = None,
    split_dim: int | None = None,
    dim: int = -1,
    **kwargs,
) -> ConditionalAffineCoupling:
    """A :class:`ConditionalAffineCoupling` on a :class:`~ember.nn.ConditionalDenseNN`.

    Arguments as for :func:`affine_coupling`, plus ``context_dim``, the size of
    the context vector.

    Example::

        >>> import torch
        >>> from ember.distributions.transforms import conditional_affine_coupling
        >>> flow = conditional_affine_coupling(3, context_dim=2, hidden_dims=[8])
        >>> flow.condition(torch.zeros(2))(torch.zeros(4, 3)).shape
        torch.Size([4, 3])
    """
    size, split_dim, extra = _coupling_sizes(
        "conditional_affine_coupling", input_dim, split_dim, dim
    )
    if hidden_dims is None:
        hidden_dims = [10 * size * extra]
    n = (size - split_dim) * extra
    hypernet = ConditionalDenseNN(split_dim * extra, context_dim, hidden_dims, param_dims=[n, n])
    return ConditionalAffineCoupling(split_dim, hypernet, dim=dim, **kwargs)
