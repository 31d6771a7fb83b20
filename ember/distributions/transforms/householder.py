"""Householder flow (Tomczak and Welling 2016, arXiv:1611.09630): a product of reflections."""

from __future__ import annotations

import math
import warnings
from functools import partial

import torch
from torch import nn
from torch.distributions import constraints
from torch.distributions.transforms import Transform

from ember.distributions.transforms.torch_transform import (
    ConditionalTransformModule,
    TransformModule,
    check_last_dim,
    check_positive_int,
)
from ember.nn.auto_reg_nn import DenseNN


def _check_count(owner: str, input_dim: int, count_transforms: int) -> None:
    check_positive_int(owner, "input_dim", input_dim)
    if not isinstance(count_transforms, int) or isinstance(count_transforms, bool):
        raise ValueError(f"{owner}: count_transforms must be an int, got {count_transforms!r}")
    if count_transforms < 1:
        raise ValueError(
            f"{owner}: count_transforms must be at least 1, got {count_transforms} "
            "(the number of Householder reflections)"
        )
    if count_transforms > input_dim:
        warnings.warn(
            f"{owner}: {count_transforms} Householder reflections in dimension {input_dim} "
            "over-parametrize the map (D reflections already reach every orthogonal matrix)",
            UserWarning,
            stacklevel=3,
        )


def _reflect(x: torch.Tensor, u: torch.Tensor, reverse: bool) -> torch.Tensor:
    """Apply the reflections ``I - 2 u_k u_k^T`` (``u`` of shape ``(..., K, D)``, unit rows)
    in order ``k = 0 .. K-1``, or in reverse order (which inverts the product)."""
    order = range(u.size(-2))
    for k in reversed(order) if reverse else order:
        u_k = u[..., k, :]
        x = x - 2 * (x * u_k).sum(-1, keepdim=True) * u_k
    return x


class ConditionedHouseholder(Transform):
    """The product of Householder reflections ``H_{K-1} ... H_0`` with
    ``H_k = I - 2 u_k u_k^T / |u_k|^2``, for given vectors ``u``.

    ``u_unnormed`` has shape ``batch + (K, D)``, or is a function returning it
    (called at every use, so it may follow a network's training). Reflections
    are orthogonal: ``log|det J| = 0`` and the inverse applies them in reverse
    order. Built by :meth:`ConditionalHouseholder.condition`.

    Example::

        >>> import torch
        >>> from ember.distributions.transforms.householder import ConditionedHouseholder
        >>> t = ConditionedHouseholder(torch.tensor([[1.0, 0.0]]))  # reflect the first axis
        >>> t(torch.tensor([3.0, 4.0]))
        tensor([-3.,  4.])
    """

    domain = constraints.real_vector
    codomain = constraints.real_vector
    bijective = True
    volume_preserving = True

    def __init__(self, u_unnormed=None) -> None:
        super().__init__(cache_size=1)
        self.u_unnormed = u_unnormed

    def u(self) -> torch.Tensor:
        """The unit normal vectors of the reflecting hyperplanes, shape ``batch + (K, D)``."""
        raw = self.u_unnormed() if callable(self.u_unnormed) else self.u_unnormed
        if raw.dim() < 2:
            raise ValueError(
                f"{type(self).__name__}: the vectors u must have shape (..., K, D), got "
                f"{tuple(raw.shape)}"
            )
        return raw / torch.linalg.vector_norm(raw, dim=-1, keepdim=True)

    def _call(self, x):
        u = self.u()
        check_last_dim(type(self).__name__, x, u.size(-1))
        return _reflect(x, u, reverse=False)

    def _inverse(self, y):
        u = self.u()
        check_last_dim(type(self).__name__, y, u.size(-1))
        return _reflect(y, u, reverse=True)

    def log_abs_det_jacobian(self, x, y):
        """Zeros of the batch shape (of ``x`` and the vectors ``u``): reflections preserve
        volume."""
        if isinstance(y, torch.Tensor):  # y already carries the batch of the vectors u
            return x.new_zeros(torch.broadcast_shapes(x.shape[:-1], y.shape[:-1]))
        return x.new_zeros(torch.broadcast_shapes(x.shape[:-1], self.u().shape[:-2]))


class Householder(ConditionedHouseholder, TransformModule):
    """``count_transforms`` learnable Householder reflections of ``input_dim``-vectors:
    ``y = H_{K-1} ... H_0 x`` with ``H_k = I - 2 u_k u_k^T / |u_k|^2``.

    ``D`` reflections reach every orthogonal matrix, so after a scaling
    they turn white noise into a Gaussian of any covariance; ``K < D``
    reflections give a cheaper, restricted family. The map preserves volume
    (``log|det J| = 0``) and its inverse is exact.

    :param input_dim: the size ``D`` of the vectors.
    :param count_transforms: the number ``K`` of reflections (``K > D`` warns).

    Example::

        >>> import torch, ember.distributions as dist
        >>> from ember.distributions.transforms import Householder
        >>> flow = Householder(3, count_transforms=2)
        >>> d = dist.TransformedDistribution(dist.Normal(torch.zeros(3), 1.0), [flow])
        >>> x = torch.randn(4, 3)
        >>> torch.allclose(flow.inv(flow(x)), x, atol=1e-6)
        True
        >>> d.log_prob(d.sample((5,))).shape
        torch.Size([5])
    """

    domain = constraints.real_vector
    codomain = constraints.real_vector
    bijective = True
    volume_preserving = True

    def __init__(self, input_dim: int, count_transforms: int = 1) -> None:
        super().__init__()
        _check_count("Householder", input_dim, count_transforms)
        self.input_dim = input_dim
        self.u_unnormed = nn.Parameter(torch.empty(count_transforms, input_dim))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Draw the vectors uniformly in ``+-1/sqrt(input_dim)``."""
        bound = 1.0 / math.sqrt(self.input_dim)
        nn.init.uniform_(self.u_unnormed, -bound, bound)


class ConditionalHouseholder(ConditionalTransformModule):
    """Householder reflections whose vectors a network computes from a context.

    ``nn`` maps a context of shape ``batch + (context_dim,)`` to one tensor of
    shape ``batch + (D,)`` when ``count_transforms == 1``, otherwise to a tuple
    of ``count_transforms`` such tensors (e.g.
    ``DenseNN(context_dim, [H], param_dims=[D] * count_transforms)``).
    ``condition(context)`` returns the :class:`ConditionedHouseholder` map.

    Example::

        >>> import torch, ember.distributions as dist
        >>> from ember.distributions.transforms import conditional_householder
        >>> flow = conditional_householder(3, context_dim=2, count_transforms=2)
        >>> t = flow.condition(torch.randn(2))
        >>> x = torch.randn(5, 3)
        >>> torch.allclose(t.inv(t(x)), x, atol=1e-6)
        True
    """

    domain = constraints.real_vector
    codomain = constraints.real_vector
    bijective = True
    event_dim = 1

    def __init__(self, input_dim: int, nn: torch.nn.Module, count_transforms: int = 1) -> None:
        super().__init__()
        _check_count("ConditionalHouseholder", input_dim, count_transforms)
        self.nn = nn
        self.input_dim = input_dim
        self.count_transforms = count_transforms

    def u_unnormed(self, context: torch.Tensor) -> torch.Tensor:
        """The network's vectors for ``context``, stacked to shape ``batch + (K, D)``."""
        out = self.nn(context)
        if self.count_transforms == 1:
            if isinstance(out, (tuple, list)):
                out = out[0]
            return out.unsqueeze(-2)
        if not isinstance(out, (tuple, list)) or len(out) != self.count_transforms:
            raise ValueError(
                f"ConditionalHouseholder: nn must return {self.count_transforms} tensors "
                "(one vector per reflection), e.g. DenseNN(..., param_dims=[D] * count)"
            )
        return torch.stack(list(out), dim=-2)

    def condition(self, context: torch.Tensor) -> ConditionedHouseholder:
        """The reflections for ``context``."""
        if not isinstance(context, torch.Tensor):
            raise TypeError(
                f"ConditionalHouseholder.condition: context must be a tensor, got "
                f"{type(context).__name__}"
            )
        return ConditionedHouseholder(partial(self.u_unnormed, context))


def householder(input_dim: int, count_transforms: int | None = None) -> Householder:
    """A :class:`Householder` flow; ``count_transforms`` defaults to ``input_dim // 2 + 1``.

    Example::

        >>> from ember.distributions.transforms import householder
        >>> householder(4).u_unnormed.shape
        torch.Size([3, 4])
    """
    if count_transforms is None:
        check_positive_int("householder", "input_dim", input_dim)
        count_transforms = input_dim // 2 + 1
    return Householder(input_dim, count_transforms=count_transforms)


def conditional_householder(
    input_dim: int,
    context_dim: int,
    hidden_dims: list[int] | None = None,
    count_transforms: int = 1,
) -> ConditionalHouseholder:
    """A :class:`ConditionalHouseholder` on a :class:`~ember.nn.DenseNN` of the context.

    ``hidden_dims`` defaults to ``[10 * input_dim, 10 * input_dim]``.

    Example::

        >>> import torch
        >>> from ember.distributions.transforms import conditional_householder
        >>> flow = conditional_householder(3, context_dim=2, hidden_dims=[8])
        >>> flow.condition(torch.zeros(4, 2))(torch.zeros(4, 3)).shape
        torch.Size([4, 3])
    """
    check_positive_int("conditional_householder", "input_dim", input_dim)
    check_positive_int("conditional_householder", "context_dim", context_dim)
    check_positive_int("conditional_householder", "count_transforms", count_transforms)
    if hidden_dims is None:
        hidden_dims = [input_dim * 10, input_dim * 10]
    net = DenseNN(context_dim, hidden_dims, param_dims=[input_dim] * count_transforms)
    return ConditionalHouseholder(input_dim, net, count_transforms)
