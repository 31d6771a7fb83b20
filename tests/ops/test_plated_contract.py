"""Plated contraction (ember.ops.contract.einsum, ubersum, naive_ubersum,
contract_to_tensor, contract_tensor_tree) and the rings of ember.ops.rings,
checked against brute force.

The brute force unrolls the plates by hand: every sum dim gets one copy per
element of its plates (its plates are those it appears with in *every* operand),
every operand contributes one factor per element of its plates, and every joint
value of all copies is enumerated with ``itertools.product``. The exact total,
maximum, argmax, per-element marginals and sampling distributions are read off
that table.
"""

import itertools
import math
import warnings
from collections import OrderedDict

import pytest
import scipy.stats
import torch

from ember.ops.contract import (
    IntractableError,
    contract_tensor_tree,
    contract_to_tensor,
    einsum,
    naive_ubersum,
    partition_terms,
    ubersum,
)
from ember.ops.einsum.adjoint import require_backward
from ember.ops.packed import pack
from ember.ops.rings import BACKEND_TO_RING, LinearRing, LogRing, MarginalRing

F64 = torch.float64
LOG = "pyro.ops.einsum.torch_log"
BACKENDS = [
    "torch",
    "pyro.ops.einsum.torch_log",
    "pyro.ops.einsum.torch_map",
    "pyro.ops.einsum.torch_sample",
    "pyro.ops.einsum.torch_marginal",
]


class Unrolled:
    """The joint table of a plated einsum, by enumeration."""

    def __init__(self, equation, xs, plates):
        self.inputs = equation.split("->")[0].split(",")
        self.xs = xs
        self.plates = set(plates)
        self.sizes = {}
        for dims, x in zip(self.inputs, xs):
            self.sizes.update(zip(dims, x.shape))
        self.ordinal = {}
        for dims in self.inputs:
            here = self.plates.intersection(dims)
            for d in dims:
                if d not in self.plates:
                    self.ordinal[d] = self.ordinal.get(d, here) & here
        self.copies = [
            (d, element)
            for d in sorted(self.ordinal)
            for element in self.elements(sorted(self.ordinal[d]))
        ]
        self.table = []
        for values in itertools.product(*(range(self.sizes[d]) for d, _ in self.copies)):
            value_of = dict(zip(self.copies, values))
            logp = 0.0
            for dims, x in zip(self.inputs, xs):
                for at in self.elements(sorted(self.plates.intersection(dims))):
                    logp += float(x[self.index(dims, at, value_of)])
            self.table.append((value_of, logp))

    def elements(self, plates):
        ranges = [range(self.sizes[p]) for p in plates]
        return [tuple(zip(plates, e)) for e in itertools.product(*ranges)]

    def copy_of(self, d, at):
        at = dict(at)
        return (d, tuple((p, at[p]) for p in sorted(self.ordinal[d])))

    def index(self, dims, at, value_of):
        where = dict(at)
        return tuple(where[d] if d in self.plates else value_of[self.copy_of(d, at)] for d in dims)

    def log_total(self):
        return torch.logsumexp(torch.tensor([lp for _, lp in self.table], dtype=F64), 0)

    def log_max(self):
        return max(lp for _, lp in self.table)

    def output(self, out):
        """Log-values of output ``out``: for each element of its plates, the sum over
        all joint values grouped by that element's copies of its sum dims."""
        result = torch.full([self.sizes[d] for d in out], -math.inf, dtype=F64)
        out_plates = sorted(self.plates.intersection(out))
        for at in self.elements(out_plates):
            where = dict(at)
            for value_of, lp in self.table:
                idx = tuple(
                    where[d] if d in self.plates else value_of[self.copy_of(d, at)] for d in out
                )
                result[idx] = torch.logaddexp(result[idx], torch.tensor(lp, dtype=F64))
        return result


def normalize(log_values, dims, plates):
    axes = [i for i, d in enumerate(dims) if d not in plates]
    if not axes:
        return log_values - log_values
    return log_values - torch.logsumexp(log_values, dim=axes, keepdim=True)


def make_operands(equation, seed, sizes=(2, 3)):
    gen = torch.Generator().manual_seed(seed)
    inputs = equation.split("->")[0].split(",")
    symbols = sorted(set("".join(inputs)))
    size = dict(zip(symbols, itertools.cycle(sizes)))
    return [torch.randn([size[d] for d in dims], generator=gen, dtype=F64) for dims in inputs]


# (equation, plates): tree-structured plated contractions with several outputs
EXAMPLES = [
    ("ab,bc->,a,c,ac", ""),
    ("ai->,i", "i"),
    ("a,ai->,a", "i"),
    ("ai,bi->bi,i", "i"),
    ("a,abi->,a,bi,abi", "i"),
    ("a,abi,bcij->,bi,cij,bcij", "ij"),
    ("ab,bci,bdi->,a,ci,bdi", "i"),
    ("aij,abi,bc,cdj,dij->,bi,cj", "ij"),
    ("c,cda,ecb->,b,eb", "ab"),
]


@pytest.mark.parametrize("equation,plates", EXAMPLES)
def test_einsum_matches_unrolled_joint(equation, plates):
    xs = make_operands(equation, seed=len(equation))
    brute = Unrolled(equation, xs, plates)
    outputs = equation.split("->")[1].split(",")
    logs = einsum(equation, *xs, plates=plates, backend=LOG, modulo_total=True)
    linear = einsum(equation, *[x.exp() for x in xs], plates=plates, modulo_total=True)
    naive = naive_ubersum(equation, *xs, plates=plates)
    for out, log_v, lin_v, naive_v in zip(outputs, logs, linear, naive):
        expected = brute.output(out)
        assert log_v.shape == lin_v.shape == naive_v.shape == expected.shape
        # the unrolled reference is exact, not only up to a constant
        assert torch.allclose(naive_v, expected, atol=1e-9)
        if out:  # modulo_total: each plate element of an output may be off by a constant
            expected = normalize(expected, out, plates)
            log_v, lin_v = normalize(log_v, out, plates), normalize(lin_v.log(), out, plates)
        else:
            lin_v = lin_v.log()
        assert torch.allclose(log_v, expected, atol=1e-9)
        assert torch.allclose(lin_v, expected, atol=1e-9)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("equation,plates", [("ab,bc->", ""), ("a,abi,bcij->", "ij")])
def test_total_on_every_backend(backend, equation, plates):
    xs = make_operands(equation, seed=3)
    brute = Unrolled(equation, xs, plates)
    if backend == "torch":
        xs = [x.exp() for x in xs]
    (value,) = einsum(equation, *xs, plates=plates, backend=backend)
    (naive,) = naive_ubersum(equation, *xs, plates=plates, backend=backend)
    if backend == "torch":
        value, naive = value.log(), naive.log()
    expected = brute.log_max() if backend.endswith("map") else float(brute.log_total())
    assert float(value) == pytest.approx(expected, abs=1e-9)
    assert float(naive) == pytest.approx(expected, abs=1e-9)


def test_einsum_output_keeping_a_global_dim_is_exact():
    # y {a}   z {b}: keep plate b; each element is the whole joint
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(4, generator=gen, dtype=F64)
    y = torch.randn(4, 5, 2, generator=gen, dtype=F64)
    z = torch.randn(6, 4, 3, generator=gen, dtype=F64)
    (actual,) = einsum("c,cda,ecb->b", x, y, z, plates="ab", backend=LOG, modulo_total=True)
    total = Unrolled("c,cda,ecb->", [x, y, z], "ab").log_total()
    assert torch.allclose(actual, total.expand(3))


@pytest.mark.parametrize("equation,plates", [("a,abi,bcij->", "ij"), ("ab,bci,bdi->", "i")])
def test_map_backward_is_brute_force_argmax(equation, plates):
    xs = make_operands(equation, seed=11)
    brute = Unrolled(equation, xs, plates)
    best, _ = max(brute.table, key=lambda t: t[1])
    inputs = equation.split("->")[0].split(",")
    for dims, x in zip(inputs, xs):
        x._pyro_dims = dims
        require_backward(x)
    (value,) = einsum(equation, *xs, plates=plates, backend="pyro.ops.einsum.torch_map")
    assert float(value) == pytest.approx(brute.log_max(), abs=1e-9)
    value._pyro_backward()
    for dims, x in zip(inputs, xs):
        sample = x._pyro_backward_result
        sum_dims = [d for d in dims if d not in plates]
        if not sum_dims:
            assert sample is None
            continue
        batch = sample._pyro_dims[1:]
        for row, d in zip(sample, sample._pyro_sample_dims):
            # every element of the operand's plates gets the argmax of its own copy
            for at in brute.elements(sorted(set(plates).intersection(dims))):
                where = dict(at)
                idx = tuple(where[p] if p in where else 0 for p in batch)
                assert int(row[idx]) == best[brute.copy_of(d, at)]


@pytest.mark.parametrize("equation,plates", [("a,abi->", "i"), ("a,abi,bcij->", "ij")])
def test_marginal_backward_is_brute_force_marginal(equation, plates):
    xs = make_operands(equation, seed=5)
    brute = Unrolled(equation, xs, plates)
    inputs = equation.split("->")[0].split(",")
    for dims, x in zip(inputs, xs):
        x._pyro_dims = dims
        require_backward(x)
    (value,) = einsum(equation, *xs, plates=plates, backend="pyro.ops.einsum.torch_marginal")
    assert float(value) == pytest.approx(float(brute.log_total()), abs=1e-9)
    value._pyro_backward()
    for dims, x in zip(inputs, xs):
        # log-sum of the joint over the values agreeing with each entry of the operand
        expected = brute.output(dims)
        assert torch.allclose(x._pyro_backward_result, expected, atol=1e-9)


def test_sample_backward_matches_posterior():
    # a global, b local to plate i: sample (a, b_0, b_1) jointly, compare with the posterior
    equation, plates = "a,abi->", "i"
    xs = make_operands(equation, seed=2)
    brute = Unrolled(equation, xs, plates)
    keys = [tuple(v[c] for c in brute.copies) for v, _ in brute.table]
    logp = torch.tensor([lp for _, lp in brute.table], dtype=F64)
    probs = (logp - logp.logsumexp(0)).exp()
    counts = dict.fromkeys(keys, 0)
    torch.manual_seed(0)
    n = 3000
    for _ in range(n):
        ops = []
        for dims, x in zip(["a", "abi"], xs):
            y = x.clone()
            y._pyro_dims = dims
            require_backward(y)
            ops.append(y)
        (value,) = einsum(equation, *ops, plates=plates, backend="pyro.ops.einsum.torch_sample")
        value._pyro_backward()
        a = int(ops[0]._pyro_backward_result[0])
        sample = ops[1]._pyro_backward_result
        rows = dict(zip(sample._pyro_sample_dims, sample))
        assert int(rows["a"][0]) == a  # the local operand sees the same global draw
        b = [int(rows["b"][i]) for i in range(2)]
        value_of = {("a", ()): a, ("b", (("i", 0),)): b[0], ("b", (("i", 1),)): b[1]}
        counts[tuple(value_of[c] for c in brute.copies)] += 1
    observed = [counts[k] for k in keys]
    expected = [float(p) * n for p in probs]
    assert scipy.stats.chisquare(observed, expected).pvalue > 1e-3


def test_ubersum_is_deprecated_log_einsum_and_batch_dims_is_plates():
    xs = make_operands("a,abi->a", seed=1)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        (old,) = ubersum("a,abi->a", *xs, batch_dims="i", modulo_total=True)
    assert {w.category for w in record} == {DeprecationWarning}
    (new,) = einsum("a,abi->a", *xs, plates="i", backend=LOG, modulo_total=True)
    assert torch.allclose(old, new)


def test_errors_name_the_problem():
    x = torch.zeros(2, 3)
    with pytest.raises(ValueError, match="nonsensical.*without its plate"):
        einsum("ai->a", x, plates="i", modulo_total=True)
    with pytest.raises(ValueError, match="nonsensical"):
        naive_ubersum("ai->a", x, plates="i")
    with pytest.raises(ValueError, match="Dimension size mismatch at dim 'b'"):
        naive_ubersum("ab,bc->", torch.zeros(2, 3), torch.zeros(4, 5))
    with pytest.raises(NotImplementedError, match="modulo_total"):
        einsum("ai->i", x, plates="i")
    with pytest.raises(NotImplementedError, match="backends"):
        naive_ubersum("a->", torch.zeros(2), backend="numpy")
    with pytest.raises(IntractableError, match="tree-structured"):
        einsum("ac,bd,abcd->", torch.zeros(2, 4), torch.zeros(3, 5), torch.zeros(2, 3, 4, 5),
               plates="ab", modulo_total=True)  # fmt: skip
    # the unrolled reference has no such limit
    (v,) = naive_ubersum(
        "ac,bd,abcd->", torch.zeros(2, 4), torch.zeros(3, 5), torch.zeros(2, 3, 4, 5), plates="ab"
    )
    assert float(v) == pytest.approx(2 * math.log(4) + 3 * math.log(5))


def test_einsum_does_not_modify_operands():
    x = torch.randn(2, 3)
    einsum("ai->", x, plates="i")
    assert not hasattr(x, "_pyro_dims")


# ----------------------------------------------------------------------------- tensor trees
def packed(tensor, dims):
    return pack(tensor, {i - len(dims): d for i, d in enumerate(dims)})


def tree_example(seed):
    gen = torch.Generator().manual_seed(seed)
    size = dict(a=2, b=3, c=2, i=2, j=3)
    shape = {"a": ["a"], "abi": ["abi"], "bcij": ["bcij"]}
    tensors = {
        k: packed(torch.randn([size[d] for d in v[0]], generator=gen, dtype=F64), k)
        for k, v in shape.items()
    }
    tree = OrderedDict(
        [
            (frozenset(), [tensors["a"]]),
            (frozenset("i"), [tensors["abi"]]),
            (frozenset("ij"), [tensors["bcij"]]),
        ]
    )
    return tree, [tensors[k] for k in ("a", "abi", "bcij")], size


def test_contract_to_tensor_matches_brute_force_and_leaves_input_alone():
    tree, xs, size = tree_example(0)
    before = {k: list(v) for k, v in tree.items()}
    brute = Unrolled("a,abi,bcij->", xs, "ij")
    ring = LogRing(dim_to_size=size)
    total = contract_to_tensor(tree, set("abc"), ring=ring)
    assert total._pyro_dims == ""
    assert float(total) == pytest.approx(float(brute.log_total()), abs=1e-9)
    kept = contract_to_tensor(tree, set("abc"), frozenset("i"), {"b"}, ring=ring)
    assert set(kept._pyro_dims) == set("bi")
    order = kept._pyro_dims
    assert torch.allclose(normalize(kept, order, "ij"), normalize(brute.output(order), order, "ij"))
    assert {k: list(v) for k, v in tree.items()} == before
    with pytest.raises(ValueError, match="nonsensical"):
        contract_to_tensor(tree, set("abc"), frozenset(), {"c"}, ring=ring)
    with pytest.raises(ValueError, match="not sum dims"):
        contract_to_tensor(tree, set("ab"), frozenset(), {"c"}, ring=ring)


def test_contract_tensor_tree_contracts_each_component():
    tree, xs, size = tree_example(1)
    gen = torch.Generator().manual_seed(9)
    lonely = packed(torch.randn(2, 2, generator=gen, dtype=F64), "di")  # its own component
    tree[frozenset("i")] = tree[frozenset("i")] + [lonely]
    out = contract_tensor_tree(tree, set("abcd"), ring=LogRing(dim_to_size=size))
    assert sorted(len(o) for o in out) == [0, 1]
    (root,) = out[frozenset()]
    assert float(root) == pytest.approx(
        float(Unrolled("a,abi,bcij->", xs, "ij").log_total()), abs=1e-9
    )
    (local,) = out[frozenset("i")]  # d is summed per element of i, the plate stays
    assert local._pyro_dims == "i"
    assert torch.allclose(local, lonely.logsumexp(0))


def test_partition_terms_groups_by_shared_sum_dims():
    size = dict(a=2, b=3, c=4)
    ts = [packed(torch.zeros([size[d] for d in dims]), dims) for dims in ["a", "ab", "bc", "c"]]
    groups = partition_terms(LogRing(), ts, set("ac"))
    assert [[t._pyro_dims for t in g] for g, _ in groups] == [["a", "ab"], ["bc", "c"]]
    assert [sorted(d) for _, d in groups] == [["a"], ["c"]]
    assert len(partition_terms(LogRing(), ts, set())) == 4


@pytest.mark.parametrize("backend", sorted(BACKEND_TO_RING))
def test_backend_names_map_to_rings(backend):
    ring = BACKEND_TO_RING[backend]
    assert issubclass(ring, LinearRing if backend == "torch" else LogRing)
    if backend.startswith("pyro."):
        assert BACKEND_TO_RING["ember." + backend[len("pyro.") :]] is ring


def test_marginal_ring_product_backward_broadcasts_over_the_plate():
    # x[a, i] with a local to i: the marginal of every entry is the entry times
    # the totals of the other elements
    gen = torch.Generator().manual_seed(4)
    x = packed(torch.randn(2, 3, generator=gen, dtype=F64), "ai")
    require_backward(x)
    ring = MarginalRing()
    z = ring.product(ring.sumproduct([x], {"a"}), frozenset("i"))
    z._pyro_backward()
    per_element = x.logsumexp(0)
    expected = x + per_element.sum() - per_element
    assert torch.allclose(x._pyro_backward_result, expected)
