"""Initialization strategies and InitMessenger, against exact values."""

import math

import pytest
import torch

import ember
import ember.distributions as dist
from ember import poutine
from ember.distributions import constraints
from ember.infer.autoguide import (
    AutoDelta,
    AutoNormal,
    init_to_feasible,
    init_to_generated,
    init_to_mean,
    init_to_median,
    init_to_sample,
    init_to_uniform,
    init_to_value,
)
from ember.infer.autoguide.initialization import InitMessenger


def site(name, fn):
    return {"name": name, "fn": fn, "value": None}


@pytest.mark.parametrize(
    "fn,expected",
    [
        (dist.Normal(3.0, 2.0), 0.0),
        (dist.Gamma(3.0, 2.0), 1.0),
        (dist.Beta(2.0, 5.0), 0.5),
        (dist.Uniform(2.0, 4.0), 3.0),
    ],
)
def test_feasible_is_the_image_of_zero(fn, expected):
    value = init_to_feasible(site("x", fn))
    assert torch.allclose(value, torch.tensor(expected))
    assert value._pyro_custom_init is False


def test_feasible_simplex_is_its_centre():
    value = init_to_feasible(site("p", dist.Dirichlet(torch.tensor([1.0, 5.0, 0.5]))))
    assert torch.allclose(value, torch.full((3,), 1 / 3))


@pytest.mark.parametrize(
    "fn,mean",
    [
        (dist.Normal(torch.tensor([1.0, -2.0]), 1.0), [1.0, -2.0]),
        (dist.Gamma(6.0, 2.0), 3.0),
        (dist.Beta(2.0, 6.0), 0.25),
        (dist.Dirichlet(torch.tensor([1.0, 3.0])), [0.25, 0.75]),
    ],
)
def test_mean_is_exact(fn, mean):
    assert torch.allclose(init_to_mean(site("x", fn)), torch.tensor(mean))


def test_mean_falls_back_for_a_cauchy():
    ember.set_rng_seed(0)
    fallback_calls = []

    def fallback(s):
        fallback_calls.append(s["name"])
        return torch.tensor(7.0)

    value = init_to_mean(fallback=fallback)(site("c", dist.Cauchy(0.0, 1.0)))
    assert fallback_calls == ["c"] and value == 7.0
    with pytest.raises(ValueError, match="'c'"):
        init_to_mean(fallback=None)(site("c", dist.Cauchy(0.0, 1.0)))


def test_median_of_many_samples_is_close_to_the_true_median():
    ember.set_rng_seed(0)
    # LogNormal(1, 0.5): median e; the median of n draws has sd ~ 1.2533 * sd/sqrt(n) in
    # log space, 0.5 * 1.2533 / sqrt(2001) = 0.014
    value = init_to_median(num_samples=2001)(site("x", dist.LogNormal(1.0, 0.5)))
    assert abs(math.log(value) - 1.0) < 5 * 0.014


def test_median_of_a_multivariate_site_is_feasible():
    fn = dist.MultivariateNormal(torch.ones(2), torch.eye(2))
    assert torch.equal(init_to_median(site("x", fn)), torch.zeros(2))


def test_sample_draws_from_the_distribution():
    ember.set_rng_seed(3)
    values = torch.stack([init_to_sample(site("x", dist.Normal(5.0, 0.1))) for _ in range(400)])
    # mean of 400 draws: sd 0.005
    assert abs(values.mean() - 5.0) < 0.025


def test_uniform_stays_within_the_radius_of_the_unconstrained_space():
    ember.set_rng_seed(0)
    values = torch.stack(
        [init_to_uniform(radius=0.5)(site("s", dist.Exponential(1.0))) for _ in range(500)]
    )
    logs = values.log()
    assert logs.min() >= -0.5 and logs.max() <= 0.5
    assert logs.min() < -0.45 and logs.max() > 0.45  # it covers the range


def test_value_and_fallback():
    init = init_to_value(values={"a": torch.tensor(2.0)}, fallback=init_to_feasible)
    assert init(site("a", dist.Normal(0.0, 1.0))) == 2.0
    assert init(site("b", dist.Gamma(2.0, 1.0))) == 1.0
    with pytest.raises(ValueError, match="'b'"):
        init_to_value(values={"a": torch.tensor(2.0)}, fallback=None)(
            site("b", dist.Normal(0.0, 1.0))
        )


def test_generated_calls_the_generator_once_per_run():
    runs = []

    def generate():
        runs.append(len(runs))
        return init_to_value(values={"x": torch.tensor(float(len(runs)))})

    def model():
        return ember.sample("x", dist.Normal(0.0, 1.0)), ember.sample("y", dist.Normal(0.0, 1.0))

    with InitMessenger(init_to_generated(generate=generate)):
        values = [model()[0].item() for _ in range(3)]
    assert values == [1.0, 2.0, 3.0] and runs == [0, 1, 2]


def test_init_messenger_leaves_observed_and_given_values():
    def model():
        a = ember.sample("a", dist.Normal(0.0, 1.0), obs=torch.tensor(0.5))
        b = ember.sample("b", dist.Normal(0.0, 1.0))
        return a, b

    with InitMessenger(init_to_value(values={"a": torch.tensor(9.0), "b": torch.tensor(2.0)})):
        a, b = poutine.condition(model, data={"b": torch.tensor(-1.0)})()
    assert a == 0.5 and b == -1.0


def test_init_messenger_checks_shape_and_support():
    def model():
        with ember.plate("p", 3):
            ember.sample("rate", dist.Gamma(2.0, 1.0))

    with pytest.raises(ValueError, match=r"'rate'.*shape \(2,\)"):
        with InitMessenger(init_to_value(values={"rate": torch.ones(2)})):
            model()
    with pytest.raises(ValueError, match="'rate' a value outside its support"):
        with InitMessenger(init_to_value(values={"rate": -torch.ones(3)})):
            model()
    # a broadcastable value is expanded to the site's shape
    with poutine.trace() as tr, InitMessenger(init_to_value(values={"rate": torch.tensor(2.0)})):
        model()
    assert torch.equal(tr.trace.nodes["rate"]["value"], torch.full((3,), 2.0))


def test_discrete_site_gets_a_helpful_error():
    def model():
        ember.sample("k", dist.Bernoulli(0.3))

    with pytest.raises(ValueError, match="discrete sample site 'k'.*enumeration"):
        with InitMessenger(init_to_feasible):
            model()


@pytest.mark.parametrize("guide_class", [AutoDelta, AutoNormal])
def test_guides_start_at_the_init_values(guide_class):
    def model():
        ember.sample("x", dist.Normal(0.0, 1.0))
        ember.sample("s", dist.LogNormal(0.0, 1.0).expand([2]).to_event(1))

    values = {"x": torch.tensor(0.7), "s": torch.tensor([0.5, 3.0])}
    guide = guide_class(model, init_loc_fn=init_to_value(values=values))
    guide()
    median = guide.median()
    for name, value in values.items():
        assert torch.allclose(median[name], value)


def test_positive_constraint_init_round_trips():
    ember.clear_param_store()
    guide = AutoDelta(lambda: ember.sample("v", dist.HalfNormal(1.0)), init_loc_fn=init_to_mean)
    guide()
    assert torch.allclose(guide.v.detach(), torch.tensor(math.sqrt(2 / math.pi)))
    assert constraints.positive.check(guide.v)
