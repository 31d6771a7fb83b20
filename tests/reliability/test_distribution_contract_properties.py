"""Property-based checks of the distribution contract, with validation on.

For parameters, shapes, values and plate layouts drawn by hypothesis (valid and invalid),
every family either gives the right ``log_prob`` (compared with scipy.stats) or refuses
the input with a clear ``ValueError`` / ``TypeError``. It never returns NaN, and never
fails with an internal error type (``AttributeError``, ``IndexError``, a ``RuntimeError``
from a reshape or a broadcast).
"""

import math

import numpy as np
import pytest
import scipy.special as sp
import scipy.stats as ss
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ember
import ember.distributions as dist
from ember import poutine

CLEAR_ERRORS = (ValueError, TypeError)
SETTINGS = settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
# every pair is broadcastable except (2,) against (3,) and (2, 3)
SHAPES = [(), (1,), (3,), (2,), (2, 1), (2, 3)]


# --- the parameter kinds ---------------------------------------------------------------
# valid: strictly inside the domain; invalid: outside it (must be refused);
# edge: at an infinite or closed end of the domain (refused, or a result that is not NaN)

KINDS = {
    "real": dict(valid=st.floats(-4.0, 4.0), invalid=[math.nan], edge=[math.inf, -math.inf]),
    # a location: infinite ones are accepted, as torch does (checking for them would cost
    # a reduction per parameter), and are outside this contract: scored at their own
    # infinite draws they give NaN in torch and Pyro alike
    "loc": dict(valid=st.floats(-4.0, 4.0), invalid=[math.nan], edge=[]),
    "pos": dict(
        valid=st.floats(0.3, 5.0), invalid=[math.nan, 0.0, -1.0, -0.5, -math.inf], edge=[math.inf]
    ),
    "nonneg": dict(
        valid=st.floats(0.3, 5.0), invalid=[math.nan, -1.0, -math.inf], edge=[0.0, math.inf]
    ),
    "prob": dict(valid=st.floats(0.05, 0.95), invalid=[math.nan, -0.1, 1.5], edge=[0.0, 1.0]),
    "count": dict(
        valid=st.integers(0, 8).map(float), invalid=[math.nan, -1.0, 2.5, math.inf], edge=[]
    ),
}


class Family:
    def __init__(self, name, ctor, params, logpdf, bad_values):
        self.name = name
        self.ctor = ctor
        self.params = params  # [(name, kind)]
        self.logpdf = logpdf  # (numpy params..., x) -> numpy log-density
        self.bad_values = bad_values  # out-of-support numbers

    def __repr__(self):
        return self.name


def _binom(n, p, x):
    return ss.binom.logpmf(x, n, p)


FAMILIES = [
    Family("Normal", dist.Normal, [("loc", "loc"), ("scale", "pos")],
           lambda m, s, x: ss.norm.logpdf(x, m, s), [math.nan]),
    Family("LogNormal", dist.LogNormal, [("loc", "loc"), ("scale", "pos")],
           lambda m, s, x: ss.lognorm.logpdf(x, s, scale=np.exp(m)), [math.nan, -1.0, 0.0]),
    Family("Laplace", dist.Laplace, [("loc", "loc"), ("scale", "pos")],
           lambda m, s, x: ss.laplace.logpdf(x, m, s), [math.nan]),
    Family("Cauchy", dist.Cauchy, [("loc", "loc"), ("scale", "pos")],
           lambda m, s, x: ss.cauchy.logpdf(x, m, s), [math.nan]),
    Family("Gumbel", dist.Gumbel, [("loc", "loc"), ("scale", "pos")],
           lambda m, s, x: ss.gumbel_r.logpdf(x, m, s), [math.nan]),
    Family("StudentT", dist.StudentT, [("df", "pos"), ("loc", "loc"), ("scale", "pos")],
           lambda d, m, s, x: ss.t.logpdf(x, d, m, s), [math.nan]),
    Family("Gamma", dist.Gamma, [("concentration", "pos"), ("rate", "pos")],
           lambda a, b, x: ss.gamma.logpdf(x, a, scale=1 / b), [math.nan, -1.0]),
    Family("InverseGamma", dist.InverseGamma, [("concentration", "pos"), ("rate", "pos")],
           lambda a, b, x: ss.invgamma.logpdf(x, a, scale=b), [math.nan, -1.0, 0.0]),
    Family("Beta", dist.Beta, [("concentration1", "pos"), ("concentration0", "pos")],
           lambda a, b, x: ss.beta.logpdf(x, a, b), [math.nan, -0.5, 1.5]),
    Family("Exponential", dist.Exponential, [("rate", "pos")],
           lambda r, x: ss.expon.logpdf(x, scale=1 / r), [math.nan, -1.0]),
    Family("HalfNormal", dist.HalfNormal, [("scale", "pos")],
           lambda s, x: ss.halfnorm.logpdf(x, scale=s), [math.nan, -1.0]),
    Family("HalfCauchy", dist.HalfCauchy, [("scale", "pos")],
           lambda s, x: ss.halfcauchy.logpdf(x, scale=s), [math.nan, -1.0]),
    Family("Chi2", dist.Chi2, [("df", "pos")],
           lambda d, x: ss.chi2.logpdf(x, d), [math.nan, -1.0]),
    Family("Weibull", dist.Weibull, [("scale", "pos"), ("concentration", "pos")],
           lambda s, c, x: ss.weibull_min.logpdf(x, c, scale=s), [math.nan, -1.0]),
    Family("Poisson", dist.Poisson, [("rate", "nonneg")],
           lambda r, x: ss.poisson.logpmf(x, r), [math.nan, -1.0, 0.5]),
    Family("Bernoulli", lambda probs: dist.Bernoulli(probs=probs), [("probs", "prob")],
           lambda p, x: ss.bernoulli.logpmf(x, p), [math.nan, -1.0, 0.5, 2.0]),
    Family("BernoulliLogits", lambda logits: dist.Bernoulli(logits=logits), [("logits", "real")],
           lambda lg, x: ss.bernoulli.logpmf(x, sp.expit(lg)), [math.nan, 0.5, 2.0]),
    Family("Geometric", lambda probs: dist.Geometric(probs=probs), [("probs", "prob")],
           lambda p, x: ss.geom.logpmf(x + 1, p), [math.nan, -1.0, 0.5]),
    Family("Binomial", lambda total_count, probs: dist.Binomial(total_count, probs=probs),
           [("total_count", "count"), ("probs", "prob")], _binom, [math.nan, -1.0, 0.5, 99.0]),
]  # fmt: skip


def _float_tensor(entries, shape):
    return torch.tensor(entries, dtype=torch.float64).reshape(shape)


@st.composite
def parameters(draw, family):
    """``(kwargs, status)``: status is "valid", "invalid" or "edge"."""
    kwargs, statuses = {}, []
    for name, kind in family.params:
        spec = KINDS[kind]
        shape = draw(st.sampled_from(SHAPES))
        n = math.prod(shape)
        entries = [draw(spec["valid"]) for _ in range(n)]
        status = draw(st.sampled_from(["valid"] * 6 + ["invalid", "edge", "type"]))
        if status == "edge" and not spec["edge"]:
            status = "valid"
        if status in ("invalid", "edge") and n:
            pool = spec["invalid"] if status == "invalid" else spec["edge"]
            entries[draw(st.integers(0, n - 1))] = draw(st.sampled_from(pool))
        elif status in ("invalid", "edge"):
            status = "valid"  # (an empty shape has no entry to spoil)
        if status == "type":
            value = draw(st.sampled_from(["a", None, [1.0, 2.0], object()]))
            status = "invalid"
        elif shape == () and draw(st.booleans()):
            value = entries[0]  # a Python number
        else:
            value = _float_tensor(entries, shape)
        kwargs[name] = value
        statuses.append(status)
    for status in ("invalid", "edge"):
        if status in statuses:
            return kwargs, status
    return kwargs, "valid"


def _broadcastable(*shapes):
    try:
        torch.broadcast_shapes(*shapes)
        return True
    except RuntimeError:
        return False


def _shape_of(x):
    return tuple(x.shape) if isinstance(x, torch.Tensor) else ()


def _numpy(x):
    return x.detach().double().numpy() if isinstance(x, torch.Tensor) else np.float64(x)


@pytest.mark.parametrize("family", FAMILIES, ids=repr)
@SETTINGS
@given(data=st.data())
def test_log_prob_is_right_or_the_input_is_refused(family, data):
    kwargs, status = data.draw(parameters(family), label="params")
    shapes_ok = all(isinstance(v, (torch.Tensor, float)) for v in kwargs.values()) and (
        _broadcastable(*[_shape_of(v) for v in kwargs.values()])
    )
    try:
        d = family.ctor(**kwargs)
    except CLEAR_ERRORS:
        assert status != "valid" or not shapes_ok, f"{family}: valid parameters refused"
        return
    assert status != "invalid", f"{family}: invalid parameters {kwargs} accepted"
    assert shapes_ok, f"{family}: parameters of shapes that do not broadcast accepted"

    # a value: a fresh copy of a draw (so nothing is skipped as "its own sample"), maybe
    # with one entry moved out of the support, maybe of a shape that does not broadcast
    sample_shape = data.draw(st.sampled_from([(), (2,), (4, 1)]), label="sample_shape")
    with torch.no_grad():
        value = d.sample(sample_shape).clone()
    spoil = data.draw(st.sampled_from(["none"] * 3 + ["support", "shape"]), label="spoil")
    if spoil == "support" and value.numel():
        bad = data.draw(st.sampled_from(family.bad_values), label="bad")
        value.view(-1)[data.draw(st.integers(0, value.numel() - 1))] = bad
    elif spoil == "shape":
        value = torch.cat([value.reshape(-1), value.reshape(-1)[:1]]).reshape(-1)
        if _broadcastable(tuple(value.shape), tuple(d.batch_shape)):
            spoil = "none"
    else:
        spoil = "none"
    try:
        log_prob = d.log_prob(value)
    except CLEAR_ERRORS:
        assert spoil != "none", f"{family}{kwargs}: in-support value {value} refused"
        return
    assert spoil == "none", f"{family}{kwargs}: bad value {value} ({spoil}) accepted"
    assert not torch.isnan(log_prob).any(), f"{family}{kwargs}: NaN log_prob at {value}"
    if status == "edge":
        return  # at the edge of the domain: no NaN is the contract, scipy may differ
    assert log_prob.shape == torch.broadcast_shapes(tuple(value.shape), tuple(d.batch_shape))
    expected = family.logpdf(*[_numpy(kwargs[n]) for n, _ in family.params], _numpy(value))
    got = log_prob.detach().double().numpy()
    expected = np.broadcast_to(expected, got.shape)
    finite = np.isfinite(expected)
    assert np.array_equal(finite, np.isfinite(got)), f"{family}{kwargs} at {value}"
    np.testing.assert_allclose(got[finite], expected[finite], rtol=2e-4, atol=2e-4)


def test_binomial_parameters_that_do_not_broadcast_are_a_value_error():
    with pytest.raises(ValueError, match=r"Binomial: parameters of shapes total_count: \(3,\)"):
        dist.Binomial(torch.ones(3), probs=torch.full((2,), 0.5))
    d = dist.Binomial(torch.tensor(5.0), probs=torch.tensor(0.3)).expand([4])
    assert type(d) is dist.Binomial and d.batch_shape == (4,)
    expected = ss.binom.logpmf(2, 5, 0.3)
    assert torch.allclose(d.log_prob(torch.tensor(2.0)).double(), torch.tensor(expected))


# --- vector families: Categorical and Dirichlet ------------------------------------------


@st.composite
def simplex_rows(draw):
    batch = draw(st.sampled_from([(), (3,), (2, 1)]))
    k = draw(st.integers(1, 4))
    n = math.prod(batch) * k
    weights = [draw(st.floats(0.05, 5.0)) for _ in range(n)]
    return torch.tensor(weights, dtype=torch.float64).reshape(batch + (k,))


@SETTINGS
@given(data=st.data())
def test_categorical_log_prob_is_right_or_refused(data):
    weights = data.draw(simplex_rows())
    spoil = data.draw(st.sampled_from(["none"] * 3 + ["negative", "nan", "zeros", "empty"]))
    if spoil == "negative":
        weights.view(-1)[0] = -1.0
    elif spoil == "nan":
        weights.view(-1)[-1] = math.nan
    elif spoil == "zeros":
        weights.zero_()
    elif spoil == "empty":
        weights = weights[..., :0]
    use_logits = data.draw(st.booleans())
    try:
        if use_logits:
            d = dist.Categorical(logits=weights.log())
        else:
            d = dist.Categorical(probs=weights / weights.sum(-1, keepdim=True))
    except CLEAR_ERRORS:
        assert spoil != "none"
        return
    assert spoil == "none" or (use_logits and spoil == "zeros"), f"accepted {weights}"
    if spoil == "zeros":  # logits all -inf: not a distribution either way
        return
    k = weights.shape[-1]
    value = torch.tensor(data.draw(st.integers(-1, k)))
    try:
        log_prob = d.log_prob(value)
    except CLEAR_ERRORS:
        assert not 0 <= int(value) < k
        return
    assert 0 <= int(value) < k
    expected = np.log((weights / weights.sum(-1, keepdim=True))[..., int(value)].numpy())
    np.testing.assert_allclose(log_prob.numpy(), expected, rtol=1e-6, atol=1e-9)


@SETTINGS
@given(data=st.data())
def test_dirichlet_log_prob_is_right_or_refused(data):
    conc = data.draw(simplex_rows())
    spoil = data.draw(st.sampled_from(["none"] * 3 + ["zero", "nan", "scalar"]))
    if spoil == "zero":
        conc.view(-1)[0] = 0.0
    elif spoil == "nan":
        conc.view(-1)[-1] = math.nan
    elif spoil == "scalar":
        conc = conc.reshape(-1)[0]
    try:
        d = dist.Dirichlet(conc)
    except CLEAR_ERRORS:
        assert spoil != "none"
        return
    assert spoil == "none", f"accepted {conc}"
    with torch.no_grad():
        value = d.sample().clone()
    off = data.draw(st.booleans())
    if off:
        value = value * 1.5
    try:
        log_prob = d.log_prob(value)
    except CLEAR_ERRORS:
        assert off
        return
    assert not off and not torch.isnan(log_prob).any()
    flat_c = conc.reshape(-1, conc.shape[-1]).numpy()
    flat_x = value.reshape(-1, conc.shape[-1]).numpy()
    if conc.shape[-1] == 1:
        expected = np.zeros(len(flat_c))  # a point mass on (1,)
    else:
        expected = [ss.dirichlet.logpdf(x, c) for x, c in zip(flat_x, flat_c)]
    np.testing.assert_allclose(log_prob.reshape(-1).numpy(), expected, rtol=1e-6, atol=1e-9)


# --- plate layouts -----------------------------------------------------------------------


@st.composite
def plate_layouts(draw):
    """Up to three plates: ``(name, size, subsample_size, dim)`` with distinct dims."""
    n = draw(st.integers(1, 3))
    explicit = draw(st.booleans())
    dims = draw(st.permutations([-1, -2, -3]))[:n] if explicit else [None] * n
    plates = []
    for i in range(n):
        size = draw(st.integers(1, 4))
        sub = draw(st.one_of(st.none(), st.integers(1, size)))
        plates.append((f"p{i}", size, sub, dims[i]))
    return plates


@SETTINGS
@given(layout=plate_layouts(), data=st.data())
def test_sites_in_plates_have_the_plate_shape_and_the_scaled_log_prob(layout, data):
    loc = data.draw(st.floats(-2.0, 2.0))
    scale = data.draw(st.floats(0.5, 2.0))
    observe = data.draw(st.booleans())
    ember.set_rng_seed(data.draw(st.integers(0, 1000)))
    with poutine.trace() as tr:
        import contextlib

        with contextlib.ExitStack() as stack:
            frames = []
            for name, size, sub, dim in layout:
                stack.enter_context(ember.plate(name, size, subsample_size=sub, dim=dim))
                frames.append(tr.trace.nodes[name]["value"] if name in tr.trace.nodes else None)
            x = ember.sample("x", dist.Normal(loc, scale))
            if observe:
                ember.sample("y", dist.Normal(x, 1.0), obs=torch.zeros_like(x))
    allocated = [f.dim for f in tr.trace.nodes["x"]["cond_indep_stack"]]
    expected_shape = [1] * max(-d for d in allocated)
    factor = 1.0
    for (name, size, sub, _), frame in zip(layout, tr.trace.nodes["x"]["cond_indep_stack"]):
        assert frame.name == name
        n = size if sub is None else sub
        expected_shape[frame.dim] = n
        factor *= size / n
    assert tuple(x.shape) == tuple(expected_shape)
    tr.trace.compute_log_prob()
    got = tr.trace.nodes["x"]["log_prob_sum"].item()
    expected = factor * ss.norm.logpdf(x.numpy(), loc, scale).sum()
    assert got == pytest.approx(expected, rel=1e-5, abs=1e-5)
    if observe:
        y_lp = tr.trace.nodes["y"]["log_prob_sum"].item()
        assert y_lp == pytest.approx(factor * ss.norm.logpdf(0.0, x.numpy(), 1.0).sum(), rel=1e-5)


@SETTINGS
@given(
    size=st.integers(1, 4),
    batch=st.integers(2, 5),
    dim=st.sampled_from([-1, -2]),
)
def test_a_batch_that_disagrees_with_its_plate_is_refused(size, batch, dim):
    if batch == size:
        batch += 1

    def model():
        with ember.plate("p", size, dim=dim):
            ember.sample("x", dist.Normal(torch.zeros((batch,) + (1,) * (-1 - dim)), 1.0))

    with pytest.raises(ValueError, match="'x'|plate 'p'|'p'"):
        poutine.trace(model).get_trace()


@SETTINGS
@given(
    size=st.one_of(
        st.integers(-5, 0), st.floats(allow_nan=True), st.booleans(), st.text(max_size=2)
    ),
)
def test_bad_plate_sizes_are_refused_with_a_clear_error(size):
    if isinstance(size, float) and size.is_integer() and size >= 1:
        size = -size - 1.0  # keep it invalid
    with pytest.raises(CLEAR_ERRORS, match="plate 'p'"):
        ember.plate("p", size)


@SETTINGS
@given(
    size=st.integers(1, 6),
    indices=st.lists(st.integers(-3, 9), min_size=1, max_size=5),
)
def test_subsample_indices_in_range_work_and_others_are_refused(size, indices):
    sub = torch.tensor(indices)
    in_range = all(0 <= i < size for i in indices)
    if not in_range:
        with pytest.raises(ValueError, match=f"plate 'p' of size {size}"):
            ember.plate("p", size, subsample=sub)
        return
    with poutine.trace() as tr, ember.plate("p", size, subsample=sub) as idx:
        x = ember.sample("x", dist.Normal(0.0, 1.0), obs=torch.zeros(len(indices)))
    assert idx is sub and x.shape == (len(indices),)
    tr.trace.compute_log_prob()
    expected = size / len(indices) * len(indices) * ss.norm.logpdf(0.0)
    assert tr.trace.nodes["x"]["log_prob_sum"].item() == pytest.approx(expected, rel=1e-6)


# --- the findings above, as explicit cases ----------------------------------------------


@pytest.mark.parametrize(
    "make",
    [
        lambda: dist.Normal(0.0, torch.tensor([1.0, math.inf])),
        lambda: dist.Gamma(math.inf, 1.0),
        lambda: dist.Exponential(torch.tensor(math.inf)),
        lambda: dist.Laplace(0.0, math.inf),
        lambda: dist.StudentT(math.inf, 0.0, 1.0),
        lambda: dist.Bernoulli(logits=math.inf),
        lambda: dist.Bernoulli(logits=-math.inf),
    ],
)
def test_infinite_parameters_are_refused(make):
    # each gave NaN draws or a NaN log_prob before
    with pytest.raises(ValueError, match="infinite value.*must be finite"):
        make()


def test_an_infinite_location_is_accepted_as_in_torch():
    d = dist.Normal(torch.tensor([0.0, math.inf]), 1.0)
    assert d.log_prob(torch.tensor(0.0))[1].item() == -math.inf
    with pytest.raises(ValueError, match="loc"):
        dist.Normal(torch.tensor([0.0, math.nan]), 1.0)


def test_minus_infinite_category_logits_still_mark_impossible_categories():
    d = dist.Categorical(logits=torch.tensor([-math.inf, 0.0, 0.0]))
    assert d.log_prob(torch.tensor(1)).item() == pytest.approx(math.log(0.5))
    assert d.log_prob(torch.tensor(0)).item() == -math.inf


def test_parameters_that_are_not_numbers_are_type_errors():
    with pytest.raises(TypeError, match="parameter scale of distribution Gumbel.*object"):
        dist.Gumbel(torch.zeros(1), object())


def test_parameter_shapes_that_do_not_broadcast_are_value_errors():
    with pytest.raises(ValueError, match=r"StudentT: parameters of shapes df: \(3,\), loc: \(2,\)"):
        dist.StudentT(torch.ones(3), torch.zeros(2), 1.0)
    with pytest.raises(ValueError, match=r"Normal\(loc, scale\).*\(3,\), \(2,\)"):
        dist.Normal(torch.zeros(3), torch.ones(2))
