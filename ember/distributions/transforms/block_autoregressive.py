"""Block neural autoregressive flow (De Cao, Titov and Aziz 2019, arXiv:1904.04676)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn
from torch.distributions import constraints
from torch.nn import functional as F

from ember.distributions.transforms.neural_autoregressive import (
    activation_with_log_derivative,
    check_activation,
)
from ember.distributions.transforms.torch_transform import (
    JointLogDetTransformModule,
    check_last_dim,
    check_positive_int,
    inverse_not_available,
)

RESIDUALS = (None, "normal", "gated")


def log_matmul(log_a: torch.Tensor, log_b: torch.Tensor) -> torch.Tensor:
    """``log(exp(log_a) @ exp(log_b))`` over the last two dims, computed with logsumexp.

    Example::

        >>> import torch
        >>> from ember.distributions.transforms.block_autoregressive import log_matmul
        >>> a, b = torch.rand(2, 3), torch.rand(3, 4)
        >>> torch.allclose(log_matmul(a.log(), b.log()).exp(), a @ b)
        True
    """
    return torch.logsumexp(log_a.unsqueeze(-1) + log_b.unsqueeze(-3), dim=-2)


class MaskedBlockLinear(nn.Module):
    """A linear map between ``D`` blocks of units that is block lower triangular.

    The weight has ``D x D`` blocks of shape ``(out_features // D, in_features // D)``:
    blocks above the diagonal are zero, blocks below are free, and the entries
    of a diagonal block are positive (``exp`` of a free parameter). Each row is
    weight-normalized (Salimans and Kingma 2016): divided by its norm and
    multiplied by ``exp(log_scale)``. So output block ``i`` depends on input
    blocks ``<= i`` only, increasingly on block ``i``.

    ``forward(h)`` returns ``(h W^T + bias, log_diag)`` where ``log_diag`` of
    shape ``(D, out_features // D, in_features // D)`` is the log of the
    diagonal blocks of ``W`` (the Jacobian blocks of output block ``i`` with
    respect to input block ``i``).

    Example::

        >>> import torch
        >>> from ember.distributions.transforms.block_autoregressive import MaskedBlockLinear
        >>> layer = MaskedBlockLinear(3, 6, 3)
        >>> out, log_diag = layer(torch.randn(5, 3))
        >>> out.shape, log_diag.shape
        (torch.Size([5, 6]), torch.Size([3, 2, 1]))
    """

    def __init__(self, in_features: int, out_features: int, dim: int) -> None:
        super().__init__()
        if in_features % dim or out_features % dim:
            raise ValueError(
                f"MaskedBlockLinear: in_features={in_features} and out_features={out_features}"
                f" must be multiples of dim={dim}"
            )
        self.in_features, self.out_features, self.dim = in_features, out_features, dim
        block_out, block_in = out_features // dim, in_features // dim
        blocks = torch.arange(dim)
        row_block = blocks.repeat_interleave(block_out).unsqueeze(-1)
        col_block = blocks.repeat_interleave(block_in)
        self.register_buffer("mask_diag", (row_block == col_block).to(torch.get_default_dtype()))
        self.register_buffer("mask_lower", (row_block > col_block).to(torch.get_default_dtype()))
        self.weight = nn.Parameter(torch.empty(out_features, in_features))
        self.log_scale = nn.Parameter(torch.empty(out_features, 1))
        self.bias = nn.Parameter(torch.empty(out_features))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Weights uniform in ``+-sqrt(6 / (fan_in + fan_out))`` of each block row, scale 1,
        bias uniform in ``+-1/sqrt(out_features)``."""
        block_out, block_in = self.out_features // self.dim, self.in_features // self.dim
        with torch.no_grad():
            for i in range(self.dim):
                fan_in = (i + 1) * block_in
                bound = math.sqrt(6.0 / (fan_in + block_out))
                self.weight[i * block_out : (i + 1) * block_out].uniform_(-bound, bound)
            self.log_scale.zero_()
            b = 1.0 / math.sqrt(self.out_features)
            self.bias.uniform_(-b, b)

    def weights(self):
        """The normalized block weight ``W`` and the log of its diagonal blocks."""
        v = self.weight
        w = torch.exp(v) * self.mask_diag + v * self.mask_lower
        log_norm = 0.5 * torch.log(w.pow(2).sum(-1, keepdim=True))
        w = torch.exp(self.log_scale - log_norm) * w
        log_w = (self.log_scale - log_norm + v)[self.mask_diag.bool()]
        block_out, block_in = self.out_features // self.dim, self.in_features // self.dim
        return w, log_w.reshape(self.dim, block_out, block_in)

    def forward(self, h: torch.Tensor):
        w, log_diag = self.weights()
        return F.linear(h, w, self.bias), log_diag


class BlockAutoregressive(JointLogDetTransformModule):
    """Block neural autoregressive flow: an autoregressive network that is the flow itself.

    ``x`` of size ``D`` goes through :class:`MaskedBlockLinear` layers of
    widths ``D * hidden_factors[0]``, ..., ``D * hidden_factors[-1]``, ``D``
    with a monotone activation after each but the last. Every layer is block
    lower triangular with positive diagonal blocks, so ``y_i`` depends on
    ``x_{<=i}`` and increases in ``x_i``. ``dy_i/dx_i`` is the product of the
    diagonal blocks of the layers' Jacobians, accumulated in log space.

    With ``residual="normal"`` the flow is ``x + f(x)``; with ``"gated"`` it is
    ``g x + (1 - g) f(x)`` with a learnable ``g = sigmoid(gate)``.

    There is no closed-form inverse: values produced by the latest forward call
    are scored from the cache, others raise :class:`InverseNotAvailableError`.

    :param input_dim: the size ``D`` of the input vectors.
    :param hidden_factors: hidden layer ``l`` has ``hidden_factors[l]`` units per
        input dimension.
    :param activation: one of ``"ELU"``, ``"LeakyReLU"``, ``"sigmoid"``, ``"tanh"`` (default).
    :param residual: ``None`` (default), ``"normal"`` or ``"gated"``.

    Example::

        >>> import torch, ember.distributions as dist
        >>> from ember.distributions.transforms import BlockAutoregressive
        >>> flow = BlockAutoregressive(3, hidden_factors=[4, 4], residual="gated")
        >>> d = dist.TransformedDistribution(dist.Normal(torch.zeros(3), 1.0), [flow])
        >>> d.log_prob(d.sample((5,))).shape
        torch.Size([5])
    """

    domain = constraints.real_vector
    codomain = constraints.real_vector
    bijective = True
    autoregressive = True

    def __init__(
        self,
        input_dim: int,
        hidden_factors: Sequence[int] = (8, 8),
        activation: str = "tanh",
        residual: str | None = None,
    ) -> None:
        super().__init__(cache_size=1)
        check_positive_int("BlockAutoregressive", "input_dim", input_dim)
        hidden_factors = list(hidden_factors)
        if not hidden_factors or any(
            not isinstance(h, int) or isinstance(h, bool) or h < 1 for h in hidden_factors
        ):
            raise ValueError(
                "BlockAutoregressive: hidden_factors must be a non-empty list of ints >= 1, "
                f"got {hidden_factors!r}"
            )
        if residual not in RESIDUALS:
            raise ValueError(
                f"BlockAutoregressive: residual={residual!r} is not available; choose None, "
                "'normal' or 'gated'"
            )
        self.activation = check_activation("BlockAutoregressive", activation)
        self.residual = residual
        self.input_dim = input_dim
        self.hidden_factors = hidden_factors
        widths = [input_dim] + [input_dim * h for h in hidden_factors] + [input_dim]
        self.layers = nn.ModuleList(
            MaskedBlockLinear(widths[i], widths[i + 1], input_dim) for i in range(len(widths) - 1)
        )
        if residual == "gated":
            self.gate = nn.Parameter(torch.zeros(1))

    def _transform(self, x):
        check_last_dim("BlockAutoregressive", x, self.input_dim)
        batch = x.shape[:-1]
        h = x
        log_j = None  # log of the diagonal Jacobian blocks so far: (..., D, units, 1)
        last = len(self.layers) - 1
        for idx, layer in enumerate(self.layers):
            pre, log_diag = layer(h)
            log_j = log_diag if log_j is None else log_matmul(log_diag, log_j)
            if idx < last:
                h, log_dt = activation_with_log_derivative(self.activation, pre)
                log_j = log_j + log_dt.reshape(batch + (self.input_dim, -1, 1))
            else:
                h = pre
        log_j = log_j.reshape(batch + (self.input_dim,)) if batch else log_j.reshape(-1)
        if self.residual == "normal":
            h = h + x
            log_j = F.softplus(log_j)  # log(1 + dy/dx)
        elif self.residual == "gated":
            g = torch.sigmoid(self.gate)
            h = g * x + (1 - g) * h
            log_j = torch.logaddexp(F.logsigmoid(self.gate), F.logsigmoid(-self.gate) + log_j)
        return h, log_j.sum(-1)

    def _inverse(self, y):
        raise inverse_not_available(
            self, "the block neural network has no closed-form inverse (it needs root finding)"
        )


def block_autoregressive(input_dim: int, **kwargs) -> BlockAutoregressive:
    """A :class:`BlockAutoregressive` flow; ``kwargs`` are ``hidden_factors``,
    ``activation`` and ``residual``.

    Example::

        >>> import torch
        >>> from ember.distributions.transforms import block_autoregressive
        >>> block_autoregressive(2, activation="ELU")(torch.zeros(4, 2)).shape
        torch.Size([4, 2])
    """
    return BlockAutoregressive(input_dim, **kwargs)
