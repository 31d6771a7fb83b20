"""DenseNN and ConditionalDenseNN: exact outputs from their own weights, the output
conventions (how the output is split by ``param_dims``), broadcasting and errors."""

import pytest
import torch
from torch import nn

from ember.nn import ConditionalDenseNN, DenseNN


def by_hand(net, h):
    """The network's map written out with its own weights: affine, activation, ..., affine."""
    layers = list(net.layers)
    for layer in layers[:-1]:
        h = net.nonlinearity(h @ layer.weight.T + layer.bias)
    return h @ layers[-1].weight.T + layers[-1].bias


@pytest.mark.parametrize("hidden_dims", [[], [7], [5, 6]])
def test_dense_nn_equals_the_composition_of_its_layers(hidden_dims):
    torch.manual_seed(0)
    net = DenseNN(3, hidden_dims, param_dims=[2, 1, 4]).double()
    x = torch.randn(5, 3, dtype=torch.float64)
    a, b, c = net(x)
    full = by_hand(net, x)
    assert full.shape == (5, 7)
    assert torch.equal(a, full[:, :2]) and torch.equal(b, full[:, 2:3])
    assert torch.equal(c, full[:, 3:])
    assert [tuple(m.weight.shape) for m in net.layers] == [
        (o, i) for i, o in zip([3] + hidden_dims, hidden_dims + [7])
    ]


def test_conditional_dense_nn_reads_context_first():
    torch.manual_seed(1)
    net = ConditionalDenseNN(3, 2, [8], param_dims=[1, 3]).double()
    x = torch.randn(4, 3, dtype=torch.float64)
    z = torch.randn(4, 2, dtype=torch.float64)
    a, b = net(x, context=z)
    full = by_hand(net, torch.cat([z, x], -1))
    assert torch.allclose(a, full[:, :1]) and torch.allclose(b, full[:, 1:])
    # the first layer's first two input columns see the context only
    with torch.no_grad():
        net.layers[0].weight[:, :2] = 0.0
    a2, _ = net(x, context=z + 10.0)
    a3, _ = net(x, context=z)
    assert torch.equal(a2, a3)


@pytest.mark.parametrize(
    "param_dims, expected",
    [
        ([1], (6, 1)),  # a single tensor, last dim of size 1
        ([5], (6, 5)),  # a single tensor
        ([1, 1], [(6, 1), (6, 1)]),  # size-1 parameters keep their last dim
        ([1, 3, 3], [(6, 1), (6, 3), (6, 3)]),
    ],
)
def test_output_conventions(param_dims, expected):
    out = DenseNN(4, [10], param_dims=param_dims)(torch.randn(6, 4))
    if isinstance(expected, tuple):
        assert isinstance(out, torch.Tensor) and out.shape == expected
    else:
        assert isinstance(out, tuple) and [tuple(o.shape) for o in out] == expected


def test_default_param_dims_give_two_parameters_and_relu():
    net = DenseNN(2, [4])
    assert net.param_dims == [1, 1] and isinstance(net.nonlinearity, nn.ReLU)
    a, b = net(torch.randn(3, 2))
    assert a.shape == b.shape == (3, 1)


def test_context_and_inputs_broadcast():
    torch.manual_seed(2)
    net = ConditionalDenseNN(2, 3, [6], param_dims=[2])
    x = torch.randn(5, 1, 2)
    z = torch.randn(4, 3)
    out = net(x, z)
    assert out.shape == (5, 4, 2)
    i, j = 3, 2
    assert torch.allclose(out[i, j], net(x[i, 0], z[j]))


def test_gradients_reach_every_layer_and_the_inputs():
    net = ConditionalDenseNN(2, 1, [4, 4], param_dims=[1, 2])
    x = torch.randn(3, 2, requires_grad=True)
    a, b = net(x, torch.randn(3, 1))
    (a.sum() + b.pow(2).sum()).backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert all(p.grad is not None for p in net.parameters())


def test_state_dict_keys_name_the_layers():
    keys = list(DenseNN(2, [3], param_dims=[1, 1]).state_dict())
    assert keys == ["layers.0.weight", "layers.0.bias", "layers.1.weight", "layers.1.bias"]


@pytest.mark.parametrize(
    "make, error, match",
    [
        (lambda: DenseNN(0, [4]), ValueError, "input_dim must be a positive int"),
        (lambda: DenseNN(2, 4), TypeError, r"write \[4\]"),
        (lambda: DenseNN(2, [4, 0]), ValueError, "hidden layer 1 has width 0"),
        (lambda: DenseNN(2, [4], param_dims=[]), ValueError, "non-empty list"),
        (lambda: DenseNN(2, [4], param_dims=[2, 0]), ValueError, "positive ints"),
        (lambda: DenseNN(2, [4], param_dims=3), TypeError, r"write \[3\]"),
        (lambda: ConditionalDenseNN(2, -1, [4]), ValueError, "context_dim"),
    ],
)
def test_bad_sizes_are_named(make, error, match):
    with pytest.raises(error, match=match):
        make()


def test_bad_inputs_are_named():
    net = ConditionalDenseNN(2, 3, [4])
    with pytest.raises(ValueError, match=r"inputs must have shape \(\.\.\., 2\)"):
        net(torch.randn(5, 3), torch.randn(3))
    with pytest.raises(ValueError, match="a context of shape"):
        net(torch.randn(5, 2))
    with pytest.raises(ValueError, match=r"context must have shape \(\.\.\., 3\)"):
        net(torch.randn(5, 2), torch.randn(2))
    with pytest.raises(ValueError, match="do not broadcast"):
        net(torch.randn(5, 2), torch.randn(4, 3))
    with pytest.raises(TypeError, match="inputs must be a tensor"):
        DenseNN(2, [4])([1.0, 2.0])
