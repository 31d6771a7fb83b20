"""Tests of ember.nn: MaskedLinear and the MADE networks' autoregressive structure."""

import itertools

import pytest
import torch
from torch import nn
from torch.autograd.functional import jacobian

from ember.nn import AutoRegressiveNN, ConditionalAutoRegressiveNN, MaskedLinear
from ember.nn.auto_reg_nn import create_mask, sample_mask_indices


def _as_tuple(out):
    return out if isinstance(out, tuple) else (out,)


def _rank(permutation):
    """rank[i] = position of input i in the ordering."""
    rank = torch.empty_like(permutation)
    rank[permutation] = torch.arange(len(permutation))
    return rank


def _jacobians(arn, x, context=None):
    """Jacobians of each output w.r.t. x, each reshaped to (rows, D_out, D_in)."""
    if context is None:
        jacs = jacobian(lambda v: _as_tuple(arn(v)), x)
    else:
        jacs = jacobian(lambda v: _as_tuple(arn(v, context)), x)
    d = x.shape[-1]
    return [j.reshape(-1, d, d) for j in jacs]


def test_masked_linear_applies_mask():
    torch.manual_seed(0)
    mask = torch.tensor([[1.0, 0.0, 1.0], [0.0, 0.0, 1.0]])
    layer = MaskedLinear(3, 2, mask)
    x = torch.randn(3, dtype=torch.float32)
    jac = jacobian(layer, x)
    assert torch.all(jac[mask == 0] == 0)
    expected = x @ (mask * layer.weight).T + layer.bias
    assert torch.allclose(layer(x), expected)
    assert "mask" in layer.state_dict()
    assert "mask" not in dict(layer.named_parameters())
    # the mask stops the gradient to the masked weights
    layer(x).sum().backward()
    assert torch.all(layer.weight.grad[mask == 0] == 0)
    assert torch.all(layer.weight.grad[mask == 1] != 0)


def test_masked_linear_bad_mask_shape():
    with pytest.raises(ValueError, match=r"mask has shape \(3, 2\).*\(2, 3\)"):
        MaskedLinear(3, 2, torch.ones(3, 2))


def test_mask_degrees_cover_all_values():
    for d, h in [(2, 1), (3, 2), (5, 4), (5, 17), (10, 40)]:
        deg = sample_mask_indices(d, h)
        assert deg.shape == (h,)
        assert set(deg.tolist()) == set(range(1, d))


def test_create_mask_identity_is_strictly_lower_triangular():
    masks, skip = create_mask(4, 0, [6, 5], torch.arange(4), 2)
    # product of masks = connectivity; must be strictly lower triangular per block
    conn = masks[2] @ masks[1] @ masks[0]
    conn = conn.reshape(2, 4, 4)
    lower = torch.tril(torch.ones(4, 4), -1)
    assert torch.all((conn > 0) == (lower > 0))
    assert torch.equal(skip.reshape(2, 4, 4), lower.expand(2, 4, 4))


def test_create_mask_puts_the_context_first():
    # inputs are [context, x]: every output sees the whole context (columns 0..c-1),
    # and x[permutation[k]] (column c + permutation[k]) feeds the later variables only
    c, d = 2, 3
    permutation = torch.tensor([2, 0, 1])
    masks, skip = create_mask(d, c, [8, 8], permutation, 2)
    conn = (masks[2] @ masks[1] @ masks[0] > 0).reshape(2, d, c + d)
    assert bool(conn[..., :c].all()) and bool(skip.reshape(2, d, c + d)[..., :c].all())
    order = permutation.tolist()
    for out in range(d):
        seen = set(order[: order.index(out)])
        expected = [i in seen for i in range(d)]
        for block in (conn, skip.reshape(2, d, c + d) > 0):
            assert block[:, out, c:].tolist() == [expected, expected]


PERMS = [None, torch.tensor([0, 1, 2, 3, 4]), torch.tensor([3, 0, 4, 2, 1])]
PARAM_DIMS = [[1], [1, 1], [2], [1, 2, 3], [4, 4, 4]]


@pytest.mark.parametrize(
    "permutation,param_dims,skip", list(itertools.product(PERMS, PARAM_DIMS, [False, True]))
)
def test_autoregressive_property(permutation, param_dims, skip):
    torch.manual_seed(1)
    d = 5
    arn = AutoRegressiveNN(
        d,
        [7, 9],
        param_dims=param_dims,
        permutation=permutation,
        skip_connections=skip,
        nonlinearity=nn.Tanh(),
    ).double()
    if permutation is not None:
        assert torch.equal(arn.permutation, permutation)
    perm = arn.permutation
    assert sorted(perm.tolist()) == list(range(d))
    rank = _rank(perm)
    allowed = rank.unsqueeze(-1) > rank.unsqueeze(0)  # allowed[i, j]: out_i may see x_j
    total = None
    for _ in range(3):
        jacs = _jacobians(arn, torch.randn(d, dtype=torch.float64))
        assert len(jacs) == len(param_dims)
        stacked = torch.cat(jacs, 0).abs()
        total = stacked if total is None else total + stacked
    # forbidden dependences are exactly zero ...
    assert torch.all(total[:, ~allowed] == 0)
    # ... and every allowed one is present (the masks keep full connectivity)
    assert torch.all(total[:, allowed] > 0)


def test_autoregressive_property_relu_default():
    torch.manual_seed(2)
    arn = AutoRegressiveNN(6, [12, 12]).double()
    rank = _rank(arn.permutation)
    forbidden = rank.unsqueeze(-1) <= rank.unsqueeze(0)
    for _ in range(3):
        for jac in _jacobians(arn, torch.randn(6, dtype=torch.float64)):
            assert torch.all(jac[:, forbidden] == 0)


def test_default_permutation_is_random():
    torch.manual_seed(3)
    perms = {tuple(AutoRegressiveNN(6, [10]).permutation.tolist()) for _ in range(10)}
    assert len(perms) > 1
    assert all(sorted(p) == list(range(6)) for p in perms)
    arn = AutoRegressiveNN(6, [10])
    assert arn.get_permutation() is arn.permutation


@pytest.mark.parametrize(
    "param_dims,shapes",
    [
        ([1], [(4, 3)]),
        ([1, 1], [(4, 3), (4, 3)]),
        ([5], [(4, 5, 3)]),
        ([16, 16, 16], [(4, 16, 3)] * 3),
        ([1, 2], [(4, 1, 3), (4, 2, 3)]),
    ],
)
def test_output_shapes(param_dims, shapes):
    arn = AutoRegressiveNN(3, [8], param_dims=param_dims)
    out = arn(torch.randn(4, 3))
    if len(param_dims) == 1:
        assert isinstance(out, torch.Tensor)
        out = (out,)
    else:
        assert isinstance(out, tuple)
    assert [tuple(o.shape) for o in out] == shapes


def test_batch_dims_and_dtype():
    arn = AutoRegressiveNN(3, [8]).double()
    mean, log_scale = arn(torch.randn(2, 5, 3, dtype=torch.float64))
    assert mean.shape == (2, 5, 3) and mean.dtype == torch.float64


@pytest.mark.parametrize("given_perm", [True, False], ids=["given_perm", "random_perm"])
@pytest.mark.parametrize("skip", [False, True])
def test_conditional_arn_structure(skip, given_perm):
    torch.manual_seed(4)
    d, c = 4, 3
    perm = torch.tensor([2, 3, 0, 1]) if given_perm else None
    arn = ConditionalAutoRegressiveNN(
        d, c, [8, 8], permutation=perm, skip_connections=skip, nonlinearity=nn.Tanh()
    ).double()
    perm = arn.permutation
    assert sorted(perm.tolist()) == list(range(d))
    rank = _rank(perm)
    allowed = rank.unsqueeze(-1) > rank.unsqueeze(0)
    context = torch.randn(c, dtype=torch.float64)
    x = torch.randn(d, dtype=torch.float64)
    for jac in _jacobians(arn, x, context):
        assert torch.all(jac[:, ~allowed] == 0)
        assert torch.all(jac[:, allowed] != 0)
    # every output depends on the whole context
    jc = jacobian(lambda ctx: arn(x, ctx), context)
    for j in jc:
        assert torch.all(j != 0)
    # context broadcasts against a batch of inputs
    mean, _ = arn(torch.randn(5, d, dtype=torch.float64), context)
    assert mean.shape == (5, d)
    single = arn(x, context)[0]
    batched = arn(x.expand(5, d), context.expand(5, c))[0]
    assert torch.allclose(batched, single.expand(5, d))


def test_conditional_arn_bad_context():
    arn = ConditionalAutoRegressiveNN(3, 2, [6])
    with pytest.raises(ValueError, match=r"context must have shape \(\.\.\., 2\)"):
        arn(torch.randn(3), torch.randn(4))
    with pytest.raises(ValueError, match="context"):
        arn(torch.randn(3))


def test_wrong_input_dimension():
    arn = AutoRegressiveNN(3, [6])
    with pytest.raises(ValueError, match=r"inputs must have shape \(\.\.\., 3\), got \(5, 4\)"):
        arn(torch.randn(5, 4))


@pytest.mark.parametrize(
    "permutation,match",
    [
        (torch.tensor([0, 0, 1]), "not a permutation"),
        (torch.tensor([0, 1, 3]), "not a permutation"),
        (torch.tensor([0, 1]), "length input_dim=3"),
        (torch.tensor([[0, 1, 2]]), "1-D"),
        (torch.tensor([0.0, 1.0, 2.0]), "integers"),
    ],
)
def test_bad_permutation(permutation, match):
    with pytest.raises(ValueError, match=match):
        AutoRegressiveNN(3, [6], permutation=permutation)


def test_hidden_too_small():
    with pytest.raises(ValueError, match=r"hidden layer 1 has 3 units.*input_dim - 1 = 5"):
        AutoRegressiveNN(6, [10, 3])
    with pytest.raises(TypeError, match="list of layer widths"):
        AutoRegressiveNN(6, 10)
    with pytest.raises(ValueError, match="input_dim must be a positive int"):
        AutoRegressiveNN(0, [4])
    with pytest.raises(ValueError, match="param_dims"):
        AutoRegressiveNN(3, [4], param_dims=[1, 0])


def test_input_dim_one_warns_and_is_constant():
    with pytest.warns(UserWarning, match="input_dim=1"):
        arn = AutoRegressiveNN(1, [4])
    a, b = arn(torch.randn(10, 1))
    assert torch.allclose(a, a[:1].expand(10, 1))


def test_conditional_hidden_too_small():
    # with a context, the hidden layers also need units of degree 0 (context only)
    with pytest.raises(ValueError, match=r"hidden layer 0 has 3 units, fewer than input_dim = 4"):
        ConditionalAutoRegressiveNN(4, 2, [3])
    ConditionalAutoRegressiveNN(4, 2, [4])
    deg = sample_mask_indices(4, 9, min_degree=0)
    assert set(deg.tolist()) == {0, 1, 2, 3}


def test_ember_nn_is_pure_torch():
    import ast
    from pathlib import Path

    import ember.nn

    for path in Path(ember.nn.__file__).parent.glob("*.py"):
        if path.name == "module.py":
            continue  # ember.nn.module sits above the primitives (exported lazily)
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            for name in names:
                assert not name.startswith(("ember.poutine", "ember.infer", "ember.primitives")), (
                    f"{path.name} imports {name}"
                )
