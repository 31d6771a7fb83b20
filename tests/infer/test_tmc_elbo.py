"""TraceTMC_ELBO against exact evidence: brute-force sums over discrete values (where
the estimate must be exact) and closed-form Gaussian evidence (where it must be
unbiased for the evidence and converge to the log evidence as the number of
draws grows; tolerances come from the replicates' standard errors).
"""

import itertools
import math

import pytest
import torch

import ember
import ember.distributions as dist
from ember import poutine
from ember.infer import TraceEnum_ELBO, TraceTMC_ELBO, config_enumerate
from ember.infer.tracetmc_elbo import TMCPopulationMessenger

F64 = torch.float64


@pytest.fixture(autouse=True)
def seeded():
    ember.clear_param_store()
    ember.set_rng_seed(0)
    yield
    ember.clear_param_store()


# ---------------------------------------------------------------- discrete: exact

DATA = torch.tensor([[1.0, 0.0, 1.0], [0.0, 0.0, 1.0]], dtype=F64)  # (data, local)


def categorical_model():
    q0 = ember.param("q0", torch.tensor([0.3, 0.7], dtype=F64))
    q1 = ember.param("q1", torch.tensor([[0.9, 0.1], [0.25, 0.75]], dtype=F64))
    qy = ember.param("qy", torch.tensor([0.2, 0.85], dtype=F64))
    x0 = ember.sample("x0", dist.Categorical(q0))
    with ember.plate("local", 3, dim=-1):
        x1 = ember.sample("x1", dist.Categorical(q1[x0]))
        with ember.plate("data", 2, dim=-2):
            ember.sample("y", dist.Bernoulli(qy[x1]), obs=DATA)


def brute_force_categorical():
    q0 = [0.3, 0.7]
    q1 = [[0.9, 0.1], [0.25, 0.75]]
    qy = [0.2, 0.85]
    total = 0.0
    for x0 in range(2):
        for x1s in itertools.product(range(2), repeat=3):
            p = q0[x0]
            for j, x1 in enumerate(x1s):
                p *= q1[x0][x1]
                for i in range(2):
                    p *= qy[x1] if DATA[i, j] else 1 - qy[x1]
            total += p
    return math.log(total)


def test_exhaustive_enumeration_is_exact_with_traceenum_gradients():
    model = config_enumerate(categorical_model, expand=False)
    tmc = -TraceTMC_ELBO(max_plate_nesting=2).differentiable_loss(model, lambda: None)
    assert float(tmc.detach()) == pytest.approx(brute_force_categorical(), abs=1e-10)
    params = [ember.param(n).unconstrained() for n in ("q0", "q1", "qy")]
    tmc_grads = torch.autograd.grad(tmc, params)
    enum = -TraceEnum_ELBO(max_plate_nesting=2).differentiable_loss(model, lambda: None)
    for a, b in zip(tmc_grads, torch.autograd.grad(enum, params)):
        assert torch.allclose(a, b, atol=1e-10)


# ---------------------------------------------------------------- Gaussian chains

Y = torch.tensor(1.3, dtype=F64)


def chain_model(depth):
    x = torch.tensor(0.0, dtype=F64)
    for i in range(depth):
        x = ember.sample(f"x{i}", dist.Normal(x, 1.0))
    ember.sample("y", dist.Normal(x, 1.0), obs=Y)


def chain_log_evidence(depth):
    return float(dist.Normal(torch.tensor(0.0, dtype=F64), math.sqrt(depth + 1.0)).log_prob(Y))


def estimates(model, guide, num_samples, replicates, strategy="diagonal", depth=2):
    tmc = TraceTMC_ELBO(max_plate_nesting=0)
    m = config_enumerate(model, num_samples=num_samples, tmc=strategy)
    g = config_enumerate(guide, num_samples=num_samples, tmc=strategy) if guide else guide
    return torch.tensor(
        [-tmc.loss(m, g or (lambda d: None), depth) for _ in range(replicates)], dtype=F64
    )


@pytest.mark.parametrize("strategy", ["diagonal", "mixture", "full"])
def test_prior_draws_are_unbiased_for_the_evidence(strategy):
    exact = math.exp(chain_log_evidence(2))
    values = estimates(chain_model, None, 50, 200, strategy).exp()
    stderr = float(values.std()) / math.sqrt(len(values))
    assert abs(float(values.mean()) - exact) < 4 * stderr


@pytest.mark.slow
def test_log_estimate_converges_to_log_evidence():
    exact = chain_log_evidence(2)
    errors = []
    for k in (10, 100, 1000):
        values = estimates(chain_model, None, k, 20)
        errors.append(float((values - exact).abs().mean()))
    assert errors[0] > errors[1] > errors[2]
    assert errors[2] < 0.02


def chain_guide(depth):
    loc = ember.param("loc", torch.tensor(0.4, dtype=F64))
    x = ember.sample("x0", dist.Normal(loc, 1.2))
    for i in range(1, depth):
        x = ember.sample(f"x{i}", dist.Normal(0.5 * x, 0.9))


def test_guide_draws_converge_and_are_unbiased():
    exact = chain_log_evidence(2)
    values = estimates(chain_model, chain_guide, 200, 100)
    stderr = float(values.exp().std()) / math.sqrt(len(values))
    assert abs(float(values.exp().mean()) - math.exp(exact)) < 4 * stderr
    assert abs(float(values.mean()) - exact) < 0.05


def plated_model():
    with ember.plate("data", 3):
        z = ember.sample("z", dist.Normal(torch.zeros(3, dtype=F64), 1.0))
        ember.sample("y", dist.Normal(z, 0.5), obs=torch.tensor([0.1, -1.0, 2.0], dtype=F64))


def test_plated_draws_multiply_per_element_estimates():
    exact = float(
        dist.Normal(torch.zeros(3, dtype=F64), math.sqrt(1.25))
        .log_prob(torch.tensor([0.1, -1.0, 2.0], dtype=F64))
        .sum()
    )
    tmc = TraceTMC_ELBO(max_plate_nesting=1)
    model = config_enumerate(plated_model, num_samples=4000)
    values = torch.tensor([-tmc.loss(model, lambda: None) for _ in range(10)], dtype=F64)
    assert abs(float(values.mean()) - exact) < 0.03


def test_warns_when_nothing_is_enumerated():
    with pytest.warns(UserWarning, match="found no sample sites configured"):
        TraceTMC_ELBO(max_plate_nesting=0).loss(chain_model, lambda d: None, 0)


@pytest.mark.parametrize("strategy", ["diagonal", "mixture", "full"])
def test_draws_of_a_dependent_site_form_one_population(strategy):
    def model():
        x0 = ember.sample("x0", dist.Normal(torch.zeros(()), 1.0))
        ember.sample("x1", dist.Normal(x0, 1e-6))

    m = poutine.enum(
        TMCPopulationMessenger()(config_enumerate(model, num_samples=7, tmc=strategy)),
        first_available_dim=-1,
    )
    tr = poutine.trace(m).get_trace()
    x0, x1 = tr.nodes["x0"]["value"], tr.nodes["x1"]["value"]
    assert x0.shape == (7,)
    if strategy == "full":  # every draw of x1 given every draw of x0
        assert x1.shape == (7, 7) and torch.allclose(x1, x0.expand(7, 7), atol=1e-4)
        return
    assert x1.shape == (7, 1)
    # each draw of x1 was made given one draw of x0: the k-th for "diagonal"
    match = (x1 - x0).abs() < 1e-4  # (x1 draws, x0 draws)
    assert bool(match.any(-1).all())
    if strategy == "diagonal":
        assert torch.allclose(x1.reshape(-1), x0, atol=1e-4)


@pytest.mark.parametrize("strategy", ["diagonal", "mixture", "full"])
def test_prior_draws_shared_by_a_plate_are_unbiased(strategy):
    """A global site drawn K times and a site in a plate drawn K times given it: the
    plate's elements share the global draws, and the estimate stays unbiased for
    the evidence (each local draw is weighed by its mixture proposal density)."""
    exact = math.exp(brute_force_categorical())
    model = config_enumerate(categorical_model, num_samples=30, tmc=strategy)
    tmc = TraceTMC_ELBO(max_plate_nesting=2)
    values = torch.tensor([-tmc.loss(model, lambda: None) for _ in range(300)], dtype=F64).exp()
    stderr = float(values.std()) / math.sqrt(len(values))
    assert abs(float(values.mean()) - exact) < 4 * stderr
    # and the log estimate converges to the log evidence
    many = config_enumerate(categorical_model, num_samples=2000, tmc=strategy)
    assert -tmc.loss(many, lambda: None) == pytest.approx(math.log(exact), abs=0.05)


def test_draws_outside_tmc_keep_one_set_per_parent_value():
    """Without Tensor Monte Carlo's marker, each draw of a dependent site is made for
    every draw of its parent (what TraceEnum_ELBO's averaging needs)."""

    def model():
        x0 = ember.sample("x0", dist.Normal(torch.zeros(()), 1.0))
        ember.sample("x1", dist.Normal(x0, 1e-6))

    m = poutine.enum(config_enumerate(model, num_samples=5), first_available_dim=-1)
    tr = poutine.trace(m).get_trace()
    assert tr.nodes["x1"]["value"].shape == (5, 5)
