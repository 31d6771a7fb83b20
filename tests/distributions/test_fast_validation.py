"""ember's fast argument validation: same decisions as torch, clearer errors, and no
re-check of a distribution's own samples.

torch's own checks (``constraint.check(value).all()`` and torch's distributions
built with ``validate_args=True``) are the oracle throughout.
"""

import math
import pickle

import pytest
import torch
from torch.distributions import constraints

import ember
import ember.distributions as dist
import ember.distributions.torch as ember_torch
from ember.distributions.util import broadcast_params
from ember.distributions.validation import (
    check_parameters,
    check_value,
    decide,
    first_violation,
    read_pending,
    single_value,
)
from ember.util import validation_enabled

tdist = torch.distributions
NAN = float("nan")
INF = float("inf")


def tensor(*values, dtype=torch.float32):
    return torch.tensor(values, dtype=dtype)


# --- one invalid parameter per class ---------------------------------------------------------
#
# (class name, args, kwargs, invalid parameter, an offending value as printed)
INVALID = [
    ("Normal", (0.0, -1.0), {}, "scale", "-1.0"),
    ("Normal", (torch.zeros(3), tensor(1.0, -2.0, 3.0)), {}, "scale", "-2.0"),
    ("Normal", (tensor(0.0, NAN), 1.0), {}, "loc", "nan"),
    ("Normal", (torch.zeros(2), tensor(1.0, NAN)), {}, "scale", "nan"),
    ("Cauchy", (0.0, tensor(0.0, 1.0)), {}, "scale", "0.0"),
    ("Laplace", (tensor(INF, NAN), 1.0), {}, "loc", "nan"),
    ("Gumbel", (0.0, tensor(-1.0)), {}, "scale", "-1.0"),
    ("Gamma", (tensor(2.0, -0.5), 1.0), {}, "concentration", "-0.5"),
    ("Gamma", (2.0, tensor(1.0, 0.0)), {}, "rate", "0.0"),
    ("Exponential", (tensor(0.0),), {}, "rate", "0.0"),
    ("Chi2", (tensor(-3.0),), {}, "df", "-3.0"),
    ("Poisson", (tensor(1.0, -1.0),), {}, "rate", "-1.0"),
    ("Beta", (-1.0, 2.0), {}, "concentration1", "-1.0"),
    ("Beta", (tensor(1.0, 2.0), tensor(2.0, 0.0)), {}, "concentration0", "0.0"),
    ("Kumaraswamy", (tensor(1.0), tensor(-2.0)), {}, "concentration0", "-2.0"),
    ("Bernoulli", (), {"probs": tensor(0.5, 1.5)}, "probs", "1.5"),
    ("Bernoulli", (), {"logits": tensor(NAN)}, "logits", "nan"),
    ("Geometric", (), {"probs": tensor(-0.1)}, "probs", "-0.1"),
    ("Binomial", (tensor(-1.0),), {"probs": tensor(0.5)}, "total_count", "-1.0"),
    ("Binomial", (tensor(2.5),), {"probs": tensor(0.5)}, "total_count", "2.5"),
    ("Binomial", (5,), {"probs": tensor(0.5, 1.2)}, "probs", "1.2"),
    ("NegativeBinomial", (tensor(3.0),), {"probs": tensor(1.0)}, "probs", "1.0"),
    ("Categorical", (), {"probs": tensor(0.5, -0.25, 0.75)}, "probs", "-0.25"),
    ("Categorical", (), {"logits": tensor(0.0, NAN)}, "logits", "nan"),
    ("OneHotCategorical", (), {"probs": tensor(-1.0, 2.0)}, "probs", "-1.0"),
    ("Multinomial", (3,), {"probs": tensor(0.5, -0.1)}, "probs", "[0.5, -0.1]"),
    ("Dirichlet", (tensor(1.0, 0.0),), {}, "concentration", "[1.0, 0.0]"),
    ("MultivariateNormal", (tensor(0.0, NAN), torch.eye(2)), {}, "loc", "[0.0, nan]"),
    (
        "MultivariateNormal",
        (torch.zeros(2),),
        {"scale_tril": torch.tensor([[1.0, 0.0], [0.5, -1.0]])},
        "scale_tril",
        "-1.0",
    ),
    (
        "LowRankMultivariateNormal",
        (torch.zeros(2), torch.ones(2, 1), tensor(1.0, -1.0)),
        {},
        "cov_diag",
        "-1.0",
    ),
    ("HalfNormal", (tensor(-1.0),), {}, "scale", "-1.0"),
    ("HalfCauchy", (tensor(0.0),), {}, "scale", "0.0"),
    ("LogNormal", (0.0, tensor(0.0)), {}, "scale", "0.0"),
    ("StudentT", (tensor(-1.0),), {}, "df", "-1.0"),
    ("FisherSnedecor", (tensor(1.0), tensor(0.0)), {}, "df2", "0.0"),
    ("Pareto", (tensor(1.0), tensor(-1.0)), {}, "alpha", "-1.0"),
    ("Weibull", (tensor(1.0), tensor(-1.0)), {}, "concentration", "-1.0"),
    ("VonMises", (tensor(0.0), tensor(-1.0)), {}, "concentration", "-1.0"),
    ("Binomial", (), {"total_count": tensor(3.0), "logits": tensor(INF, NAN)}, "logits", "nan"),
    ("LKJCholesky", (3, tensor(-1.0)), {}, "concentration", "-1.0"),
    ("Uniform", (tensor(0.0, 2.0), tensor(1.0, 1.0)), {}, "low", "2.0"),
    ("ContinuousBernoulli", (), {"probs": tensor(1.5)}, "probs", "1.5"),
    ("RelaxedBernoulli", (tensor(-1.0),), {"probs": tensor(0.5)}, "temperature", "-1.0"),
    (
        "RelaxedOneHotCategorical",
        (tensor(0.0),),
        {"probs": tensor(0.5, 0.5)},
        "temperature",
        "0.0",
    ),
    ("LogisticNormal", (torch.zeros(2), tensor(1.0, -1.0)), {}, "scale", "-1.0"),
    ("GeneralizedPareto", (0.0, tensor(-1.0), 0.5), {}, "scale", "-1.0"),
    ("Wishart", (tensor(4.0),), {"scale_tril": -torch.eye(2)}, "scale_tril", "-1.0"),
]


def _ids(cases):
    return [f"{c[0]}-{c[3]}-{i}" for i, c in enumerate(cases)]


EMBER_ONLY = {"RelaxedBernoulli", "RelaxedOneHotCategorical"}  # torch leaves temperature free


@pytest.mark.parametrize("name, args, kwargs, param, shown", INVALID, ids=_ids(INVALID))
def test_invalid_parameter_raises_like_torch_with_a_clear_message(name, args, kwargs, param, shown):
    if name not in EMBER_ONLY:
        with pytest.raises(ValueError):  # the oracle rejects it too
            getattr(tdist, name)(*args, **kwargs, validate_args=True)
    with pytest.raises(ValueError) as error:
        getattr(ember_torch, name)(*args, **kwargs)
    message = str(error.value)
    assert f"parameter {param} " in message
    assert f"distribution {name}" in message
    assert "Tensor of shape" in message or "Python number" in message
    assert shown in message, message
    assert "hint:" in message


@pytest.mark.parametrize("name, args, kwargs, param, shown", INVALID, ids=_ids(INVALID))
def test_invalid_parameter_accepted_without_validation(name, args, kwargs, param, shown):
    cls = getattr(ember_torch, name)
    with validation_enabled(False):
        d = cls(*args, **kwargs)
        assert not d._validate_args
    try:  # torch ignores validate_args=False for some inner distributions: do as it does
        getattr(tdist, name)(*args, **kwargs, validate_args=False)
    except ValueError:
        with pytest.raises(ValueError):
            cls(*args, **kwargs, validate_args=False)
    else:
        assert cls(*args, **kwargs, validate_args=False)._validate_args is False
    # an explicit validate_args=True still checks while validation is globally off
    with validation_enabled(False), pytest.raises(ValueError, match=f"parameter {param} "):
        cls(*args, **kwargs, validate_args=True)


# --- valid parameters: same objects and numbers as torch --------------------------------------

VALID = [
    ("Normal", (tensor(0.0, 1.0), 2.0), {}),
    ("Normal", (0.5, 2.0), {}),
    ("Normal", (torch.zeros(2, 1), tensor(1.0, 2.0, 3.0)), {}),
    ("Beta", (tensor(0.5, 2.0), 3.0), {}),
    ("Beta", (2.0, 3.0), {}),
    ("Gamma", (tensor(2.0, 3.0), tensor(1.0, 0.5)), {}),
    ("Bernoulli", (), {"logits": tensor(-1.0, 2.0)}),
    ("Binomial", (tensor(5.0, 7.0),), {"probs": tensor(0.2, 0.9)}),
    ("Categorical", (), {"probs": tensor(0.2, 0.2, 0.6)}),
    ("Categorical", (), {"probs": tensor(1.0, 1.0, 2.0)}),  # normalized, as torch does
    ("Dirichlet", (tensor(0.5, 1.0, 2.0),), {}),
    ("MultivariateNormal", (torch.zeros(2),), {"scale_tril": torch.eye(2) * 2}),
    ("StudentT", (tensor(3.0),), {}),
    ("Uniform", (tensor(0.0, -1.0), tensor(1.0, 1.0)), {}),
    ("Poisson", (tensor(0.0, 2.0),), {}),
    ("Weibull", (tensor(1.0), tensor(2.0)), {}),
    ("Normal", (torch.zeros(3, dtype=torch.float64), 1.0), {}),
    ("Gamma", (2.0, tensor(1.0, 3.0)), {}),
    ("Exponential", (0.5,), {}),
    ("Exponential", (tensor(0.5, 2.0),), {}),
    ("Cauchy", (tensor(0.0, 1.0), 2.0), {}),
    ("Laplace", (1.0, 2.0), {}),
    ("Poisson", (3.0,), {}),
    ("HalfNormal", (tensor(1.0, 2.0),), {}),
    ("LogNormal", (tensor(0.0, 1.0), 0.5), {}),
]


@pytest.mark.parametrize(
    "name, args",
    [
        ("Normal", (torch.zeros(3), 1.0)),
        ("Gamma", (torch.ones(3), 2.0)),
        ("Exponential", (torch.ones(3),)),
        ("Cauchy", (0.0, torch.ones(3))),
        ("Laplace", (torch.zeros(3), torch.ones(3))),
        ("Poisson", (torch.ones(3),)),
        ("Beta", (torch.ones(3), 2.0)),
        ("HalfCauchy", (torch.ones(3),)),
        ("Multinomial", (4, torch.ones(3, 2))),
    ],
)
def test_rewritten_constructors_expand_like_torchs(name, args):
    for validate in (None, False, True):
        d = getattr(ember_torch, name)(*args, validate_args=validate)
        e = d.expand((2,) + tuple(d.batch_shape))
        theirs = getattr(tdist, name)(*args, validate_args=validate).expand(e.batch_shape)
        assert type(e) is type(d) and e.batch_shape == theirs.batch_shape
        assert e._validate_args == theirs._validate_args
        assert e.sample().shape == theirs.sample().shape


@pytest.mark.parametrize("name, args, kwargs", VALID, ids=[c[0] for c in VALID])
def test_valid_parameters_give_torchs_results(name, args, kwargs):
    ours = getattr(ember_torch, name)(*args, **kwargs)
    theirs = getattr(tdist, name)(*args, **kwargs, validate_args=True)
    assert ours.batch_shape == theirs.batch_shape and ours.event_shape == theirs.event_shape
    torch.manual_seed(0)
    x = theirs.sample((4,))
    torch.manual_seed(0)
    y = ours.sample((4,))
    assert torch.equal(x, y)
    observed = x.clone()
    lp_ours, lp_theirs = ours.log_prob(observed), theirs.log_prob(observed)
    assert torch.allclose(lp_ours, lp_theirs, rtol=1e-6, atol=1e-6)
    assert torch.equal(ours.log_prob(y), lp_ours)  # own sample: same number, no check
    for param in ours.arg_constraints:
        if param in theirs.__dict__ or param in ("loc", "scale"):
            a, b = getattr(ours, param), getattr(theirs, param)
            assert a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b), param


def test_python_numbers_are_checked_as_stored():
    # 1e-46 is positive, but a float32 parameter stores it as 0.0
    with pytest.raises(ValueError, match=r"Python number 1e-46, stored as 0\.0"):
        dist.Normal(torch.zeros(3), 1e-46)
    assert dist.Normal(torch.zeros(3, dtype=torch.float64), 1e-46).scale.dtype == torch.float64
    with pytest.raises(ValueError, match="Python number nan"):
        dist.Normal(NAN, 1.0)
    with pytest.raises(ValueError, match=r"parameter scale \(Tensor of shape \(\)\)"):
        dist.Normal(0.0, torch.tensor(-1.0))


def test_the_global_switch_and_instance_flag_behave_as_torchs():
    d = dist.Normal(0.0, 1.0)
    assert d._validate_args is True and "_validate_args" not in d.__dict__
    with validation_enabled(False):
        assert d._validate_args is False  # follows the global default, like torch
        d.log_prob(torch.tensor(NAN))  # not checked
    with pytest.raises(ValueError, match="support"):
        d.log_prob(torch.tensor(NAN))
    e = dist.Normal(0.0, 1.0, validate_args=False)
    assert e._validate_args is False and e.expand((3,))._validate_args is False
    e.log_prob(torch.tensor(NAN))
    f = dist.Normal(torch.zeros(2), 1.0, validate_args=True).expand((4, 2))
    assert f._validate_args is True
    with pytest.raises(ValueError, match="support"):
        f.log_prob(torch.full((4, 2), NAN))


def test_lazy_parameters_are_checked_only_when_given():
    d = dist.Categorical(logits=torch.tensor([0.0, 1.0]))
    assert "probs" not in d.__dict__  # validation did not compute the derived parameter
    d = dist.Bernoulli(probs=torch.tensor([0.5, 1.0]))
    assert "logits" not in d.__dict__


def test_dependent_constraints_are_checked():
    with pytest.raises(ValueError, match="parameter low .*LessThan"):
        dist.Uniform(torch.tensor([0.0, 3.0]), torch.tensor([1.0, 2.0]))
    d = dist.Binomial(torch.tensor([3.0, 5.0]), probs=torch.tensor(0.5))
    with pytest.raises(ValueError, match=r"(?s)support.*4\.0 at index \(0,\)"):
        d.log_prob(torch.tensor([4.0, 4.0]))
    assert torch.isfinite(d.log_prob(torch.tensor([3.0, 5.0]))).all()


def test_wrong_shapes_raise_with_the_shapes():
    with pytest.raises(RuntimeError):  # torch raises this one too
        dist.Normal(torch.zeros(2), torch.ones(3))
    d = dist.Normal(torch.zeros(2), 1.0)
    with pytest.raises(ValueError, match=r"\(3,\).*\(2,\)"):
        d.log_prob(torch.zeros(3))
    mvn = dist.MultivariateNormal(torch.zeros(3), torch.eye(3))
    with pytest.raises(ValueError, match=r"event_shape \(3,\)"):
        mvn.log_prob(torch.zeros(2))
    with pytest.raises(ValueError, match="must be a Tensor"):
        d.log_prob([0.0, 0.0])


# --- values: own samples are trusted, everything else is checked -----------------------------


class CountingDirichlet(dist.Dirichlet):
    """A Dirichlet that counts how often its support is looked up (= value checks)."""

    lookups = 0

    @property
    def support(self):
        type(self).lookups += 1
        return constraints.simplex


def test_own_sample_skips_the_support_check_but_observed_values_do_not():
    d = CountingDirichlet(torch.ones(2, 3))
    for draw in (d.sample, d.rsample, d, lambda: d.sample((2,))):
        x = draw()  # the latest draw is remembered
        before = CountingDirichlet.lookups
        d.log_prob(x)
        assert CountingDirichlet.lookups == before
    d.log_prob(torch.full((2, 3), 1 / 3))
    assert CountingDirichlet.lookups == before + 1
    x = d.sample()
    x.mul_(1.0)  # changed in place: no longer trusted
    before = CountingDirichlet.lookups
    d.log_prob(x)
    assert CountingDirichlet.lookups == before + 1


def test_own_sample_of_a_range_support_is_checked_without_a_copy():
    # one reduction decides a range: cheaper than remembering a copy of the draw
    d = dist.Normal(torch.zeros(3), 1.0)
    x = d.sample()
    assert "_ember_known_valid" not in vars(d)
    x.data[0] = float("nan")
    with pytest.raises(ValueError, match="Normal.log_prob"):
        d.log_prob(x)


def test_changed_sample_and_foreign_sample_are_checked():
    d = dist.Beta(2.0, 3.0)
    x = d.sample((5,))
    d.log_prob(x)
    x[0] = 1.5
    with pytest.raises(ValueError, match=r"(?s)support.*1\.5 at index \(0,\)"):
        d.log_prob(x)
    y = dist.Normal(torch.zeros(100), 1.0).sample()  # not drawn by the Exponential
    with pytest.raises(ValueError, match=r"Tensor of shape \(100,\).*GreaterThanEq"):
        dist.Exponential(torch.ones(100)).log_prob(y)


def test_beta_samples_near_the_boundary_are_scored():
    # concentrations this small put float32 draws at the very ends of (0, 1)
    d = dist.Beta(torch.full((2000,), 0.01), torch.full((2000,), 0.01))
    torch.manual_seed(0)
    x = d.sample()
    assert (x < 1e-30).any() and (x > 1 - 1e-6).any()
    assert not torch.isnan(d.log_prob(x)).any()
    check_value(d, x)  # they are in the support
    with pytest.raises(ValueError, match="support"):
        d.log_prob(x + 1.0)


def test_observed_value_error_names_shape_support_and_values():
    d = dist.Poisson(torch.ones(2, 3))
    value = torch.tensor([[0.0, 1.0, 2.5], [1.0, -1.0, 0.0]])
    with pytest.raises(ValueError) as error:
        d.log_prob(value)
    message = str(error.value)
    assert "Tensor of shape (2, 3)" in message and "Poisson.log_prob" in message
    assert "IntegerGreaterThan(lower_bound=0)" in message
    assert "2 invalid values out of 6" in message
    assert "2.5 at index (0, 2)" in message and "-1.0 at index (1, 1)" in message
    assert "hint:" in message


def test_independent_checks_observed_values_and_trusts_own_samples():
    d = dist.Normal(torch.zeros(4), 1.0).to_event(1)
    d.log_prob(d.sample((3,)))
    with pytest.raises(ValueError, match="support"):
        d.log_prob(torch.tensor([0.0, NAN, 0.0, 0.0]))
    with pytest.raises(ValueError, match="support"):
        dist.Dirichlet(torch.ones(3)).to_event(0).log_prob(torch.tensor([0.5, 0.6, 0.1]))


def test_sampled_distribution_pickles_and_keeps_validating():
    d = dist.Normal(torch.zeros(2), 1.0)
    d.log_prob(d.sample())
    e = pickle.loads(pickle.dumps(d))
    assert e._validate_args is True
    with pytest.raises(ValueError, match="support"):
        e.log_prob(torch.tensor([0.0, NAN]))


def test_subclass_with_own_sampler_is_trusted_only_for_what_it_returns():
    class Shifted(dist.Exponential):
        def sample(self, sample_shape=()):
            return super().sample(sample_shape) + 1.0

    d = Shifted(torch.ones(3))
    d.log_prob(d.sample())
    with pytest.raises(ValueError, match="support"):
        d.log_prob(-d.sample())


# --- the decision engine against torch's elementwise check ------------------------------------

CONSTRAINTS = [
    constraints.real,
    constraints.positive,
    constraints.nonnegative,
    constraints.greater_than(0.1),
    constraints.greater_than_eq(-1.5),
    constraints.less_than(0.3),
    constraints.unit_interval,
    constraints.interval(-0.7, 0.2),
    constraints.half_open_interval(0.0, 1.0),
    constraints.boolean,
    constraints.nonnegative_integer,
    constraints.positive_integer,
    constraints.integer_interval(0, 3),
    constraints.independent(constraints.positive, 1),
    constraints.real_vector,
    constraints.simplex,
    constraints.lower_cholesky,
    constraints.lower_triangular,
    constraints.greater_than(torch.tensor([0.0, 0.5, 1.0])),
]


def _candidates():
    g = torch.Generator().manual_seed(0)
    out = []
    for dtype in (torch.float32, torch.float64):
        f32_tenth = torch.tensor(0.1, dtype=torch.float32).to(dtype)
        out += [
            torch.randn(4, 3, generator=g, dtype=dtype),
            torch.rand(4, 3, generator=g, dtype=dtype),
            torch.rand(4, 3, generator=g, dtype=dtype) + 0.2,
            torch.randint(0, 4, (4, 3), generator=g).to(dtype),
            torch.tensor([[0.0, 1.0, 1.0]], dtype=dtype),
            torch.tensor([[0.2, 0.3, 0.5]], dtype=dtype),
            torch.tensor([[0.5, NAN, 0.2]], dtype=dtype),
            torch.tensor([[INF, 0.5, 1.0]], dtype=dtype),
            torch.tensor([[1.0, 2.0, INF]], dtype=dtype),
            torch.tensor([[-INF, 0.0, 1.0]], dtype=dtype),
            torch.tensor([[0.0, 1.0, 0.5]], dtype=dtype),
            torch.tensor([[0.0, 1.0, 1.0], [1.0, 0.0, 1.0]], dtype=dtype),
            torch.tensor([[0.25, 0.25, 0.5 + 9e-7], [0.25, 0.25, 0.5 - 9e-7]], dtype=dtype),
            torch.tensor([[0.25, 0.25, 0.5 + 2e-6]], dtype=dtype),
            torch.tensor([[1.0, 0.0, 0.0], [0.0, -0.0, 1.0]], dtype=dtype),
            torch.tensor([[0.6, -0.1, 0.5]], dtype=dtype),
            torch.tensor([[3.0, 7.0, 2.0]], dtype=dtype) + torch.tensor([0.0, 1e-3, 0.0]),
            torch.tensor([[-INF, INF, 0.0]], dtype=dtype),
            f32_tenth.expand(2, 3),  # a broadcast number exactly at a float32 bound
            torch.tensor(0.3, dtype=dtype).expand(5, 3),
            torch.tensor(NAN, dtype=dtype).expand(2, 3),
            torch.tensor([[[1.0, 0.0, 0.0], [0.5, 2.0, 0.0], [0.1, 0.2, 3.0]]], dtype=dtype),
            torch.tensor([[[1.0, 0.1, 0.0], [0.5, 2.0, 0.0], [0.1, 0.2, 3.0]]], dtype=dtype),
            torch.tensor([[[1.0, 0.0], [INF, 2.0]], [[1.0, 0.0], [-INF, 2.0]]], dtype=dtype),
            torch.tensor([[[1.0, NAN], [0.5, 2.0]]], dtype=dtype),
            torch.tensor([[[1.0, 0.0], [NAN, 2.0]]], dtype=dtype),
            torch.tensor([[[1.0, 0.0], [0.5, 0.0]]], dtype=dtype),
            torch.tensor([[[1.0, 0.0], [0.5, -2.0]]], dtype=dtype),
            torch.tensor([[[INF, -0.0], [-INF, 1.0]]], dtype=dtype),
            torch.eye(3, dtype=dtype).expand(4, 3, 3),
            torch.zeros(0, 3, dtype=dtype),
            torch.rand(3, 3, generator=g, dtype=dtype).t(),  # not contiguous
        ]
    out += [
        torch.randint(-1, 4, (4, 3), generator=g),
        torch.tensor([[0, 1, 1]]),
        torch.tensor([[True, False, True]]),
        torch.tensor(2).expand(2, 3),
        (torch.rand(2, 3, generator=g) + 0.1).requires_grad_(),
    ]
    return out


@pytest.mark.parametrize("constraint", CONSTRAINTS, ids=repr)
def test_decide_agrees_with_torchs_check(constraint):
    compared = 0
    for value in _candidates():
        try:
            expected = bool(constraint.check(value).all())
        except (RuntimeError, ValueError, IndexError):
            continue  # the constraint does not apply to values of this shape
        assert decide(constraint, value) is expected, (constraint, value)
        compared += 1
    assert compared >= 10


def test_first_violation_and_pending_reads():
    checks = [
        (constraints.real, torch.zeros(3)),
        (constraints.positive, 2.0),
        (constraints.unit_interval, torch.tensor([0.5, 1.5])),
        (constraints.positive, torch.tensor([-1.0])),
    ]
    assert first_violation(checks) == 2
    assert first_violation(checks[:2]) is None
    pending = [(0, torch.tensor(True)), (1, torch.tensor(False)), (2, torch.tensor(False))]
    assert read_pending(pending) == 1
    assert read_pending(pending[:1]) is None
    meta = torch.empty(3, device="meta")
    assert decide(constraints.positive, meta) is True  # nothing to read on meta tensors


def test_check_parameters_finds_a_parameter_broken_after_construction():
    d = dist.Gamma(torch.ones(3), 1.0)
    check_parameters(d)
    d.rate = torch.tensor([1.0, 1.0, -4.0])
    with pytest.raises(ValueError, match=r"parameter rate .*-4\.0 at index \(2,\)"):
        check_parameters(d)


def test_single_value_reads_broadcast_numbers_only():
    assert single_value(torch.tensor(3.5)) == 3.5
    assert single_value(torch.tensor([7])) == 7
    assert single_value(torch.tensor(-2.0).expand(4, 5)) == -2.0
    assert single_value(torch.arange(6.0)[3:4].expand(3)) == 3.0
    assert single_value(torch.ones(2)) is None
    assert single_value(torch.zeros(0)) is None


@pytest.mark.parametrize(
    "values",
    [
        (torch.zeros(3), 1.0),
        (2.0, torch.ones(2, 1)),
        (torch.zeros(2, 1), torch.ones(3)),
        (1.0, 2),
        (torch.zeros(3, dtype=torch.float64), 0.5),
        (torch.zeros(2), torch.ones(2)),
        (True, torch.zeros(2)),
    ],
)
def test_broadcast_params_matches_broadcast_all(values):
    ours = broadcast_params(*values)
    theirs = tdist.utils.broadcast_all(*values)
    assert len(ours) == len(theirs)
    for a, b in zip(ours, theirs):
        assert a.shape == b.shape and a.dtype == b.dtype and a.device == b.device
        assert torch.equal(a, b)


def test_grad_flows_through_validated_parameters():
    loc = torch.zeros(3, requires_grad=True)
    scale = torch.ones(3, requires_grad=True)
    d = dist.Normal(loc, scale)
    d.log_prob(torch.ones(3)).sum().backward()
    assert torch.allclose(loc.grad, torch.ones(3)) and torch.allclose(scale.grad, torch.zeros(3))


def test_every_wrapper_class_validates_quickly_and_by_default():
    for name in ember_torch.__all__:
        cls = getattr(ember_torch, name)
        assert cls._ember_fast_validation, name
        assert getattr(cls.sample, "_ember_records_draws", False), name
    assert math.isfinite(dist.Normal(0.0, 1.0).log_prob(torch.tensor(0.0)).item())
    assert ember.util.is_validation_enabled()
