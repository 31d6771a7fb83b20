"""SVI: stepping, parameter discovery, and convergence to known conjugate posteriors."""

import math

import pytest
import torch

import ember
import ember.distributions as dist
from ember.distributions import constraints
from ember.infer import SVI, Trace_ELBO, TraceGraph_ELBO, TraceMeanField_ELBO
from ember.optim import Adam, ClippedAdam


def test_step_returns_float_and_updates_params():
    ember.clear_param_store()
    ember.set_rng_seed(0)

    def model():
        ember.sample("z", dist.Normal(0.0, 1.0))

    def guide():
        loc = ember.param("loc", torch.tensor(2.0))
        ember.sample("z", dist.Normal(loc, 1.0))

    svi = SVI(model, guide, Adam({"lr": 0.1}), Trace_ELBO())
    loss = svi.step()
    assert isinstance(loss, float)
    assert ember.param("loc").item() < 2.0
    assert ember.param("loc").grad is None or (ember.param("loc").grad == 0).all()
    assert isinstance(svi.evaluate_loss(), float)


def test_params_created_mid_training_are_optimized():
    ember.clear_param_store()
    ember.set_rng_seed(1)
    step = {"n": 0}

    def model():
        ember.sample("z", dist.Normal(0.0, 1.0))
        if step["n"] >= 3:
            ember.sample("w", dist.Normal(0.0, 1.0))

    def guide():
        loc = ember.param("loc", torch.tensor(2.0))
        ember.sample("z", dist.Normal(loc, 1.0))
        if step["n"] >= 3:
            wloc = ember.param("wloc", torch.tensor(3.0))
            ember.sample("w", dist.Normal(wloc, 1.0))

    svi = SVI(model, guide, Adam({"lr": 0.1}), Trace_ELBO())
    for _ in range(8):
        svi.step()
        step["n"] += 1
    assert ember.param("wloc").item() < 3.0 - 0.2  # 5 Adam steps of ~0.1


def test_model_params_are_optimized():
    ember.clear_param_store()
    data = torch.tensor([3.0, 3.5, 2.5])

    def model():
        mu = ember.param("mu", torch.tensor(0.0))
        with ember.plate("data", 3):
            ember.sample("x", dist.Normal(mu, 1.0), obs=data)

    def guide():
        pass

    svi = SVI(model, guide, Adam({"lr": 0.1}), Trace_ELBO())
    svi.run(300, progress=False)
    assert ember.param("mu").item() == pytest.approx(3.0, abs=0.05)


def test_run_returns_history():
    ember.clear_param_store()

    def model():
        ember.sample("z", dist.Normal(0.0, 1.0))

    def guide():
        ember.sample("z", dist.Normal(ember.param("loc", torch.tensor(1.0)), 1.0))

    svi = SVI(model, guide, Adam({"lr": 0.05}), Trace_ELBO())
    history = svi.run(5, progress=False)
    assert len(history) == 5 and all(isinstance(h, float) for h in history)
    with pytest.raises(ValueError, match="num_steps"):
        svi.run(-1)


def test_callable_loss():
    ember.clear_param_store()

    def model():
        ember.sample("z", dist.Normal(0.0, 1.0))

    def guide():
        ember.sample("z", dist.Normal(ember.param("loc", torch.tensor(1.0)), 1.0))

    elbo = Trace_ELBO(num_particles=100, vectorize_particles=True)
    svi = SVI(model, guide, Adam({"lr": 0.1}), loss=elbo.differentiable_loss)
    assert isinstance(svi.step(), float)
    assert ember.param("loc").item() < 1.0


def test_bad_arguments():
    def f():
        pass

    with pytest.raises(TypeError, match="ember.optim"):
        SVI(f, f, torch.optim.Adam([torch.zeros(1, requires_grad=True)]), Trace_ELBO())
    with pytest.raises(TypeError, match="loss"):
        SVI(f, f, Adam({"lr": 0.1}), loss="ELBO")
    with pytest.raises(TypeError, match="model"):
        SVI(None, f, Adam({"lr": 0.1}), Trace_ELBO())


# ---------------------------------------------------------------- convergence
def _fit(model, guide, elbo, steps, lr=0.05, lrd=None):
    args = {"lr": lr}
    if lrd is not None:
        args["lrd"] = lrd
    svi = SVI(model, guide, ClippedAdam(args), elbo)
    for _ in range(steps):
        svi.step()


@pytest.mark.slow
def test_normal_normal_converges():
    ember.clear_param_store()
    ember.set_rng_seed(10)
    data = torch.randn(20) + 1.5
    post_var = 1.0 / (1.0 + len(data))
    post_mean = data.sum().item() * post_var

    def model():
        mu = ember.sample("mu", dist.Normal(0.0, 1.0))
        with ember.plate("data", len(data)):
            ember.sample("x", dist.Normal(mu, 1.0), obs=data)

    def guide():
        loc = ember.param("loc", torch.tensor(0.0))
        scale = ember.param("scale", torch.tensor(1.0), constraint=constraints.positive)
        ember.sample("mu", dist.Normal(loc, scale))

    elbo = Trace_ELBO(num_particles=8, vectorize_particles=True)
    _fit(model, guide, elbo, 1500, lr=0.05, lrd=0.998)
    # tolerance: 0.05 posterior sd on the mean, 15% on the sd
    sd = math.sqrt(post_var)
    assert ember.param("loc").item() == pytest.approx(post_mean, abs=0.05 * 4 * sd)
    assert ember.param("scale").item() == pytest.approx(sd, rel=0.15)


@pytest.mark.slow
def test_beta_bernoulli_converges():
    ember.clear_param_store()
    ember.set_rng_seed(11)
    data = torch.tensor([1.0] * 21 + [0.0] * 9)
    a_post, b_post = 2.0 + 21, 2.0 + 9
    post_mean = a_post / (a_post + b_post)
    post_sd = math.sqrt(a_post * b_post / ((a_post + b_post) ** 2 * (a_post + b_post + 1)))

    def model():
        p = ember.sample("p", dist.Beta(2.0, 2.0))
        with ember.plate("data", len(data)):
            ember.sample("x", dist.Bernoulli(p), obs=data)

    def guide():
        a = ember.param("a", torch.tensor(4.0), constraint=constraints.positive)
        b = ember.param("b", torch.tensor(4.0), constraint=constraints.positive)
        ember.sample("p", dist.Beta(a, b))

    elbo = TraceMeanField_ELBO(num_particles=8, vectorize_particles=True)
    _fit(model, guide, elbo, 800, lr=0.1, lrd=0.996)
    a, b = ember.param("a").item(), ember.param("b").item()
    fit_mean = a / (a + b)
    fit_sd = math.sqrt(a * b / ((a + b) ** 2 * (a + b + 1)))
    assert fit_mean == pytest.approx(post_mean, abs=0.25 * post_sd)
    assert fit_sd == pytest.approx(post_sd, rel=0.2)


@pytest.mark.slow
def test_gamma_poisson_converges():
    ember.clear_param_store()
    ember.set_rng_seed(12)
    data = torch.tensor([3.0, 2.0, 4.0, 1.0, 5.0, 3.0, 2.0, 4.0, 3.0, 3.0] * 2)
    a_post, b_post = 2.0 + data.sum().item(), 1.0 + len(data)
    post_mean, post_sd = a_post / b_post, math.sqrt(a_post) / b_post

    def model():
        rate = ember.sample("rate", dist.Gamma(2.0, 1.0))
        with ember.plate("data", len(data)):
            ember.sample("x", dist.Poisson(rate), obs=data)

    def guide():
        a = ember.param("a", torch.tensor(20.0), constraint=constraints.positive)
        b = ember.param("b", torch.tensor(8.0), constraint=constraints.positive)
        ember.sample("rate", dist.Gamma(a, b))

    elbo = Trace_ELBO(num_particles=16, vectorize_particles=True)
    _fit(model, guide, elbo, 2000, lr=0.08, lrd=0.998)
    a, b = ember.param("a").item(), ember.param("b").item()
    assert a / b == pytest.approx(post_mean, abs=0.25 * post_sd)
    assert math.sqrt(a) / b == pytest.approx(post_sd, rel=0.2)


@pytest.mark.slow
def test_tracegraph_fits_discrete_posterior():
    # z ~ Bernoulli(0.5), x | z ~ N(2z, 1): q(z) = Bernoulli(p) should reach p(z=1 | x)
    ember.clear_param_store()
    ember.set_rng_seed(13)
    x = torch.tensor(1.6)
    l1 = dist.Normal(2.0, 1.0).log_prob(x)
    l0 = dist.Normal(0.0, 1.0).log_prob(x)
    exact = torch.sigmoid(l1 - l0).item()

    def model():
        z = ember.sample("z", dist.Bernoulli(0.5))
        ember.sample("x", dist.Normal(2.0 * z, 1.0), obs=x)

    def guide():
        p = ember.param("p", torch.tensor(0.5), constraint=constraints.unit_interval)
        ember.sample(
            "z", dist.Bernoulli(p), infer={"baseline": {"use_decaying_avg_baseline": True}}
        )

    elbo = TraceGraph_ELBO(num_particles=16, vectorize_particles=True)
    _fit(model, guide, elbo, 1000, lr=0.05, lrd=0.997)
    assert ember.param("p").item() == pytest.approx(exact, abs=0.05)
