"""Neural autoregressive flows (Huang et al. 2018, arXiv:1804.00779) and their activations."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch.distributions import constraints
from torch.nn import functional as F

from ember.distributions.transforms.torch_transform import (
    ConditionalTransformModule,
    JointLogDetTransformModule,
    inverse_not_available,
)
from ember.nn.auto_reg_nn import AutoRegressiveNN, ConditionalAutoRegressiveNN

ACTIVATIONS = ("ELU", "LeakyReLU", "sigmoid", "tanh")
"""The monotone activations the neural autoregressive flows accept, by name."""

#: Negative slope of the ``"LeakyReLU"`` activation (torch's default).
LEAKY_RELU_SLOPE = 0.01


def check_activation(owner: str, activation) -> str:
    """Return ``activation`` if it is one of :data:`ACTIVATIONS`, else raise a ValueError."""
    if activation not in ACTIVATIONS:
        raise ValueError(
            f"{owner}: activation={activation!r} is not available; choose one of "
            f"{', '.join(repr(a) for a in ACTIVATIONS)}"
        )
    return activation


def activation_with_log_derivative(activation: str, c: torch.Tensor):
    """``(T(c), log T'(c))`` elementwise for the monotone activation named ``activation``.

    ``T`` is one of :data:`ACTIVATIONS`; ``log T'`` is computed without forming
    ``T'`` where that would underflow (sigmoid and tanh saturate).

    Example::

        >>> import torch
        >>> from ember.distributions.transforms.neural_autoregressive import (
        ...     activation_with_log_derivative)
        >>> t, log_dt = activation_with_log_derivative("ELU", torch.tensor([-1.0, 2.0]))
        >>> t, log_dt
        (tensor([-0.6321,  2.0000]), tensor([-1.,  0.]))
    """
    if activation == "sigmoid":
        return torch.sigmoid(c), F.logsigmoid(c) + F.logsigmoid(-c)
    if activation == "tanh":
        # 1 - tanh(c)^2 = 4 sigmoid(2c) sigmoid(-2c)
        return torch.tanh(c), math.log(4.0) + F.logsigmoid(2 * c) + F.logsigmoid(-2 * c)
    if activation == "ELU":
        return F.elu(c), c.clamp(max=0)
    if activation == "LeakyReLU":
        log_slope = torch.full_like(c, math.log(LEAKY_RELU_SLOPE))
        return F.leaky_relu(c, LEAKY_RELU_SLOPE), log_slope.masked_fill(c > 0, 0.0)
    check_activation("activation_with_log_derivative", activation)
    raise AssertionError("unreachable")


class NeuralAutoregressive(JointLogDetTransformModule):
    """Neural autoregressive flow (Eq. 8 of Huang et al. 2018), "IAF flavour".

    For each dimension ``i``, with ``(a, b, w)`` the autoregressive network's
    outputs of shape ``(..., hidden_units, D)`` and ``T`` a monotone activation::

        y_i = T^{-1}( sum_k softmax(w)_k * T(softplus(a_k) * x_i + b_k) )

    a strictly increasing map of ``x_i`` whose parameters depend on the
    preceding inputs; ``log|det J|`` is the sum over ``i`` of ``log dy_i/dx_i``.
    With ``T = sigmoid`` this is the deep sigmoidal flow. The sigmoid and tanh
    versions are computed in log space (tanh through
    ``tanh(c) = 2 sigmoid(2c) - 1``), so they stay finite for large inputs.

    There is no closed-form inverse: values produced by the latest forward call
    are scored from the cache, others raise :class:`InverseNotAvailableError`.

    :param autoregressive_nn: a network returning a tuple of three tensors of
        shape ``(..., hidden_units, D)``, e.g.
        ``AutoRegressiveNN(D, [H], param_dims=[hidden_units] * 3)``.
    :param hidden_units: the number ``K`` of activations mixed per dimension.
    :param activation: one of ``"ELU"``, ``"LeakyReLU"``, ``"sigmoid"``
        (default) and ``"tanh"``.

    Example::

        >>> import torch, ember.distributions as dist
        >>> from ember.nn import AutoRegressiveNN
        >>> arn = AutoRegressiveNN(3, [12], param_dims=[16] * 3)
        >>> flow = dist.transforms.NeuralAutoregressive(arn, hidden_units=16, activation="tanh")
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
        autoregressive_nn: torch.nn.Module,
        hidden_units: int = 16,
        activation: str = "sigmoid",
    ) -> None:
        super().__init__(cache_size=1)
        name = type(self).__name__
        if not isinstance(hidden_units, int) or hidden_units < 1:
            raise ValueError(f"{name}: hidden_units must be a positive int, got {hidden_units!r}")
        self.activation = check_activation(name, activation)
        self.arn = autoregressive_nn
        self.hidden_units = hidden_units

    def _transform(self, x):
        name = type(self).__name__
        out = self.arn(x)
        expected = x.shape[:-1] + (self.hidden_units, x.shape[-1])
        if not isinstance(out, (tuple, list)) or len(out) != 3:
            raise ValueError(
                f"{name}: autoregressive_nn must return three tensors (a, b, w), "
                f"e.g. AutoRegressiveNN(D, hidden_dims, param_dims=[{self.hidden_units}] * 3)"
            )
        if any(t.shape[-2:] != expected[-2:] for t in out):
            raise ValueError(
                f"{name}: network outputs have shapes {[tuple(t.shape) for t in out]};"
                f" each must end in (hidden_units, D) = {tuple(expected[-2:])}"
            )
        a_raw, b, w_raw = out
        a = F.softplus(a_raw)
        log_w = F.log_softmax(w_raw, dim=-2)
        pre = a * x.unsqueeze(-2) + b
        log_wa = log_w + torch.log(a)
        act = self.activation
        if act in ("sigmoid", "tanh"):
            # tanh(c) = 2 sigmoid(2c) - 1 and atanh(2s - 1) = logit(s) / 2: the tanh flow is
            # the sigmoid flow on 2c with its output halved; the two factors 2 cancel in
            # dy/dx = (ds/dx) / (s (1 - s)) / 2 with ds/dx = 2 sum_k w_k a_k sig_k (1 - sig_k).
            scale = 1.0 if act == "sigmoid" else 2.0
            if scale != 1.0:
                pre = pre * scale
            log_sig, log_1m_sig = F.logsigmoid(pre), F.logsigmoid(-pre)
            log_s = torch.logsumexp(log_w + log_sig, dim=-2)
            log_1ms = torch.logsumexp(log_w + log_1m_sig, dim=-2)
            y = (log_s - log_1ms) / scale
            log_dsdx = torch.logsumexp(log_wa + log_sig + log_1m_sig, dim=-2)
            ladj = log_dsdx - log_s - log_1ms
        elif act == "ELU":
            # 1 + D = sum_k w_k (1 + elu(c_k)), and log(1 + elu(c)) = min(c, 0) + log1p(relu(c))
            log1p_d = torch.logsumexp(
                log_w + pre.clamp(max=0) + torch.log1p(pre.clamp(min=0)), dim=-2
            )
            d = torch.expm1(log1p_d)
            positive = d > 0
            y = torch.where(positive, d, log1p_d)  # elu^{-1}
            log_ddx = torch.logsumexp(log_wa + pre.clamp(max=0), dim=-2)
            ladj = log_ddx - log1p_d.masked_fill(positive, 0.0)
        else:  # LeakyReLU
            t, log_dt = activation_with_log_derivative(act, pre)
            d = (log_w.exp() * t).sum(-2)
            positive = d >= 0
            y = torch.where(positive, d, d / LEAKY_RELU_SLOPE)
            log_ddx = torch.logsumexp(log_wa + log_dt, dim=-2)
            log_dydd = torch.full_like(d, -math.log(LEAKY_RELU_SLOPE)).masked_fill(positive, 0.0)
            ladj = log_ddx + log_dydd
        return y, ladj.sum(-1)

    def _inverse(self, y):
        raise inverse_not_available(
            self, "the mixture of activations has no closed-form inverse (it needs root finding)"
        )


#: The name of the sigmoid :class:`NeuralAutoregressive` flow in early Pyro releases.
DeepSigmoidalFlow = NeuralAutoregressive


class ContextBoundNN(torch.nn.Module):
    """A conditional network with its context fixed: ``forward(x) = nn(x, context=context)``.

    It keeps the network as a submodule (so the conditioned transform's
    ``parameters()`` are the network's) and passes on the network's input
    ordering (``permutation``, ``get_permutation``) when it has one.

    Example::

        >>> import torch
        >>> from ember.nn import ConditionalAutoRegressiveNN
        >>> from ember.distributions.transforms.neural_autoregressive import ContextBoundNN
        >>> arn = ConditionalAutoRegressiveNN(2, 3, [8])
        >>> bound = ContextBoundNN(arn, torch.zeros(3))
        >>> [t.shape for t in bound(torch.zeros(5, 2))]
        [torch.Size([5, 2]), torch.Size([5, 2])]
    """

    def __init__(self, nn: torch.nn.Module, context: torch.Tensor) -> None:
        super().__init__()
        if not isinstance(context, torch.Tensor):
            raise TypeError(f"condition: context must be a tensor, got {type(context).__name__}")
        self.nn = nn
        self.context = context

    def forward(self, x):
        return self.nn(x, context=self.context)

    @property
    def permutation(self) -> torch.Tensor:
        """The wrapped network's input ordering."""
        return self.nn.permutation

    def get_permutation(self) -> torch.Tensor:
        """The wrapped network's input ordering (see :attr:`permutation`)."""
        return self.nn.get_permutation()


class ConditionalNeuralAutoregressive(ConditionalTransformModule):
    """A :class:`NeuralAutoregressive` flow whose network also sees a context vector.

    ``condition(context)`` returns a :class:`NeuralAutoregressive` built on
    ``autoregressive_nn(x, context=context)``, e.g. a
    :class:`~ember.nn.ConditionalAutoRegressiveNN` with
    ``param_dims=[hidden_units] * 3``. Keyword arguments (``hidden_units``,
    ``activation``) go to :class:`NeuralAutoregressive`.

    Example::

        >>> import torch, ember.distributions as dist
        >>> from ember.nn import ConditionalAutoRegressiveNN
        >>> arn = ConditionalAutoRegressiveNN(3, 2, [12], param_dims=[8] * 3)
        >>> flow = dist.transforms.ConditionalNeuralAutoregressive(arn, hidden_units=8)
        >>> flow.condition(torch.randn(2))(torch.randn(4, 3)).shape
        torch.Size([4, 3])
    """

    domain = constraints.real_vector
    codomain = constraints.real_vector
    bijective = True
    event_dim = 1

    def __init__(self, autoregressive_nn: torch.nn.Module, **kwargs) -> None:
        super().__init__()
        self.nn = autoregressive_nn
        self.kwargs = kwargs
        check_activation(type(self).__name__, kwargs.get("activation", "sigmoid"))

    def condition(self, context: torch.Tensor) -> NeuralAutoregressive:
        """The neural autoregressive flow for ``context``."""
        return NeuralAutoregressive(ContextBoundNN(self.nn, context), **self.kwargs)


def deep_sigmoidal(
    input_dim: int, hidden_dims: Sequence[int] | None = None, hidden_units: int = 16
) -> NeuralAutoregressive:
    """A sigmoid :class:`NeuralAutoregressive` flow on an :class:`~ember.nn.AutoRegressiveNN`.

    ``hidden_dims`` defaults to ``[3 * input_dim + 1]``.

    Example::

        >>> import torch
        >>> from ember.distributions.transforms import deep_sigmoidal
        >>> deep_sigmoidal(2, [8], hidden_units=4)(torch.zeros(3, 2)).shape
        torch.Size([3, 2])
    """
    return neural_autoregressive(input_dim, hidden_dims, "sigmoid", width=hidden_units)


def neural_autoregressive(
    input_dim: int,
    hidden_dims: Sequence[int] | None = None,
    activation: str = "sigmoid",
    width: int = 16,
) -> NeuralAutoregressive:
    """A :class:`NeuralAutoregressive` flow on an :class:`~ember.nn.AutoRegressiveNN`.

    ``width`` is the number of activations mixed per dimension
    (``hidden_units``); ``hidden_dims`` defaults to ``[3 * input_dim + 1]``;
    ``activation`` is one of ``"ELU"``, ``"LeakyReLU"``, ``"sigmoid"`` and ``"tanh"``.

    Example::

        >>> import torch
        >>> from ember.distributions.transforms import neural_autoregressive
        >>> flow = neural_autoregressive(2, [8], activation="ELU", width=4)
        >>> flow.hidden_units, flow.activation, flow(torch.zeros(3, 2)).shape
        (4, 'ELU', torch.Size([3, 2]))
    """
    check_activation("neural_autoregressive", activation)
    if hidden_dims is None:
        hidden_dims = [3 * input_dim + 1]
    arn = AutoRegressiveNN(input_dim, hidden_dims, param_dims=[width] * 3)
    return NeuralAutoregressive(arn, hidden_units=width, activation=activation)


def conditional_neural_autoregressive(
    input_dim: int,
    context_dim: int,
    hidden_dims: Sequence[int] | None = None,
    activation: str = "sigmoid",
    width: int = 16,
) -> ConditionalNeuralAutoregressive:
    """A :class:`ConditionalNeuralAutoregressive` on a ``ConditionalAutoRegressiveNN``.

    Arguments as for :func:`neural_autoregressive`, plus ``context_dim``, the
    size of the context vector.

    Example::

        >>> import torch
        >>> from ember.distributions.transforms import conditional_neural_autoregressive
        >>> flow = conditional_neural_autoregressive(2, 3, [8], activation="tanh", width=4)
        >>> flow.condition(torch.zeros(3))(torch.zeros(5, 2)).shape
        torch.Size([5, 2])
    """
    check_activation("conditional_neural_autoregressive", activation)
    if hidden_dims is None:
        hidden_dims = [3 * input_dim + 1]
    arn = ConditionalAutoRegressiveNN(input_dim, context_dim, hidden_dims, param_dims=[width] * 3)
    return ConditionalNeuralAutoregressive(arn, hidden_units=width, activation=activation)
