"""Masked autoregressive networks (MADE, Germain et al. 2015, arXiv:1502.03509).

An autoregressive network maps ``x`` in ``R^D`` to parameters whose ``i``-th
column depends only on the inputs that come before ``x_i`` in a fixed
ordering. The ordering is given by a permutation: input ``permutation[k]``
is the ``k``-th variable, so the outputs for ``permutation[k]`` see exactly
the inputs ``permutation[:k]``. The structure is enforced by multiplying the
weights of each linear layer by a fixed 0/1 mask derived from integer
"degrees" assigned to the units.

:class:`DenseNN` and :class:`ConditionalDenseNN` are the plain (unmasked)
feed-forward networks of the same interface, for hypernetworks that need no
autoregressive structure.

This module is pure torch: it knows nothing of ember's runtime.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Union

import torch
from torch import nn
from torch.nn import functional as F


class MaskedLinear(nn.Linear):
    """A linear layer whose weight is multiplied by a fixed 0/1 ``mask``.

    ``mask`` has the shape of the weight, ``(out_features, in_features)``; it
    is registered as a buffer, so it moves with the module across devices and
    is saved in its ``state_dict`` but is never trained.

    Example::

        >>> import torch
        >>> from ember.nn import MaskedLinear
        >>> mask = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
        >>> layer = MaskedLinear(2, 2, mask)
        >>> y = layer(torch.randn(5, 2))
        >>> y.shape
        torch.Size([5, 2])
        >>> bool((layer.masked_weight[0, 1] == 0).item())
        True
    """

    def __init__(
        self, in_features: int, out_features: int, mask: torch.Tensor, bias: bool = True
    ) -> None:
        super().__init__(in_features, out_features, bias=bias)
        mask = torch.as_tensor(mask)
        if mask.shape != self.weight.shape:
            raise ValueError(
                f"MaskedLinear({in_features}, {out_features}): mask has shape "
                f"{tuple(mask.shape)} but must match the weight shape "
                f"(out_features, in_features) = {tuple(self.weight.shape)}"
            )
        self.register_buffer("mask", mask.detach().to(self.weight.dtype).clone())

    @property
    def masked_weight(self) -> torch.Tensor:
        """The effective weight, ``mask * weight``."""
        return self.mask * self.weight

    def forward(self, _input: torch.Tensor) -> torch.Tensor:
        """Apply ``x @ (mask * weight).T + bias``."""
        return F.linear(_input, self.mask * self.weight, self.bias)


def check_permutation(permutation, input_dim: int, owner: str) -> torch.Tensor:
    """``permutation`` as a CPU long tensor, after checking it orders ``0 .. input_dim - 1``.

    None gives a random permutation. Anything else must be a 1-D integer
    tensor (or sequence) holding every index exactly once; otherwise a
    ValueError names ``owner`` (the class or function asking) and the problem.

    Example::

        >>> check_permutation([2, 0, 1], 3, "MyFlow")
        tensor([2, 0, 1])
        >>> check_permutation([0, 0, 1], 3, "MyFlow")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: MyFlow: [0, 0, 1] is not a permutation of 0..2 ...
    """
    if permutation is None:
        return torch.randperm(input_dim, dtype=torch.long)
    perm = torch.as_tensor(permutation)
    if perm.dim() != 1 or perm.numel() != input_dim:
        raise ValueError(
            f"{owner}: permutation must be a 1-D tensor of length input_dim={input_dim}, "
            f"got shape {tuple(perm.shape)}"
        )
    if perm.dtype.is_floating_point or perm.dtype == torch.bool or perm.is_complex():
        raise ValueError(
            f"{owner}: permutation must hold integers, got dtype {perm.dtype}; "
            "use e.g. torch.randperm(input_dim)"
        )
    perm = perm.long()
    if not torch.equal(torch.sort(perm).values, torch.arange(input_dim, device=perm.device)):
        raise ValueError(
            f"{owner}: {perm.tolist()} is not a permutation of 0..{input_dim - 1} "
            "(every index must appear exactly once)"
        )
    return perm.cpu()


def sample_mask_indices(input_dim: int, hidden_dim: int, min_degree: int = 1) -> torch.Tensor:
    """Degrees of the ``hidden_dim`` units of one hidden layer of a MADE network.

    Degrees are spread evenly over ``min_degree .. input_dim - 1`` so that,
    whenever ``hidden_dim >= input_dim - min_degree``, every degree occurs at
    least once and the network can express every dependence its ordering
    allows. A unit of degree ``m`` sees the inputs of degree ``<= m``; degree
    0 units see only the context, so conditional networks use
    ``min_degree=0`` (the first variable's outputs then depend on the context).

    Example::

        >>> from ember.nn.auto_reg_nn import sample_mask_indices
        >>> sample_mask_indices(4, 6).tolist()
        [1, 1, 2, 2, 3, 3]
        >>> sample_mask_indices(3, 3, min_degree=0).tolist()
        [0, 1, 2]
    """
    low = min(min_degree, input_dim - 1)
    high = input_dim - 1
    if hidden_dim == 1 or low == high:
        return torch.full((hidden_dim,), low, dtype=torch.long)
    # Evenly spaced in [low, high]; consecutive values differ by at most one when
    # hidden_dim >= high - low + 1, so rounding hits every integer.
    positions = torch.linspace(low, high, steps=hidden_dim, dtype=torch.float64)
    return torch.floor(positions + 0.5).long()


def create_mask(
    input_dim: int,
    context_dim: int,
    hidden_dims: Sequence[int],
    permutation: torch.Tensor,
    output_dim_multiplier: int,
):
    """The masks of a MADE network: ``(layer_masks, skip_mask)``.

    ``layer_masks[l]`` has shape ``(out, in)`` of layer ``l``; the last one maps
    the final hidden layer to ``output_dim_multiplier * input_dim`` outputs,
    ordered as ``(multiplier, input_dim)``. ``skip_mask`` connects the inputs
    (and context) straight to the outputs. Inputs are ``[context, x]``;
    ``x[permutation[k]]`` has degree ``k + 1``, the context has degree 0, and
    hidden units have degrees ``1 .. D - 1`` (``0 .. D - 1`` with a context).

    Example::

        >>> import torch
        >>> from ember.nn.auto_reg_nn import create_mask
        >>> masks, skip = create_mask(3, 0, [4], torch.arange(3), 1)
        >>> [tuple(m.shape) for m in masks], tuple(skip.shape)
        ([(4, 3), (3, 4)], (3, 3))
        >>> skip.tolist()
        [[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [1.0, 1.0, 0.0]]
    """
    var_degree = torch.empty(input_dim, dtype=torch.long)
    var_degree[permutation] = torch.arange(1, input_dim + 1)
    in_degree = torch.cat([torch.zeros(context_dim, dtype=torch.long), var_degree])
    out_degree = var_degree.repeat(output_dim_multiplier)

    masks = []
    prev = in_degree
    min_degree = 0 if context_dim else 1
    for h in hidden_dims:
        degree = sample_mask_indices(input_dim, h, min_degree)
        masks.append((degree.unsqueeze(-1) >= prev.unsqueeze(0)).float())
        prev = degree
    masks.append((out_degree.unsqueeze(-1) > prev.unsqueeze(0)).float())
    skip = (out_degree.unsqueeze(-1) > in_degree.unsqueeze(0)).float()
    return masks, skip


def _check_sizes(name, input_dim, context_dim, hidden_dims, param_dims):
    """``(hidden_dims, param_dims)`` as lists of ints, after checking every size of a network.

    Raises a ValueError (a TypeError for an int ``hidden_dims``) naming ``name``.
    """
    if not isinstance(input_dim, int) or isinstance(input_dim, bool) or input_dim < 1:
        raise ValueError(f"{name}: input_dim must be a positive int, got {input_dim!r}")
    if not isinstance(context_dim, int) or isinstance(context_dim, bool) or context_dim < 0:
        raise ValueError(f"{name}: context_dim must be a non-negative int, got {context_dim!r}")
    if isinstance(hidden_dims, int):
        raise TypeError(
            f"{name}: hidden_dims must be a list of layer widths, got the int "
            f"{hidden_dims}; write [{hidden_dims}] for one hidden layer"
        )
    hidden_dims = [int(h) for h in hidden_dims]
    for layer, h in enumerate(hidden_dims):
        if h < 1:
            raise ValueError(f"{name}: hidden layer {layer} has width {h}; widths must be >= 1")
    if isinstance(param_dims, int):
        raise TypeError(
            f"{name}: param_dims must be a list of sizes, got the int {param_dims}; "
            f"write [{param_dims}] for one parameter"
        )
    param_dims = [int(p) for p in param_dims]
    if not param_dims or any(p < 1 for p in param_dims):
        raise ValueError(
            f"{name}: param_dims must be a non-empty list of positive ints, got {param_dims}"
        )
    return hidden_dims, param_dims


def _network_input(net, inputs, context):
    """``inputs`` of ``net`` preceded by its ``context`` (the two broadcast against each
    other) along the last dim: ``[context, inputs]``."""
    name = type(net).__name__
    if not isinstance(inputs, torch.Tensor):
        raise TypeError(f"{name}: inputs must be a tensor, got {type(inputs).__name__}")
    if inputs.dim() < 1 or inputs.shape[-1] != net.input_dim:
        raise ValueError(
            f"{name}: inputs must have shape (..., {net.input_dim}), got {tuple(inputs.shape)}"
        )
    if not net.context_dim:
        return inputs
    if context is None:
        raise ValueError(f"{name}: a context of shape (..., {net.context_dim}) is required")
    if not isinstance(context, torch.Tensor):
        raise TypeError(f"{name}: context must be a tensor, got {type(context).__name__}")
    if context.dim() < 1 or context.shape[-1] != net.context_dim:
        raise ValueError(
            f"{name}: context must have shape (..., {net.context_dim}), got {tuple(context.shape)}"
        )
    try:
        batch = torch.broadcast_shapes(inputs.shape[:-1], context.shape[:-1])
    except RuntimeError:
        raise ValueError(
            f"{name}: the batch shapes of inputs {tuple(inputs.shape)} and context "
            f"{tuple(context.shape)} do not broadcast"
        ) from None
    inputs = inputs.expand(batch + (net.input_dim,))
    context = context.expand(batch + (net.context_dim,))
    return torch.cat([context, inputs], dim=-1)


class ConditionalAutoRegressiveNN(nn.Module):
    """A MADE network whose outputs may also depend on a context vector.

    ``forward(x, context)`` returns parameters whose entries for variable
    ``permutation[k]`` depend on ``x[permutation[:k]]`` and on all of
    ``context`` (the first layer reads ``[context, x]``, broadcast against each
    other). With ``param_dims=[1, 1]`` (the default) the result is a tuple
    of two tensors of shape ``x.shape``; with a single ``param_dims=[1]`` a
    single tensor of that shape; when some ``param_dims[j] > 1``, a tuple (or a
    single tensor, for one entry) of tensors of shape
    ``x.shape[:-1] + (param_dims[j], input_dim)``.

    :param input_dim: dimension ``D`` of ``x``.
    :param context_dim: dimension of ``context``.
    :param hidden_dims: widths of the hidden layers, each at least ``D - 1``.
    :param param_dims: number of outputs per input for each returned parameter.
    :param permutation: ordering of the inputs; random by default.
    :param skip_connections: add a masked linear map from inputs to outputs.
    :param nonlinearity: activation between layers (``nn.ReLU()`` by default).

    Example::

        >>> import torch
        >>> from ember.nn import ConditionalAutoRegressiveNN
        >>> arn = ConditionalAutoRegressiveNN(3, 2, [8])
        >>> mean, log_scale = arn(torch.randn(5, 3), torch.randn(2))
        >>> mean.shape, log_scale.shape
        (torch.Size([5, 3]), torch.Size([5, 3]))
    """

    def __init__(
        self,
        input_dim: int,
        context_dim: int,
        hidden_dims: Sequence[int],
        param_dims: Sequence[int] = (1, 1),
        permutation: torch.Tensor | None = None,
        skip_connections: bool = False,
        nonlinearity: nn.Module | None = None,
    ) -> None:
        super().__init__()
        name = type(self).__name__
        hidden_dims, param_dims = _check_sizes(
            name, input_dim, context_dim, hidden_dims, param_dims
        )
        low = 0 if context_dim else 1
        needed = max(input_dim - low, 1)
        for layer, h in enumerate(hidden_dims):
            if h < needed:
                what = "input_dim" if context_dim else "input_dim - 1"
                raise ValueError(
                    f"{name}: hidden layer {layer} has {h} units, fewer than {what} = "
                    f"{needed}; the MADE masks then lose some of the allowed dependencies "
                    f"(hidden units of every degree {low}..{input_dim - 1} are needed). "
                    f"Give every hidden layer at least {needed} units (a few times "
                    f"input_dim is typical, e.g. [{3 * input_dim + 1}])"
                )
        if input_dim == 1 and not context_dim:
            warnings.warn(
                f"{name} with input_dim=1 has no autoregressive structure: its outputs "
                "are constant in x (an affine transform would do)",
                stacklevel=2,
            )

        self.input_dim = input_dim
        self.context_dim = context_dim
        self.hidden_dims = hidden_dims
        self.param_dims = param_dims
        self.count_params = len(param_dims)
        self.output_multiplier = sum(param_dims)
        self.all_ones = all(p == 1 for p in param_dims)
        self.skip_connections = skip_connections
        self.nonlinearity = nn.ReLU() if nonlinearity is None else nonlinearity

        perm = check_permutation(permutation, input_dim, name)
        self.register_buffer("permutation", perm)
        masks, mask_skip = create_mask(
            input_dim, context_dim, hidden_dims, perm, self.output_multiplier
        )
        self.masks = masks
        widths = [input_dim + context_dim] + hidden_dims + [self.output_multiplier * input_dim]
        self.layers = nn.ModuleList(
            MaskedLinear(widths[i], widths[i + 1], masks[i]) for i in range(len(masks))
        )
        if skip_connections:
            self.skip_layer = MaskedLinear(widths[0], widths[-1], mask_skip, bias=False)
        else:
            self.skip_layer = None

    def get_permutation(self) -> torch.Tensor:
        """The ordering of the inputs: ``x[permutation[k]]`` is the ``k``-th variable."""
        return self.permutation

    def forward(self, inputs: torch.Tensor, context: torch.Tensor | None = None):
        """The autoregressive parameters for ``inputs`` (see the class docstring)."""
        h = _network_input(self, inputs, context)
        x = h
        for layer in self.layers[:-1]:
            h = self.nonlinearity(layer(h))
        h = self.layers[-1](h)
        if self.skip_layer is not None:
            h = h + self.skip_layer(x)
        if self.output_multiplier == 1:
            return h
        h = h.reshape(h.shape[:-1] + (self.output_multiplier, self.input_dim))
        if self.count_params == 1:
            return h
        if self.all_ones:
            return tuple(h.unbind(-2))
        return tuple(h.split(self.param_dims, dim=-2))


class AutoRegressiveNN(ConditionalAutoRegressiveNN):
    """A MADE network (arXiv:1502.03509): outputs for ``x_i`` see only the inputs before it.

    The outputs for variable ``permutation[k]`` depend only on
    ``x[permutation[:k]]``; the permutation is random unless given and is
    exposed as the ``permutation`` buffer. Output shapes are described in
    :class:`ConditionalAutoRegressiveNN`: for ``param_dims=[1, 1]`` a tuple
    ``(mean, log_scale)`` of tensors shaped like ``x``. The parameters are
    those of :class:`ConditionalAutoRegressiveNN` without ``context_dim``.

    Example::

        >>> import torch
        >>> from ember.nn import AutoRegressiveNN
        >>> arn = AutoRegressiveNN(3, [10], param_dims=[1, 1], permutation=torch.tensor([2, 0, 1]))
        >>> mean, log_scale = arn(torch.randn(4, 3))
        >>> mean.shape
        torch.Size([4, 3])
        >>> AutoRegressiveNN(3, [10], param_dims=[16, 16])(torch.randn(3))[0].shape
        torch.Size([16, 3])
    """

    def __init__(
        self,
        input_dim: int,
        hidden_dims: Sequence[int],
        param_dims: Sequence[int] = (1, 1),
        permutation: torch.Tensor | None = None,
        skip_connections: bool = False,
        nonlinearity: nn.Module | None = None,
    ) -> None:
        super().__init__(
            input_dim,
            0,
            hidden_dims,
            param_dims=param_dims,
            permutation=permutation,
            skip_connections=skip_connections,
            nonlinearity=nonlinearity,
        )

    def forward(self, inputs: torch.Tensor) -> Union[torch.Tensor, tuple]:  # type: ignore[override]
        """The autoregressive parameters for ``inputs``."""
        return super().forward(inputs)


class ConditionalDenseNN(nn.Module):
    """A dense feed-forward network of inputs and a context vector, with its output split
    into parameters.

    ``forward(x, context)`` runs ``[context, x]`` (broadcast against each other)
    through linear layers of widths ``hidden_dims`` with ``nonlinearity``
    between them (none after the last) to ``sum(param_dims)`` outputs. They are
    returned as a tuple of tensors of shapes ``batch + (param_dims[j],)``
    (size-1 parameters keep their last dim of size 1), or, when
    ``param_dims`` has a single entry, as that one tensor.

    :param input_dim: size of the last dim of ``x``.
    :param context_dim: size of the last dim of ``context``.
    :param hidden_dims: widths of the hidden layers (may be empty: one linear map).
    :param param_dims: size of each returned parameter (default ``[1, 1]``).
    :param nonlinearity: activation between layers (``nn.ReLU()`` by default).

    Example::

        >>> import torch
        >>> from ember.nn import ConditionalDenseNN
        >>> net = ConditionalDenseNN(4, 2, [16], param_dims=[1, 4, 4])
        >>> a, b, c = net(torch.randn(10, 4), context=torch.randn(2))
        >>> a.shape, b.shape, c.shape
        (torch.Size([10, 1]), torch.Size([10, 4]), torch.Size([10, 4]))
    """

    def __init__(
        self,
        input_dim: int,
        context_dim: int,
        hidden_dims: Sequence[int],
        param_dims: Sequence[int] = (1, 1),
        nonlinearity: nn.Module | None = None,
    ) -> None:
        super().__init__()
        hidden_dims, param_dims = _check_sizes(
            type(self).__name__, input_dim, context_dim, hidden_dims, param_dims
        )
        self.input_dim = input_dim
        self.context_dim = context_dim
        self.hidden_dims = hidden_dims
        self.param_dims = param_dims
        self.count_params = len(param_dims)
        self.output_multiplier = sum(param_dims)
        self.nonlinearity = nn.ReLU() if nonlinearity is None else nonlinearity
        widths = [input_dim + context_dim] + hidden_dims + [self.output_multiplier]
        self.layers = nn.ModuleList(
            nn.Linear(widths[i], widths[i + 1]) for i in range(len(widths) - 1)
        )

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None):
        """The parameters for ``x`` and ``context`` (see the class docstring)."""
        h = _network_input(self, x, context)
        for layer in self.layers[:-1]:
            h = self.nonlinearity(layer(h))
        h = self.layers[-1](h)
        if self.count_params == 1:
            return h
        return tuple(h.split(self.param_dims, dim=-1))


class DenseNN(ConditionalDenseNN):
    """A dense feed-forward network with its output split into parameters.

    :class:`ConditionalDenseNN` without a context (and without ``context_dim``
    among the parameters): ``forward(x)`` gives a tuple of tensors of shapes
    ``x.shape[:-1] + (param_dims[j],)``, or one tensor when ``param_dims`` has
    a single entry.

    Example::

        >>> import torch
        >>> from ember.nn import DenseNN
        >>> loc, log_scale = DenseNN(3, [8, 8], param_dims=[2, 2])(torch.randn(5, 3))
        >>> loc.shape, log_scale.shape
        (torch.Size([5, 2]), torch.Size([5, 2]))
        >>> DenseNN(3, [8], param_dims=[1])(torch.randn(3)).shape
        torch.Size([1])
    """

    def __init__(
        self,
        input_dim: int,
        hidden_dims: Sequence[int],
        param_dims: Sequence[int] = (1, 1),
        nonlinearity: nn.Module | None = None,
    ) -> None:
        super().__init__(input_dim, 0, hidden_dims, param_dims, nonlinearity)

    def forward(self, x: torch.Tensor) -> Union[torch.Tensor, tuple]:  # type: ignore[override]
        """The parameters for ``x``."""
        return super().forward(x)
