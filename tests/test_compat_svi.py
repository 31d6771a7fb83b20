"""Integration: Pyro-style SVI programs run unchanged under ``import ember as pyro``.

Conjugate Beta-Bernoulli, Bayesian linear regression (``pyro.module``,
``pyro.random_module``, ``Predictive``), and a normalizing-flow guide.
Results are checked against closed forms.
"""

import math

import pytest
import torch
import torch.nn as nn

import ember as pyro
import ember.distributions as dist
from ember.distributions import constraints
from ember.infer import SVI, Predictive, Trace_ELBO, TraceMeanField_ELBO
from ember.optim import Adam


@pytest.fixture(autouse=True)
def _fresh_store():
    pyro.clear_param_store()
    yield
    pyro.clear_param_store()


# --------------------------------------------------------------------------
# 1. Beta-Bernoulli coin fairness
# --------------------------------------------------------------------------


def coin_model(flips):
    fairness = pyro.sample("fairness", dist.Beta(10.0, 10.0))
    with pyro.plate("flips", len(flips)):
        pyro.sample("obs", dist.Bernoulli(fairness), obs=flips)


def coin_guide(flips):
    a = pyro.param("alpha_q", torch.tensor(15.0), constraint=constraints.positive)
    b = pyro.param("beta_q", torch.tensor(15.0), constraint=constraints.positive)
    pyro.sample("fairness", dist.Beta(a, b))


@pytest.mark.slow
def test_beta_bernoulli_posterior_mean():
    pyro.set_rng_seed(0)
    flips = torch.tensor([1.0] * 14 + [0.0] * 6)
    heads = flips.sum().item()
    a_post, b_post = 10.0 + heads, 10.0 + len(flips) - heads
    exact_mean = a_post / (a_post + b_post)  # 24 / 40 = 0.6
    exact_sd = math.sqrt(a_post * b_post / ((a_post + b_post) ** 2 * (a_post + b_post + 1)))

    elbo = Trace_ELBO(num_particles=32, vectorize_particles=True, max_plate_nesting=1)
    svi = SVI(coin_model, coin_guide, Adam({"lr": 0.05}), loss=elbo)
    means = []
    for step in range(400):
        loss = svi.step(flips)
        assert isinstance(loss, float) and math.isfinite(loss)
        if step >= 250:
            a = pyro.param("alpha_q").item()
            b = pyro.param("beta_q").item()
            means.append(a / (a + b))
    a = pyro.param("alpha_q")
    assert a.item() > 0 and pyro.param("beta_q").item() > 0
    # the guide family contains the exact posterior; the stochastic optimum
    # wanders by a small fraction of the posterior sd
    q_mean = sum(means) / len(means)
    assert abs(q_mean - exact_mean) < 0.2 * exact_sd, (q_mean, exact_mean)
    # the unconstrained value lives in the store, the constrained one is returned
    store = pyro.get_param_store()
    raw = store.get_param("alpha_q")
    assert torch.allclose(raw, a)


def test_svi_evaluate_loss_matches_manual_elbo():
    # a single-particle ELBO on a fixed guide sample equals log p - log q
    flips = torch.tensor([1.0, 0.0, 1.0])
    svi = SVI(
        coin_model,
        coin_guide,
        Adam({"lr": 0.01}),
        loss=Trace_ELBO(num_particles=20000, vectorize_particles=True, max_plate_nesting=1),
    )
    pyro.set_rng_seed(1)
    loss = svi.evaluate_loss(flips)
    # exact ELBO of Beta(15,15) guide vs Beta(10,10) prior with Bernoulli data:
    # E_q[log p(x|f)] - KL(q || prior)
    q = torch.distributions.Beta(15.0, 15.0)
    prior = torch.distributions.Beta(10.0, 10.0)
    e_log_f = torch.digamma(torch.tensor(15.0)) - torch.digamma(torch.tensor(30.0))
    exp_ll = 2 * e_log_f + 1 * e_log_f  # symmetric guide: E log f == E log(1-f)
    elbo = exp_ll - torch.distributions.kl_divergence(q, prior)
    # SE of 20000-particle mean of log p - log q is small (sd ~ 0.3)
    assert abs(loss - (-elbo.item())) < 0.03


# --------------------------------------------------------------------------
# 2. Linear regression: pyro.module, random_module, Predictive
# --------------------------------------------------------------------------


def _regression_data(n=50, seed=3):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 2, generator=g)
    y = x @ torch.tensor([1.5, -0.7]) + 0.3 + 0.5 * torch.randn(n, generator=g)
    return x, y


def test_pyro_module_maximum_likelihood_is_least_squares():
    x, y = _regression_data()
    torch.manual_seed(0)
    regressor = nn.Linear(2, 1)

    def model(x, y):
        lin = pyro.module("regressor", regressor)
        mean = lin(x).squeeze(-1)
        with pyro.plate("data", len(x)):
            pyro.sample("obs", dist.Normal(mean, 0.5), obs=y)

    def guide(x, y):
        pass

    svi = SVI(model, guide, Adam({"lr": 0.05}), loss=Trace_ELBO())
    for _ in range(400):
        svi.step(x, y)
    names = set(pyro.get_param_store().keys())
    assert names == {"regressor$$$weight", "regressor$$$bias"}
    design = torch.cat([x, torch.ones(len(x), 1)], dim=1)
    exact = torch.linalg.lstsq(design, y.unsqueeze(-1)).solution.squeeze(-1)
    fit = torch.cat([regressor.weight.detach().squeeze(0), regressor.bias.detach()])
    assert torch.allclose(fit, exact, atol=1e-2), (fit, exact)
    # the module's parameters are the store's tensors
    assert pyro.param("regressor$$$weight") is regressor.weight


def _exact_blr_posterior(x, y, prior_sd, noise_sd):
    design = torch.cat([x, torch.ones(len(x), 1)], dim=1)
    precision = design.T @ design / noise_sd**2 + torch.eye(3) / prior_sd**2
    cov = torch.linalg.inv(precision)
    mean = cov @ design.T @ y / noise_sd**2
    return mean, cov


@pytest.mark.slow
def test_bayesian_regression_mean_field_matches_exact_posterior():
    x, y = _regression_data()
    pyro.set_rng_seed(2)
    prior_sd, noise_sd = 2.0, 0.5

    def model(x, y=None):
        w = pyro.sample("w", dist.Normal(torch.zeros(2), prior_sd).to_event(1))
        b = pyro.sample("b", dist.Normal(0.0, prior_sd))
        mean = (x * w).sum(-1) + b
        with pyro.plate("data", len(x)):
            return pyro.sample("obs", dist.Normal(mean, noise_sd), obs=y)

    def guide(x, y=None):
        w_loc = pyro.param("w_loc", torch.zeros(2))
        w_scale = pyro.param("w_scale", 0.1 * torch.ones(2), constraint=constraints.positive)
        b_loc = pyro.param("b_loc", torch.tensor(0.0))
        b_scale = pyro.param("b_scale", torch.tensor(0.1), constraint=constraints.positive)
        pyro.sample("w", dist.Normal(w_loc, w_scale).to_event(1))
        pyro.sample("b", dist.Normal(b_loc, b_scale))

    elbo = TraceMeanField_ELBO(num_particles=16, vectorize_particles=True, max_plate_nesting=1)
    svi = SVI(model, guide, Adam({"lr": 0.05}), loss=elbo)
    avg = torch.zeros(3)
    for step in range(400):
        svi.step(x, y)
        if step >= 300:
            avg += torch.cat(
                [pyro.param("w_loc").detach(), pyro.param("b_loc").detach().reshape(1)]
            )
    avg /= 100
    exact_mean, exact_cov = _exact_blr_posterior(x, y, prior_sd, noise_sd)
    # mean-field VI on a Gaussian posterior recovers the exact posterior mean
    exact_sd = exact_cov.diagonal().sqrt()
    assert ((avg - exact_mean).abs() < 0.3 * exact_sd).all(), (avg, exact_mean, exact_sd)
    # and its variances are the inverse diagonal precisions
    mf_sd = torch.linalg.inv(exact_cov).diagonal().rsqrt()
    fit_sd = torch.cat([pyro.param("w_scale").detach(), pyro.param("b_scale").detach().reshape(1)])
    assert torch.allclose(fit_sd, mf_sd, rtol=0.25), (fit_sd, mf_sd)


def test_random_module_trace_and_predictive():
    x, y = _regression_data(n=20)
    pyro.set_rng_seed(3)
    noise_sd = 0.5

    def model(x, y=None):
        net = nn.Linear(2, 1)
        priors = {
            "weight": dist.Normal(torch.zeros(1, 2), 2.0).to_event(2),
            "bias": dist.Normal(torch.zeros(1), 2.0).to_event(1),
        }
        lifted = pyro.random_module("net", net, priors)()
        mean = lifted(x).squeeze(-1)
        with pyro.plate("data", len(x)):
            return pyro.sample("obs", dist.Normal(mean, noise_sd), obs=y)

    def guide(x, y=None):
        w_loc = pyro.param("w_loc", torch.tensor([[1.0, -1.0]]))
        w_scale = pyro.param("w_scale", 0.1 * torch.ones(1, 2), constraint=constraints.positive)
        b_loc = pyro.param("b_loc", torch.tensor([0.5]))
        b_scale = pyro.param("b_scale", 0.2 * torch.ones(1), constraint=constraints.positive)
        pyro.sample("net$$$weight", dist.Normal(w_loc, w_scale).to_event(2))
        pyro.sample("net$$$bias", dist.Normal(b_loc, b_scale).to_event(1))

    tr = pyro.poutine.trace(model).get_trace(x, y)
    assert {"net$$$weight", "net$$$bias", "obs"} <= set(tr.nodes)
    assert tr.nodes["net$$$weight"]["value"].shape == (1, 2)
    # the lifted module's forward uses the sampled weights
    w = tr.nodes["net$$$weight"]["value"]
    b = tr.nodes["net$$$bias"]["value"]
    assert torch.allclose(tr.nodes["obs"]["fn"].mean, x @ w.squeeze(0) + b)

    svi = SVI(model, guide, Adam({"lr": 0.01}), loss=Trace_ELBO())
    for _ in range(20):
        assert math.isfinite(svi.step(x, y))
    assert {"w_loc", "w_scale", "b_loc", "b_scale"} <= set(pyro.get_param_store().keys())

    x_new = torch.tensor([[0.0, 0.0], [1.0, 1.0], [-1.0, 2.0]])
    num = 1000
    predictive = Predictive(
        model, guide=guide, num_samples=num, return_sites=("obs", "net$$$weight", "_RETURN")
    )
    samples = predictive(x_new)
    assert set(samples) == {"obs", "net$$$weight", "_RETURN"}
    # Pyro pads global sites with one dim per plate (max_plate_nesting == 1)
    assert samples["obs"].shape == (num, 3)
    assert samples["_RETURN"].shape == (num, 3)
    assert samples["net$$$weight"].shape == (num, 1, 1, 2)
    design_new = torch.cat([x_new, torch.ones(3, 1)], dim=1)
    q_loc = torch.cat([pyro.param("w_loc").detach().reshape(-1), pyro.param("b_loc").detach()])
    q_sd = torch.cat([pyro.param("w_scale").detach().reshape(-1), pyro.param("b_scale").detach()])
    pred_mean = design_new @ q_loc
    pred_sd = ((design_new**2) @ q_sd**2 + noise_sd**2).sqrt()
    se = pred_sd / math.sqrt(num)
    assert ((samples["obs"].mean(0) - pred_mean).abs() < 4 * se).all()
    # sd of a sample sd is about sd / sqrt(2 n)
    assert ((samples["obs"].std(0) - pred_sd).abs() < 4 * pred_sd / math.sqrt(2 * num)).all()


def test_predictive_without_guide_samples_prior():
    def model(n):
        mu = pyro.sample("mu", dist.Normal(3.0, 2.0))
        with pyro.plate("data", n):
            pyro.sample("x", dist.Normal(mu, 1.0))

    pyro.set_rng_seed(4)
    samples = Predictive(model, num_samples=4000)(5)
    assert samples["mu"].shape == (4000, 1)
    assert samples["x"].shape == (4000, 5)
    assert abs(samples["mu"].mean().item() - 3.0) < 4 * 2.0 / math.sqrt(4000)
    # marginal var of x is 4 + 1; x_i - mu ~ N(0, 1) independently of mu
    assert abs(samples["x"][:, 0].var().item() - 5.0) < 4 * 5.0 * math.sqrt(2 / 4000)
    resid = samples["x"] - samples["mu"]
    assert abs(resid.var().item() - 1.0) < 4 * math.sqrt(2 / resid.numel())
    # parallel=True gives the same shapes
    par = Predictive(model, num_samples=10, parallel=True)(5)
    assert par["x"].shape == (10, 5)
    assert par["mu"].shape == (10, 1)


def test_predictive_with_posterior_samples():
    def model(y=None):
        mu = pyro.sample("mu", dist.Normal(0.0, 10.0))
        with pyro.plate("data", 4):
            return pyro.sample("y", dist.Normal(mu, 0.01), obs=y)

    post = {"mu": torch.tensor([1.0, 2.0, 3.0])}
    out = Predictive(model, posterior_samples=post, return_sites=["y"])()
    assert out["y"].shape == (3, 4)
    assert torch.allclose(out["y"].mean(-1), post["mu"], atol=0.05)


# --------------------------------------------------------------------------
# 8. Normalizing-flow guide
# --------------------------------------------------------------------------


@pytest.mark.slow
def test_iaf_guide_trains():
    from ember.distributions.transforms import InverseAutoregressiveFlow
    from ember.nn import AutoRegressiveNN

    pyro.set_rng_seed(5)
    cov = torch.tensor([[1.0, 0.9], [0.9, 1.0]])

    def model():
        pyro.sample("z", dist.MultivariateNormal(torch.tensor([1.0, -1.0]), cov))

    iaf = InverseAutoregressiveFlow(AutoRegressiveNN(2, [16]))

    def guide():
        pyro.module("iaf", iaf)
        base = dist.Normal(torch.zeros(2), torch.ones(2)).to_event(1)
        pyro.sample("z", dist.TransformedDistribution(base, [iaf]))

    elbo = Trace_ELBO(num_particles=16, vectorize_particles=True, max_plate_nesting=0)
    svi = SVI(model, guide, Adam({"lr": 0.02}), loss=elbo)
    losses = [svi.step() for _ in range(200)]
    first, last = sum(losses[:30]) / 30, sum(losses[-30:]) / 30
    assert last < first - 0.3, (first, last)
    # the exact -ELBO optimum is -log Z = 0; a fitted flow is close to it
    assert last < 0.3
    names = set(pyro.get_param_store().keys())
    assert names and all(n.startswith("iaf$$$") for n in names)
    assert len(names) == len(list(iaf.parameters()))


# --------------------------------------------------------------------------
# 9. Names and call forms Pyro users reach for
# --------------------------------------------------------------------------


def test_pyro_style_names_and_kwargs():
    import warnings

    def model(data=None):
        mu = pyro.sample("mu", dist.Normal(0.0, 1.0))
        with pyro.plate("data", len(data)):
            pyro.sample("x", dist.Normal(mu, 1.0), obs=data)

    def guide(data=None):
        loc = pyro.param("loc", torch.tensor(0.0))
        pyro.sample("mu", dist.Normal(loc, 0.5))

    data = torch.tensor([1.0, 2.0])
    pyro.set_rng_seed(6)
    # pyro.infer.* and pyro.optim.* paths, step(**kwargs)
    svi = pyro.infer.SVI(model, guide, pyro.optim.Adam({"lr": 0.1}), pyro.infer.Trace_ELBO())
    assert isinstance(svi.step(data=data), float)
    assert pyro.param("loc").item() != 0.0
    # differentiable_loss is a tensor one can back-propagate
    loss = pyro.infer.Trace_ELBO().differentiable_loss(model, guide, data=data)
    (grad,) = torch.autograd.grad(loss, [pyro.get_param_store().get_param("loc")])
    assert loss.dim() == 0 and torch.isfinite(grad)
    # JIT-named losses run as their plain counterparts (no compilation)
    for name, plain in [
        ("JitTrace_ELBO", pyro.infer.Trace_ELBO),
        ("JitTraceGraph_ELBO", pyro.infer.TraceGraph_ELBO),
        ("JitTraceMeanField_ELBO", pyro.infer.TraceMeanField_ELBO),
        ("JitTraceEnum_ELBO", pyro.infer.TraceEnum_ELBO),
    ]:
        with warnings.catch_warnings(record=True):
            warnings.simplefilter("always")
            elbo = getattr(pyro.infer, name)(max_plate_nesting=1)
        assert isinstance(elbo, plain)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        jit = pyro.infer.JitTrace_ELBO(num_particles=2)
    svi = pyro.infer.SVI(model, guide, pyro.optim.Adam({"lr": 0.1}), jit)
    assert math.isfinite(svi.step(data=data))
    # Importance -> EmpiricalMarginal, and Predictive returns a dict of stacked samples
    posterior = pyro.infer.Importance(model, guide=guide, num_samples=50).run(data=data)
    assert pyro.infer.EmpiricalMarginal(posterior, "mu").sample().shape == ()
    out = pyro.infer.Predictive(model, guide=guide, num_samples=7)(data=data)
    # as in Pyro: with a guide, every sample site by default (x keeps its data)
    assert set(out) == {"mu", "x"}
    assert out["mu"].shape == (7, 1)
    assert torch.equal(out["x"], data.expand(7, 2))
    out = pyro.infer.Predictive(model, guide=guide, num_samples=7, return_sites=["mu"])(data=data)
    assert out["mu"].shape == (7, 1)


def test_jit_names_are_silent():
    """As in Pyro, choosing a JIT loss warns of nothing (Pyro's own tests turn warnings
    into errors); the loss runs eagerly with the base estimator's results."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for name in ["JitTrace_ELBO", "JitTraceGraph_ELBO", "JitTraceMeanField_ELBO"]:
            getattr(pyro.infer, name)()
        pyro.infer.JitTraceEnum_ELBO(max_plate_nesting=1)
