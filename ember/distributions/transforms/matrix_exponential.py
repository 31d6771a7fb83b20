"""Matrix exponential flow (Hoogeboom et al. 2020, arXiv:2006.01910): ``y = exp(M) x``."""

from __future__ import annotations

import math
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


def _check_options(owner: str, iterations, normalization) -> None:
    check_positive_int(owner, "iterations", iterations)
    if normalization in ("weight", "spectral"):
        raise NotImplementedError(
            f"{owner}: normalization={normalization!r} is not supported; use "
            "normalization='none' (the map is a valid bijection without it)"
        )
    if normalization != "none":
        raise ValueError(
            f"{owner}: unknown normalization {normalization!r}; expected 'none' "
            "('weight' and 'spectral' are not supported)"
        )


def expm_vector(M: torch.Tensor, x: torch.Tensor, iterations: int) -> torch.Tensor:
    """``exp(M) x`` by the power series truncated after ``M^iterations x / iterations!``.

    ``M`` has shape ``batch + (D, D)`` and ``x`` ``batch' + (D,)``; the batches
    broadcast. Only matrix-vector products are formed.

    Example::

        >>> import torch
        >>> M = torch.tensor([[0.0, 1.0], [0.0, 0.0]])  # nilpotent: exp(M) = I + M
        >>> expm_vector(M, torch.tensor([1.0, 2.0]), iterations=8)
        tensor([3., 2.])
    """
    term = x.unsqueeze(-1)
    total = term
    for k in range(1, iterations + 1):
        term = (M @ term) / k
        total = total + term
    return total.squeeze(-1)


class ConditionedMatrixExponential(Transform):
    """``y = exp(M) x`` for a given square matrix ``M`` (or a function returning it).

    ``exp(M)`` is invertible for every ``M`` (its inverse is ``exp(-M)``) and
    ``log|det exp(M)| = trace(M)``. Both directions use the power series of
    the exponential truncated after ``iterations`` terms, so they are inverse
    to each other up to that truncation. ``M`` of shape ``batch + (D, D)``
    broadcasts against the input's batch. Built by
    :meth:`ConditionalMatrixExponential.condition`.

    Example::

        >>> import torch
        >>> from ember.distributions.transforms.matrix_exponential import (
        ...     ConditionedMatrixExponential)
        >>> t = ConditionedMatrixExponential(torch.diag(torch.tensor([0.0, 1.0])))
        >>> t(torch.tensor([1.0, 1.0]))
        tensor([1.0000, 2.7183])
        >>> t.log_abs_det_jacobian(torch.ones(2), None)
        tensor(1.)
    """

    domain = constraints.real_vector
    codomain = constraints.real_vector
    bijective = True

    def __init__(
        self, weights=None, iterations: int = 8, normalization: str = "none", bound=None
    ) -> None:
        super().__init__(cache_size=1)
        _check_options(type(self).__name__, iterations, normalization)
        self.weights = weights
        self.iterations = iterations
        self.normalization = normalization
        self.bound = bound

    def matrix(self) -> torch.Tensor:
        """The matrix ``M``, shape ``batch + (D, D)``."""
        M = self.weights() if callable(self.weights) else self.weights
        if M.dim() < 2 or M.size(-1) != M.size(-2):
            raise ValueError(
                f"{type(self).__name__}: the weights must be square matrices (..., D, D), "
                f"got {tuple(M.shape)}"
            )
        return M

    def _call(self, x):
        M = self.matrix()
        check_last_dim(type(self).__name__, x, M.size(-1))
        return expm_vector(M, x, self.iterations)

    def _inverse(self, y):
        M = self.matrix()
        check_last_dim(type(self).__name__, y, M.size(-1))
        return expm_vector(-M, y, self.iterations)

    def log_abs_det_jacobian(self, x, y):
        """``trace(M)``, broadcast to the input's batch shape."""
        trace = self.matrix().diagonal(dim1=-2, dim2=-1).sum(-1)
        return trace.expand(torch.broadcast_shapes(x.shape[:-1], trace.shape))


class MatrixExponential(ConditionedMatrixExponential, TransformModule):
    """The learnable dense flow ``y = exp(M) x`` on vectors of size ``input_dim``.

    ``M`` (any real ``D x D`` matrix, not necessarily invertible) is the
    parameter; ``exp(M)`` is always invertible, with inverse ``exp(-M)`` and
    ``log|det J| = trace(M)`` at cost ``O(D)``. The exponential is the power
    series truncated after ``iterations`` terms.

    :param input_dim: the size ``D`` of the vectors.
    :param iterations: the number of power-series terms (default 8).
    :param normalization: only ``"none"`` (weight and spectral normalization of
        ``M`` are not supported and raise ``NotImplementedError``).
    :param bound: the norm bound used by those normalizations (unused).

    Example::

        >>> import torch, ember.distributions as dist
        >>> from ember.distributions.transforms import MatrixExponential
        >>> flow = MatrixExponential(3)
        >>> x = torch.randn(4, 3)
        >>> torch.allclose(flow.inv(flow(x)), x, atol=1e-5)
        True
        >>> d = dist.TransformedDistribution(dist.Normal(torch.zeros(3), 1.0), [flow])
        >>> d.log_prob(d.sample((2,))).shape
        torch.Size([2])
    """

    domain = constraints.real_vector
    codomain = constraints.real_vector
    bijective = True

    def __init__(
        self, input_dim: int, iterations: int = 8, normalization: str = "none", bound=None
    ) -> None:
        super().__init__(iterations=iterations, normalization=normalization, bound=bound)
        check_positive_int("MatrixExponential", "input_dim", input_dim)
        self.input_dim = input_dim
        self.weights = nn.Parameter(torch.empty(input_dim, input_dim))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Draw ``M`` uniformly in ``+-1/sqrt(input_dim)``."""
        bound = 1.0 / math.sqrt(self.input_dim)
        nn.init.uniform_(self.weights, -bound, bound)


class ConditionalMatrixExponential(ConditionalTransformModule):
    """``y = exp(M) x`` with ``M`` computed by a network from a context.

    ``nn`` maps a context of shape ``batch + (context_dim,)`` to
    ``batch + (D * D,)``, read as ``M`` row by row; ``condition(context)``
    returns the :class:`ConditionedMatrixExponential` for it.

    Example::

        >>> import torch
        >>> from ember.distributions.transforms import conditional_matrix_exponential
        >>> flow = conditional_matrix_exponential(3, context_dim=2, hidden_dims=[8])
        >>> t = flow.condition(torch.randn(2))
        >>> x = torch.randn(5, 3)
        >>> torch.allclose(t.inv(t(x)), x, atol=1e-4)
        True
    """

    domain = constraints.real_vector
    codomain = constraints.real_vector
    bijective = True
    event_dim = 1

    def __init__(
        self,
        input_dim: int,
        nn: torch.nn.Module,
        iterations: int = 8,
        normalization: str = "none",
        bound=None,
    ) -> None:
        super().__init__()
        check_positive_int("ConditionalMatrixExponential", "input_dim", input_dim)
        _check_options("ConditionalMatrixExponential", iterations, normalization)
        self.input_dim = input_dim
        self.nn = nn
        self.iterations = iterations
        self.normalization = normalization
        self.bound = bound

    def weights(self, context: torch.Tensor) -> torch.Tensor:
        """The matrix ``M`` for ``context``, shape ``batch + (D, D)``."""
        flat = self.nn(context)
        if flat.size(-1) != self.input_dim**2:
            raise ValueError(
                f"ConditionalMatrixExponential: nn must output {self.input_dim**2} values "
                f"(a {self.input_dim} x {self.input_dim} matrix), got shape {tuple(flat.shape)}"
            )
        return flat.reshape(flat.shape[:-1] + (self.input_dim, self.input_dim))

    def condition(self, context: torch.Tensor) -> ConditionedMatrixExponential:
        """The flow for ``context``."""
        if not isinstance(context, torch.Tensor):
            raise TypeError(
                f"ConditionalMatrixExponential.condition: context must be a tensor, got "
                f"{type(context).__name__}"
            )
        return ConditionedMatrixExponential(
            partial(self.weights, context),
            iterations=self.iterations,
            normalization=self.normalization,
            bound=self.bound,
        )


def matrix_exponential(
    input_dim: int, iterations: int = 8, normalization: str = "none", bound=None
) -> MatrixExponential:
    """A :class:`MatrixExponential` flow.

    Example::

        >>> from ember.distributions.transforms import matrix_exponential
        >>> matrix_exponential(3).weights.shape
        torch.Size([3, 3])
    """
    return MatrixExponential(
        input_dim, iterations=iterations, normalization=normalization, bound=bound
    )


def conditional_matrix_exponential(
    input_dim: int,
    context_dim: int,
    hidden_dims: list[int] | None = None,
    iterations: int = 8,
    normalization: str = "none",
    bound=None,
) -> ConditionalMatrixExponential:
    """A :class:`ConditionalMatrixExponential` on a :class:`~ember.nn.DenseNN` of the context.

    ``hidden_dims`` defaults to ``[10 * input_dim, 10 * input_dim]``.

    Example::

        >>> import torch
        >>> from ember.distributions.transforms import conditional_matrix_exponential
        >>> flow = conditional_matrix_exponential(2, context_dim=3, hidden_dims=[8])
        >>> flow.condition(torch.zeros(3))(torch.zeros(4, 2)).shape
        torch.Size([4, 2])
    """
    check_positive_int("conditional_matrix_exponential", "input_dim", input_dim)
    check_positive_int("conditional_matrix_exponential", "context_dim", context_dim)
    if hidden_dims is None:
        hidden_dims = [input_dim * 10, input_dim * 10]
    net = DenseNN(context_dim, hidden_dims, param_dims=[input_dim * input_dim])
    return ConditionalMatrixExponential(
        input_dim, net, iterations=iterations, normalization=normalization, bound=bound
    )
