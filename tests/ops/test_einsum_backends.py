"""The einsum backends of ember.ops.einsum against brute force: every joint value of
the summed dims is enumerated (``itertools.product``) and the exact sum, maximum,
argmax, marginals and sampling distribution are read off that table."""

import itertools

import pytest
import scipy.stats
import torch

import ember
from ember.ops.einsum import contract, contract_expression
from ember.ops.einsum.adjoint import require_backward
from ember.ops.einsum.util import Tensordot

F64 = torch.float64
EQUATIONS = ["ab,bc->", "ab,bc,cd->a", "a,ab,bc->c", "ab,ab->a", "abc,cd->bd", "a->a"]


def operands_for(equation, seed=0):
    gen = torch.Generator().manual_seed(seed)
    inputs = equation.split("->")[0].split(",")
    symbols = sorted(set("".join(inputs)))
    sizes = {d: 2 + i for i, d in enumerate(symbols)}
    xs = [torch.randn([sizes[d] for d in dims], generator=gen, dtype=F64) for dims in inputs]
    for dims, x in zip(inputs, xs):
        x._pyro_dims = dims
    return inputs, xs, sizes


def brute_force_table(inputs, xs, sizes):
    """``{assignment: log-value of the product}`` over every joint value of all dims."""
    symbols = sorted(sizes)
    table = {}
    for values in itertools.product(*(range(sizes[d]) for d in symbols)):
        at = dict(zip(symbols, values))
        table[values] = sum(float(x[tuple(at[d] for d in dims)]) for dims, x in zip(inputs, xs))
    return symbols, table


@pytest.mark.parametrize("equation", EQUATIONS)
def test_torch_log_equals_log_of_plain_contraction(equation):
    _, xs, _ = operands_for(equation)
    expected = contract(equation, *[x.exp() for x in xs], backend="torch").log()
    actual = contract(equation, *xs, backend="ember.ops.einsum.torch_log")
    assert torch.allclose(actual, expected, atol=1e-12)
    shifted = contract(equation, *[x - 800.0 for x in xs], backend="ember.ops.einsum.torch_log")
    assert torch.allclose(shifted, expected - 800.0 * len(xs), atol=1e-9)


@pytest.mark.parametrize("equation", EQUATIONS)
def test_torch_map_max_and_argmax_equal_brute_force(equation):
    inputs, xs, sizes = operands_for(equation, seed=1)
    output = equation.split("->")[1]
    for x in xs:
        require_backward(x)
    best = contract(equation, *xs, backend="ember.ops.einsum.torch_map")
    symbols, table = brute_force_table(inputs, xs, sizes)
    if output:  # the maximum for each output value
        for out_values in itertools.product(*(range(sizes[d]) for d in output)):
            fixed = dict(zip(output, out_values))
            m = max(
                v for k, v in table.items() if all(k[symbols.index(d)] == fixed[d] for d in output)
            )
            assert float(best[out_values]) == pytest.approx(m, abs=1e-12)
        return
    assert float(best) == pytest.approx(max(table.values()), abs=1e-12)
    best._pyro_backward()
    argmax = max(table, key=table.get)
    for x in xs:
        result = x._pyro_backward_result
        for d, row in zip(result._pyro_sample_dims, result):
            assert int(row) == argmax[symbols.index(d)]


@pytest.mark.parametrize("equation", ["ab,bc->", "a,ab,bc->"])
def test_torch_sample_draws_follow_the_normalized_product(equation):
    ember.set_rng_seed(0)
    inputs, xs, sizes = operands_for(equation, seed=2)
    symbols, table = brute_force_table(inputs, xs, sizes)
    logp = torch.tensor(list(table.values()), dtype=F64)
    probs = (logp - logp.logsumexp(0)).exp()
    keys = list(table)
    counts = torch.zeros(len(keys), dtype=F64)
    for _ in range(3000):
        for x in xs:
            require_backward(x)
        z = contract(equation, *xs, backend="ember.ops.einsum.torch_sample")
        assert float(z) == pytest.approx(float(logp.logsumexp(0)), abs=1e-12)
        z._pyro_backward()
        chosen = {}
        for x in xs:
            r = x._pyro_backward_result
            for d, row in zip(r._pyro_sample_dims, r):
                assert chosen.setdefault(d, int(row)) == int(row)  # operands agree
        counts[keys.index(tuple(chosen[d] for d in symbols))] += 1
    expected = probs * counts.sum()
    stat = float(((counts - expected) ** 2 / expected).sum())
    assert scipy.stats.chi2.sf(stat, len(keys) - 1) > 1e-3


@pytest.mark.parametrize("equation", EQUATIONS)
def test_torch_marginal_backward_equals_brute_force_marginals(equation):
    inputs, xs, sizes = operands_for(equation, seed=3)
    for x in xs:
        require_backward(x)
    z = contract(equation, *xs, backend="ember.ops.einsum.torch_marginal")
    expected_z = contract(equation, *xs, backend="ember.ops.einsum.torch_log")
    assert torch.allclose(z, expected_z, atol=1e-12)
    if equation.split("->")[1]:
        return  # a backward pass starts from a scalar
    z._pyro_backward()
    symbols, table = brute_force_table(inputs, xs, sizes)
    for dims, x in zip(inputs, xs):
        marginal = torch.full(x.shape, -float("inf"), dtype=F64)
        for k, v in table.items():
            at = tuple(k[symbols.index(d)] for d in dims)
            marginal[at] = torch.logaddexp(marginal[at], torch.tensor(v, dtype=F64))
        assert torch.allclose(x._pyro_backward_result, marginal, atol=1e-10)


def test_backward_reaches_only_marked_operands():
    x, y = torch.randn(2, 3), torch.randn(3)
    x._pyro_dims, y._pyro_dims = "ab", "b"
    require_backward(x)
    z = contract("ab,b->", x, y, backend="ember.ops.einsum.torch_map")
    z._pyro_backward()
    assert x._pyro_backward_result is not None
    assert not hasattr(y, "_pyro_backward_result")


@pytest.mark.parametrize(
    "axes,y_shape",
    [(0, (5,)), (1, (4, 5)), (2, (3, 4, 5)), (([0], [1]), (3, 2, 5)), (((0, 2), (1, 0)), (4, 2))],
)
def test_tensordot_from_einsum_equals_torch_tensordot(axes, y_shape):
    x, y = torch.randn(2, 3, 4), torch.randn(y_shape)
    expected = torch.tensordot(x, y, dims=axes)
    assert torch.allclose(Tensordot(torch.einsum)(x, y, axes), expected, atol=1e-6)


def test_contract_expression_is_cached_and_validates():
    a = contract_expression("ab,bc->ac", (2, 3), (3, 4))
    assert contract_expression("ab,bc->ac", (2, 3), (3, 4)) is a
    assert contract_expression("ab,bc->ac", (2, 3), (3, 4), cache_path=False) is not a
    with pytest.raises(TypeError, match="unexpected keyword"):
        contract("a->", torch.ones(2), bogus=1)
