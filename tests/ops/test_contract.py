import itertools
import math

import pytest
import torch

from ember.ops import (
    IntractableError,
    LogFactor,
    contract_to_scalar,
    contract_tree,
    marginal,
    total,
)
from ember.ops.contract import LAST_CACHE_SIZE, einsum, naive_ubersum, ubersum

F = frozenset


def brute_force_log_z(factors, var_ordinals, sizes, fixed=None):
    """log sum over every joint assignment of every copy of every variable, by loops."""
    fixed = fixed or {}
    copies = []
    for v, ordinal in sorted(var_ordinals.items()):
        plates = sorted(ordinal)
        for idx in itertools.product(*[range(sizes[p]) for p in plates]):
            copies.append((v, tuple(zip(plates, idx))))
    free = [c for c in copies if c[0] not in fixed]
    terms = []
    for values in itertools.product(*[range(sizes[v]) for v, _ in free]):
        assign = dict(zip(free, values))
        logp = 0.0
        for f in factors:
            plates = sorted(f.ordinal)
            for idx in itertools.product(*[range(sizes[p]) for p in plates]):
                where = dict(zip(plates, idx))
                index = []
                for d in f.dims:
                    if d in f.ordinal:
                        index.append(where[d])
                    else:
                        key = (d, tuple((p, where[p]) for p in sorted(var_ordinals[d])))
                        index.append(fixed[d] if d in fixed else assign[key])
                logp += float(f.tensor[tuple(index)]) * float(f.scale)
        terms.append(logp)
    m = max(terms)
    return m + math.log(sum(math.exp(t - m) for t in terms))


def make(name, dims, ordinal, sizes, scale=1.0):
    shape = [sizes[d] for d in dims]
    return LogFactor(torch.randn(shape, dtype=torch.float64), tuple(dims), F(ordinal), name, scale)


def nested_model():
    sizes = {"a": 2, "b": 3, "c": 2, "p": 2, "q": 2}
    var_ordinals = {"a": F(), "b": F({"p"}), "c": F({"p", "q"})}
    factors = [
        make("a", ["a"], [], sizes),
        make("b", ["a", "b", "p"], ["p"], sizes),
        make("c", ["p", "b", "c", "q"], ["p", "q"], sizes),
        make("x", ["c", "q", "p"], ["p", "q"], sizes),
        make("noise", ["p"], ["p"], sizes),
    ]
    return factors, var_ordinals, sizes


def test_nested_plates_against_brute_force():
    torch.manual_seed(0)
    factors, var_ordinals, sizes = nested_model()
    expected = brute_force_log_z(factors, var_ordinals, sizes)
    assert contract_to_scalar(factors, var_ordinals).item() == pytest.approx(expected, abs=1e-9)


def test_sibling_plates_against_brute_force():
    torch.manual_seed(1)
    sizes = {"a": 3, "b": 2, "d": 2, "p": 2, "r": 3}
    var_ordinals = {"a": F(), "b": F({"p"}), "d": F({"r"})}
    factors = [
        make("a", ["a"], [], sizes),
        make("b", ["a", "b", "p"], ["p"], sizes),
        make("d", ["a", "r", "d"], ["r"], sizes),
        make("pr", ["a", "p", "r"], ["p", "r"], sizes),
        make("lonely", ["r"], ["r"], sizes),
    ]
    expected = brute_force_log_z(factors, var_ordinals, sizes)
    assert contract_to_scalar(factors, var_ordinals).item() == pytest.approx(expected, abs=1e-9)


def test_markov_chain_in_a_plate_against_brute_force():
    torch.manual_seed(2)
    sizes = {"x0": 3, "x1": 3, "x2": 3, "x3": 3, "s": 2}
    var_ordinals = {f"x{t}": F({"s"}) for t in range(4)}
    factors = [make("x0", ["s", "x0"], ["s"], sizes)]
    for t in range(1, 4):
        factors.append(make(f"x{t}", [f"x{t - 1}", f"x{t}"], ["s"], sizes))
        factors.append(make(f"y{t}", [f"x{t}", "s"], ["s"], sizes))
    expected = brute_force_log_z(factors, var_ordinals, sizes)
    assert contract_to_scalar(factors, var_ordinals).item() == pytest.approx(expected, abs=1e-9)


def test_kept_variables_give_the_conditional_log_z():
    torch.manual_seed(3)
    factors, var_ordinals, sizes = nested_model()
    out = contract_tree(factors, var_ordinals, sum_vars={"b", "c"})
    for a in range(sizes["a"]):
        got = 0.0
        for f in out:
            t = f.tensor
            if "a" in f.dims:
                t = t.select(f.dims.index("a"), a)
            got += float(t.sum()) * float(f.scale)
        expected = brute_force_log_z(factors, var_ordinals, sizes, fixed={"a": a})
        assert got == pytest.approx(expected, abs=1e-9)


def test_marginal_against_brute_force():
    torch.manual_seed(4)
    sizes = {"a": 2, "b": 3, "p": 2}
    var_ordinals = {"a": F(), "b": F({"p"})}
    factors = [make("a", ["a"], [], sizes), make("b", ["a", "b", "p"], ["p"], sizes)]
    m = marginal(factors, var_ordinals, ["a"], F())
    log_z = brute_force_log_z(factors, var_ordinals, sizes)
    for a in range(2):
        expected = brute_force_log_z(factors, var_ordinals, sizes, fixed={"a": a}) - log_z
        assert m.tensor[a].item() == pytest.approx(expected, abs=1e-9)


def test_marginal_of_plate_local_variables_of_a_normalized_model():
    torch.manual_seed(7)
    var_ordinals = {"a": F(), "b": F({"p"})}
    qa = torch.randn(2, dtype=torch.float64).log_softmax(0)
    qb = torch.randn(2, 3, 2, dtype=torch.float64).log_softmax(1)  # q(b_i | a), dims a, b, p
    factors = [LogFactor(qa, ("a",), F(), "a"), LogFactor(qb, ("a", "b", "p"), F({"p"}), "b")]
    m = marginal(factors, var_ordinals, ["a", "b"], F({"p"}))
    assert m.dims == ("p", "a", "b")
    for i, a, b in itertools.product(range(2), range(2), range(3)):
        # brute force: sum the joint over the other element's b
        joint = 0.0
        for other in range(3):
            bs = [b, other] if i == 0 else [other, b]
            joint += math.exp(qa[a] + qb[a, bs[0], 0] + qb[a, bs[1], 1])
        assert m.tensor[i, a, b].exp().item() == pytest.approx(joint, abs=1e-12)


def test_common_scale_multiplies_the_component():
    torch.manual_seed(5)
    sizes = {"z": 3, "p": 4}
    var_ordinals = {"z": F({"p"})}
    factors = [
        make("z", ["z", "p"], ["p"], sizes, scale=2.5),
        make("x", ["p", "z"], ["p"], sizes, scale=2.5),
        make("other", ["p"], ["p"], sizes, scale=0.5),
    ]
    unscaled = [f._replace(scale=1.0) for f in factors[:2]]
    expected = 2.5 * brute_force_log_z(unscaled, var_ordinals, sizes)
    expected += 0.5 * factors[2].tensor.sum().item()
    assert contract_to_scalar(factors, var_ordinals).item() == pytest.approx(expected, abs=1e-9)


def test_mixed_scales_in_a_component_are_rejected():
    sizes = {"z": 3, "p": 4}
    factors = [make("z", ["z"], [], sizes, scale=2.0), make("x", ["z", "p"], ["p"], sizes)]
    with pytest.raises(ValueError, match="'z' has scale 2.0 and factor 'x'"):
        contract_to_scalar(factors, {"z": F()})


def test_outside_plate_dependence_names_site_and_plate():
    sizes = {"x": 2, "y": 2, "p": 3}
    factors = [make("x", ["p", "x"], ["p"], sizes), make("y", ["x", "y"], [], sizes)]
    with pytest.raises(IntractableError, match=r"site 'y'.*enumerated site 'x'.*plate \{'p'\}"):
        contract_to_scalar(factors, {"x": F({"p"}), "y": F()})


def test_coupled_sibling_plates_name_both_sites():
    sizes = {"a": 2, "b": 2, "p": 2, "q": 2}
    factors = [
        make("a", ["p", "a"], ["p"], sizes),
        make("b", ["q", "b"], ["q"], sizes),
        make("ab", ["a", "b", "p", "q"], ["p", "q"], sizes),
    ]
    with pytest.raises(IntractableError, match=r"enumerated site '[ab]'.*site '[ab]'.*plate"):
        contract_to_scalar(factors, {"a": F({"p"}), "b": F({"q"})})


def test_kept_plate_variable_blocks_a_global_sum():
    sizes = {"g": 2, "y": 2, "p": 3}
    factors = [make("y", ["y"], [], sizes), make("x", ["p", "g", "y"], ["p"], sizes)]
    with pytest.raises(IntractableError, match=r"'y'.*'g'.*plate \{'p'\}"):
        contract_tree(factors, {"g": F({"p"}), "y": F()}, sum_vars={"y"})


def test_bad_dims_are_reported():
    with pytest.raises(ValueError, match="neither one of its plates"):
        contract_tree([LogFactor(torch.zeros(2), ("w",), F(), "site")], {})
    with pytest.raises(ValueError, match="one name per tensor dim"):
        contract_tree([LogFactor(torch.zeros(2, 2), ("w",), F(), "site")], {"w": F()})
    with pytest.raises(ValueError, match="at least one"):
        total([])


def test_gradient_matches_autograd_of_brute_force_expression():
    torch.manual_seed(6)
    prior = torch.randn(3, dtype=torch.float64, requires_grad=True)
    lik = torch.randn(3, 5, dtype=torch.float64, requires_grad=True)
    factors = [LogFactor(prior, ("z",), F(), "z"), LogFactor(lik, ("z", "p"), F({"p"}), "x")]
    # global z: log sum_z exp(prior_z + sum_i lik_zi)
    contract_to_scalar(factors, {"z": F()}).backward()
    p2, l2 = prior.detach().clone().requires_grad_(), lik.detach().clone().requires_grad_()
    torch.logsumexp(p2 + l2.sum(1), 0).backward()
    assert torch.allclose(prior.grad, p2.grad) and torch.allclose(lik.grad, l2.grad)


def test_ancestral_marginal_against_brute_force():
    from ember.ops import ancestral_marginal

    torch.manual_seed(8)
    # a (global) -> b_i (plate p) -> c_i (plate p); d (global, unrelated); e_i child of c_i
    qa = torch.randn(2, dtype=torch.float64).log_softmax(0)
    qb = torch.randn(3, 2, 3, dtype=torch.float64).log_softmax(-1)  # dims p, a, b
    qc = torch.randn(3, 3, 2, dtype=torch.float64).log_softmax(-1)  # dims p, b, c
    qd = torch.randn(4, dtype=torch.float64).log_softmax(0)
    qe = torch.randn(3, 2, 2, dtype=torch.float64).log_softmax(-1)  # dims p, c, e
    conds = {
        "a": LogFactor(qa, ("a",), F(), "a"),
        "b": LogFactor(qb, ("p", "a", "b"), F({"p"}), "b"),
        "c": LogFactor(qc, ("p", "b", "c"), F({"p"}), "c"),
        "d": LogFactor(qd, ("d",), F(), "d"),
        "e": LogFactor(qe, ("p", "c", "e"), F({"p"}), "e"),
    }
    m = ancestral_marginal(conds, ["c", "a"], F({"p"}))
    assert set(m.dims) == {"p", "a", "c"}
    got = m.tensor.permute([m.dims.index(d) for d in ("p", "a", "c")]).exp()
    for i, a, c in itertools.product(range(3), range(2), range(2)):
        expected = sum(
            math.exp(qa[a] + qb[i, a, b] + qc[i, b, c]) for b in range(3)
        )  # d and e sum to one
        assert got[i, a, c].item() == pytest.approx(expected, abs=1e-12)
    with pytest.raises(IntractableError, match="inside plate"):
        ancestral_marginal(conds, ["b"], F())


def test_cached_plan_is_reused_with_new_values():
    from ember.ops import contract as contract_module

    sizes = {"a": 2, "b": 3, "p": 4}
    var_ordinals = {"a": F(), "b": F({"p"})}

    def factors(seed):
        torch.manual_seed(seed)
        return [
            make("a", ["a"], [], sizes),
            make("b", ["p", "b", "a"], ["p"], sizes),  # the largest factor sets the layout
            make("x", ["b", "p"], ["p"], sizes),  # needs a permutation
            make("y", ["p"], ["p"], sizes),
        ]

    first = factors(0)
    contract_to_scalar(first, var_ordinals)
    n_plans = len(contract_module._PLANS)
    for seed in (1, 2):
        fs = factors(seed)
        expected = brute_force_log_z(fs, var_ordinals, sizes)
        assert contract_to_scalar(fs, var_ordinals).item() == pytest.approx(expected, abs=1e-9)
    assert len(contract_module._PLANS) == n_plans  # same structure: no new plan


def test_plans_differ_by_shape_and_kept_variables():
    sizes = {"z": 3, "p": 5}
    var_ordinals = {"z": F({"p"})}
    torch.manual_seed(3)
    fs = [make("z", ["z", "p"], ["p"], sizes), make("x", ["p", "z"], ["p"], sizes)]
    summed = contract_tree(fs, var_ordinals)
    kept = contract_tree(fs, var_ordinals, sum_vars=[])
    assert [f.dims for f in summed] == [("p",)]
    expected = torch.logsumexp(fs[0].tensor + fs[1].tensor.T, 0)
    assert torch.allclose(summed[0].tensor, expected)
    assert sorted(set(kept[0].dims)) == ["p", "z"]
    sizes2 = {"z": 3, "p": 7}
    fs2 = [make("z", ["z", "p"], ["p"], sizes2), make("x", ["p", "z"], ["p"], sizes2)]
    out2 = contract_tree(fs2, var_ordinals)
    assert torch.allclose(out2[0].tensor, torch.logsumexp(fs2[0].tensor + fs2[1].tensor.T, 0))


# ----------------------------------------------------------------------------- plated einsum
LOG = "pyro.ops.einsum.torch_log"
PLATED = [
    ("ab,bc->", "", [(2, 3), (3, 4)]),
    ("ai->", "i", [(2, 3)]),
    ("ab,ai,bi->", "i", [(2, 3), (2, 4), (3, 4)]),
    ("a,ai,bi->", "i", [(2,), (2, 3), (4, 3)]),
    ("ai,bi->bi", "i", [(2, 3), (4, 3)]),
    ("a,ai->a", "i", [(2,), (2, 3)]),
    ("ij,aij->", "ij", [(2, 3), (2, 2, 3)]),
    ("a,ai,aij->ai", "ij", [(2,), (2, 3), (2, 3, 2)]),
    ("a,ab,bi->a,b", "i", [(2,), (2, 3), (3, 2)]),
    ("ai,abi,bci->i", "i", [(2, 3), (2, 2, 3), (2, 2, 3)]),
]


@pytest.mark.parametrize("equation,plates,shapes", PLATED)
def test_plated_einsum_matches_brute_force(equation, plates, shapes):
    torch.manual_seed(len(equation))
    logs = [torch.randn(s, dtype=torch.float64) for s in shapes]
    expected = naive_ubersum(equation, *logs, plates=plates)
    actual = einsum(equation, *logs, plates=plates, backend=LOG, modulo_total=True)
    values = einsum(equation, *[x.exp() for x in logs], plates=plates, modulo_total=True)
    assert len(actual) == len(expected) == len(values)
    outputs = equation.split("->")[1].split(",")
    for out, a, v, e in zip(outputs, actual, values, expected):
        assert a.shape == e.shape
        if out:
            # modulo_total: each element of the output's plates may be off by a constant factor
            a, v, e = (normalize_per_plate_element(t, out, plates) for t in (a, v.log(), e))
        else:
            v = v.log()
        assert torch.allclose(a, e)
        assert torch.allclose(v, e)


def normalize_per_plate_element(log_values, dims, plates):
    """Log-values normalized over their non-plate dims, separately for each plate element."""
    axes = [i for i, d in enumerate(dims) if d not in plates]
    if not axes:
        return log_values - log_values  # only plate dims: nothing beyond the constant
    return log_values - torch.logsumexp(log_values, dim=axes, keepdim=True)


def test_plated_einsum_by_hand():
    x = torch.rand(2, 5, dtype=torch.float64)  # sum over a, product over the plate i
    (p,) = einsum("ai->", x, plates="i")
    assert p.item() == pytest.approx(x.sum(0).prod().item(), rel=1e-12)
    w, y = torch.rand(2, dtype=torch.float64), torch.rand(2, 3, dtype=torch.float64)
    (q,) = einsum("a,ai->", w, y, plates="i")  # a global, shared by every element
    assert q.item() == pytest.approx((w * y.prod(1)).sum().item(), rel=1e-12)
    (r,) = einsum("ab,bc->ac", w[:, None] * y[:, :2].T[:1], y, modulo_total=True)
    assert torch.allclose(r, (w[:, None] * y[:, :2].T[:1]) @ y)


def test_linear_einsum_allows_negative_values():
    torch.manual_seed(7)
    x, y = torch.randn(3, 4, dtype=torch.float64), torch.randn(3, 4, dtype=torch.float64)
    (z,) = einsum("ai,ai->", x, y, plates="i")
    assert z.item() == pytest.approx((x * y).sum(0).prod().item(), rel=1e-10)


def test_plated_einsum_errors():
    x = torch.zeros(2, 3)
    with pytest.raises(ValueError, match="without its plate"):
        einsum("ai->a", x, plates="i", modulo_total=True)
    with pytest.raises(NotImplementedError, match="modulo_total"):
        einsum("ai->i", x, plates="i")
    with pytest.raises(ValueError, match="size mismatch"):
        einsum("ab,ab->", torch.zeros(2, 3), torch.zeros(2, 4))
    with pytest.raises(NotImplementedError, match="backend"):
        einsum("a->", torch.zeros(2), backend="nonsense")
    with pytest.raises(NotImplementedError, match="tree-structured"):
        # a and b each in their own plate, coupled by a factor in both
        einsum(
            "ai,bj,abij->",
            torch.rand(2, 3),
            torch.rand(2, 4),
            torch.rand(2, 2, 3, 4),
            plates="ij",
        )


def test_ubersum_is_log_space_einsum_and_deprecated():
    x = torch.randn(2, 3)
    with pytest.warns(DeprecationWarning) as record:
        (a,) = ubersum("ai->", x, batch_dims="i")
    messages = [str(w.message) for w in record]
    assert any("ubersum" in m for m in messages) and any("batch_dims" in m for m in messages)
    (b,) = einsum("ai->", x, plates="i", backend=LOG)
    assert torch.allclose(a, b)


def test_last_cache_size_counts_the_last_contraction_steps():
    prior = LogFactor(torch.tensor([0.3, 0.7]).log(), ("z",), F(), "z")
    lik = LogFactor(torch.randn(2, 4), ("z", "data"), F({"data"}), "x")
    contract_tree([prior, lik], {"z": F()})
    counts = LAST_CACHE_SIZE[0]
    # the plate is multiplied out, then z is summed: one step of each kind
    assert counts.get("plate_sum") == 1
    assert sum(counts.values()) == 2
