"""poutine.collapse against closed-form marginal likelihoods.

Each model's trace log-density, with the conjugate latent collapsed, must equal
the exact log marginal likelihood of the observations, written out here by hand
(Beta functions, Gamma functions, a multivariate normal), in and out of plates,
with scaled and masked observations.
"""

import math

import pytest
import torch
from torch.special import gammaln

import ember
import ember.distributions as dist
from ember import poutine
from ember.infer import SVI, Trace_ELBO
from ember.optim import Adam

F64 = torch.float64


def lbeta(a, b):
    return gammaln(a) + gammaln(b) - gammaln(a + b)


def log_joint(model, *args):
    tr = poutine.trace(model).get_trace(*args)
    return tr, tr.log_prob_sum()


def beta_bernoulli_evidence(a, b, x):
    k = x.sum()
    return lbeta(a + k, b + x.numel() - k) - lbeta(a, b)


def test_beta_bernoulli_single_observation_becomes_its_marginal():
    a, b = torch.tensor(2.0, dtype=F64), torch.tensor(5.0, dtype=F64)

    def model():
        with poutine.collapse():
            p = ember.sample("p", dist.Beta(a, b))
            ember.sample("obs", dist.Bernoulli(p), obs=torch.tensor(1.0, dtype=F64))

    tr, logp = log_joint(model)
    assert "p" not in tr.nodes and tr.nodes["obs"]["is_observed"]
    assert logp.item() == pytest.approx(math.log(2.0 / 7.0), rel=1e-12)


@pytest.mark.parametrize("functional", [False, True])
def test_beta_bernoulli_in_a_plate_is_the_marginal_likelihood(functional):
    a, b = torch.tensor(0.7, dtype=F64), torch.tensor(1.3, dtype=F64)
    data = torch.tensor([1.0, 0.0, 1.0, 1.0, 0.0, 1.0], dtype=F64)

    def body():
        p = ember.sample("p", dist.Beta(a, b))
        with ember.plate("data", len(data)):
            ember.sample("obs", dist.Bernoulli(p), obs=data)

    if functional:
        model = poutine.collapse(body)
    else:

        def model():
            with poutine.collapse():
                body()

    tr, logp = log_joint(model)
    assert "obs" not in tr.nodes  # the observations are inside the factor named after p
    assert tr.nodes["p"]["is_observed"]
    assert logp.item() == pytest.approx(beta_bernoulli_evidence(a, b, data).item(), rel=1e-10)


def test_local_latents_in_nested_plates():
    # one Beta per group (plate g inside the context), observations in plate n
    torch.manual_seed(0)
    a = torch.tensor([0.5, 1.0, 2.0], dtype=F64)
    b = torch.tensor(1.5, dtype=F64)
    data = torch.bernoulli(torch.full((4, 3), 0.4, dtype=F64))

    def model():
        with poutine.collapse():
            with ember.plate("g", 3, dim=-1):
                p = ember.sample("p", dist.Beta(a, b))
                with ember.plate("n", 4, dim=-2):
                    ember.sample("obs", dist.Bernoulli(p), obs=data)

    tr, logp = log_joint(model)
    expected = sum(beta_bernoulli_evidence(a[g], b, data[:, g]) for g in range(3))
    assert tr.nodes["p"]["fn"].batch_shape == ()  # plates inside the context are summed
    assert logp.item() == pytest.approx(expected.item(), rel=1e-10)


def test_collapse_inside_an_enclosing_plate_keeps_that_plate():
    torch.manual_seed(1)
    a, b = torch.tensor(1.2, dtype=F64), torch.tensor(0.8, dtype=F64)
    data = torch.bernoulli(torch.full((5, 2), 0.6, dtype=F64))

    def model():
        with ember.plate("g", 2, dim=-1):
            with poutine.collapse():
                p = ember.sample("p", dist.Beta(a, b))
                with ember.plate("n", 5, dim=-2):
                    ember.sample("obs", dist.Bernoulli(p), obs=data)

    tr, logp = log_joint(model)
    tr.compute_log_prob()
    site = tr.nodes["p"]
    assert [f.name for f in site["cond_indep_stack"]] == ["g"]
    expected = torch.stack([beta_bernoulli_evidence(a, b, data[:, g]) for g in range(2)])
    assert torch.allclose(site["log_prob"], expected, rtol=1e-10)
    assert logp.item() == pytest.approx(expected.sum().item(), rel=1e-10)


def test_beta_binomial_matches_betabinomial_values_and_gradients():
    def collapsed():
        c1 = ember.param("c1", torch.tensor(0.5), constraint=dist.constraints.positive)
        c0 = ember.param("c0", torch.tensor(1.5), constraint=dist.constraints.positive)
        with poutine.collapse():
            p = ember.sample("probs", dist.Beta(c1, c0))
            ember.sample("obs", dist.Binomial(10, p), obs=torch.tensor(3.0))

    def explicit():
        c1 = ember.param("c1", torch.tensor(0.5), constraint=dist.constraints.positive)
        c0 = ember.param("c0", torch.tensor(1.5), constraint=dist.constraints.positive)
        ember.sample("obs", dist.BetaBinomial(c1, c0, 10), obs=torch.tensor(3.0))

    ember.clear_param_store()
    _, lp1 = log_joint(collapsed)
    _, lp2 = log_joint(explicit)
    assert lp1.item() == pytest.approx(lp2.item(), rel=1e-6)
    params = [ember.param("c1").unconstrained(), ember.param("c0").unconstrained()]
    g1 = torch.autograd.grad(lp1, params)
    g2 = torch.autograd.grad(lp2, params)
    for x, y in zip(g1, g2):
        assert x.item() == pytest.approx(y.item(), rel=1e-5)
    ember.clear_param_store()


def test_beta_binomial_in_a_plate():
    a, b = torch.tensor(2.0, dtype=F64), torch.tensor(3.0, dtype=F64)
    n = torch.tensor([10.0, 4.0, 7.0], dtype=F64)
    x = torch.tensor([3.0, 4.0, 0.0], dtype=F64)

    def model():
        with poutine.collapse():
            p = ember.sample("p", dist.Beta(a, b))
            with ember.plate("data", 3):
                ember.sample("obs", dist.Binomial(n, p), obs=x)

    _, logp = log_joint(model)
    log_choose = gammaln(n + 1) - gammaln(x + 1) - gammaln(n - x + 1)
    expected = log_choose.sum() + lbeta(a + x.sum(), b + (n - x).sum()) - lbeta(a, b)
    assert logp.item() == pytest.approx(expected.item(), rel=1e-10)


def test_gamma_poisson_and_gamma_exponential():
    alpha, beta = torch.tensor(2.5, dtype=F64), torch.tensor(1.5, dtype=F64)
    counts = torch.tensor([0.0, 3.0, 1.0, 4.0], dtype=F64)
    times = torch.tensor([0.3, 1.7, 0.2], dtype=F64)

    def model():
        with poutine.collapse():
            rate = ember.sample("rate", dist.Gamma(alpha, beta))
            with ember.plate("counts", 4):
                ember.sample("c", dist.Poisson(rate), obs=counts)
            lam = ember.sample("lam", dist.Gamma(alpha, beta))
            with ember.plate("times", 3):
                ember.sample("t", dist.Exponential(lam), obs=times)

    _, logp = log_joint(model)
    s, n = counts.sum(), counts.numel()
    poisson = (
        -gammaln(counts + 1).sum()
        + alpha * beta.log()
        - gammaln(alpha)
        + gammaln(alpha + s)
        - (alpha + s) * (beta + n).log()
    )
    m = times.numel()
    exponential = (
        alpha * beta.log()
        - gammaln(alpha)
        + gammaln(alpha + m)
        - (alpha + m) * (beta + times.sum()).log()
    )
    assert logp.item() == pytest.approx((poisson + exponential).item(), rel=1e-10)


def test_gamma_poisson_single_observation_is_gamma_poisson():
    def model():
        with poutine.collapse():
            rate = ember.sample("rate", dist.Gamma(3.0, 2.0))
            ember.sample("c", dist.Poisson(rate), obs=torch.tensor(2.0))

    tr, logp = log_joint(model)
    assert isinstance(tr.nodes["c"]["fn"], dist.GammaPoisson)
    expected = dist.GammaPoisson(3.0, 2.0).log_prob(torch.tensor(2.0))
    assert logp.item() == pytest.approx(expected.item(), rel=1e-6)


@pytest.mark.parametrize("n", [1, 5])
def test_normal_normal_is_the_joint_gaussian(n):
    torch.manual_seed(n)
    mu0, s0 = torch.tensor(0.3, dtype=F64), torch.tensor(1.7, dtype=F64)
    scales = torch.rand(n, dtype=F64) + 0.5
    data = torch.randn(n, dtype=F64)

    def model():
        with poutine.collapse():
            y = ember.sample("y", dist.Normal(mu0, s0))
            with ember.plate("data", n):
                ember.sample("z", dist.Normal(y, scales), obs=data)

    _, logp = log_joint(model)
    cov = torch.diag(scales**2) + s0**2 * torch.ones(n, n, dtype=F64)
    mvn = torch.distributions.MultivariateNormal(mu0.expand(n), covariance_matrix=cov)
    assert logp.item() == pytest.approx(mvn.log_prob(data).item(), rel=1e-10)


def test_dirichlet_categorical_and_multinomial():
    c = torch.tensor([0.5, 1.0, 2.0], dtype=F64)
    draws = torch.tensor([0, 2, 2, 1, 2])
    counts = torch.tensor([3.0, 0.0, 4.0], dtype=F64)

    def model():
        with poutine.collapse():
            p = ember.sample("p", dist.Dirichlet(c))
            with ember.plate("draws", 5):
                ember.sample("x", dist.Categorical(probs=p), obs=draws)
            q = ember.sample("q", dist.Dirichlet(c))
            ember.sample("m", dist.Multinomial(7, probs=q), obs=counts)

    tr, logp = log_joint(model)
    assert isinstance(tr.nodes["m"]["fn"], dist.DirichletMultinomial)
    nk = torch.bincount(draws, minlength=3).to(F64)
    categorical = gammaln(c.sum()) - gammaln(c.sum() + 5) + (gammaln(c + nk) - gammaln(c)).sum()
    multinomial = dist.DirichletMultinomial(c, 7).log_prob(counts)
    assert logp.item() == pytest.approx((categorical + multinomial).item(), rel=1e-10)


def test_scaled_and_masked_observations():
    a, b = torch.tensor(1.5, dtype=F64), torch.tensor(2.5, dtype=F64)
    data = torch.tensor([1.0, 1.0, 0.0, 1.0], dtype=F64)
    mask = torch.tensor([True, False, True, True])

    def model():
        with poutine.collapse():
            p = ember.sample("p", dist.Beta(a, b))
            with ember.plate("data", 4), poutine.scale(scale=2.0), poutine.mask(mask=mask):
                ember.sample("obs", dist.Bernoulli(p), obs=data)

    _, logp = log_joint(model)
    # the likelihood of each kept observation is squared: counts double
    kept = data[mask]
    k = kept.sum()
    expected = lbeta(a + 2 * k, b + 2 * (kept.numel() - k)) - lbeta(a, b)
    assert logp.item() == pytest.approx(expected.item(), rel=1e-10)


def test_elbo_equals_the_explicitly_marginalized_model():
    data = torch.tensor([0.0, 1.0, 5.0, 5.0])

    def collapsed():
        c = ember.sample("c", dist.Gamma(1.0, 1.0))
        with poutine.collapse():
            probs = ember.sample("probs", dist.Beta(c, 2.0))
            with ember.plate("plate", len(data)):
                ember.sample("obs", dist.Binomial(10, probs), obs=data)

    def explicit():
        c = ember.sample("c", dist.Gamma(1.0, 1.0))
        k, n = data.sum(), 10.0 * len(data)
        log_choose = gammaln(torch.tensor(11.0)) - gammaln(data + 1) - gammaln(11.0 - data)
        ember.factor(
            "marginal", log_choose.sum() + lbeta(c + k, 2.0 + n - k) - lbeta(c, torch.tensor(2.0))
        )

    def guide():
        a = ember.param("a", torch.tensor(1.0), constraint=dist.constraints.positive)
        ember.sample("c", dist.Gamma(a, 1.0))

    losses = []
    for model in (collapsed, explicit):
        ember.clear_param_store()
        ember.set_rng_seed(0)
        svi = SVI(model, guide, Adam({"lr": 0.01}), Trace_ELBO(num_particles=3))
        losses.append([svi.step() for _ in range(3)])
    assert losses[0] == pytest.approx(losses[1], rel=1e-5)
    ember.clear_param_store()


def test_unsupported_models_raise_clear_errors():
    def non_conjugate():
        with poutine.collapse():
            p = ember.sample("p", dist.Beta(1.0, 1.0))
            ember.sample("x", dist.Normal(p, 1.0), obs=torch.tensor(0.0))

    with pytest.raises(ValueError, match="'x'.*not a supported conjugate pair.*Beta -> "):
        poutine.trace(non_conjugate).get_trace()

    def unsupported_latent():
        with poutine.collapse():
            ember.sample("s", dist.LogNormal(0.0, 1.0))

    with pytest.raises(ValueError, match="latent site 's' with distribution LogNormal"):
        poutine.trace(unsupported_latent).get_trace()

    def chain():
        with poutine.collapse():
            y = ember.sample("y", dist.Normal(0.0, 1.0))
            z = ember.sample("z", dist.Normal(y, 1.0))
            ember.sample("x", dist.Normal(z, 1.0), obs=torch.tensor(0.0))

    with pytest.raises(ValueError, match="'z' takes the collapsed latent 'y'.*chains"):
        poutine.trace(chain).get_trace()

    def transformed():
        with poutine.collapse():
            p = ember.sample("p", dist.Beta(1.0, 1.0))
            ember.sample("x", dist.Bernoulli(p * 0.5), obs=torch.tensor(0.0))

    with pytest.raises(ValueError, match="observed site 'x' does not take a collapsed latent"):
        poutine.trace(transformed).get_trace()

    def unused():
        with poutine.collapse():
            ember.sample("p", dist.Beta(1.0, 1.0))

    with pytest.raises(ValueError, match="'p' has no observed site"):
        poutine.trace(unused).get_trace()


def test_placeholder_is_nan_after_the_context():
    def model():
        with poutine.collapse():
            p = ember.sample("p", dist.Beta(2.0, 2.0))
            ember.sample("x", dist.Bernoulli(p), obs=torch.tensor(1.0))
        return p

    assert torch.isnan(poutine.trace(model).get_trace().nodes["_RETURN"]["value"])


def test_single_child_in_an_enclosing_plate_keeps_its_name_and_plate():
    a, b = torch.tensor([1.0, 2.0, 3.0], dtype=F64), torch.tensor(2.0, dtype=F64)
    x = torch.tensor([0.0, 4.0, 9.0], dtype=F64)

    def model():
        with ember.plate("g", 3):
            with poutine.collapse():
                p = ember.sample("p", dist.Beta(a, b))
                ember.sample("obs", dist.Binomial(9, p), obs=x)

    tr, logp = log_joint(model)
    site = tr.nodes["obs"]
    assert isinstance(site["fn"], dist.BetaBinomial) and "p" not in tr.nodes
    assert [f.name for f in site["cond_indep_stack"]] == ["g"]
    log_choose = gammaln(torch.tensor(10.0, dtype=F64)) - gammaln(x + 1) - gammaln(10.0 - x)
    expected = (log_choose + lbeta(a + x, b + 9 - x) - lbeta(a, b)).sum()
    assert logp.item() == pytest.approx(expected.item(), rel=1e-10)


def test_categorical_with_other_probs_is_rejected():
    def model():
        with poutine.collapse():
            p = ember.sample("p", dist.Dirichlet(torch.ones(3)))
            ember.sample("x", dist.Categorical(probs=p), obs=torch.tensor(1))
            ember.sample("y", dist.Categorical(probs=p.pow(2)), obs=torch.tensor(1))

    with pytest.raises(ValueError, match="observed site 'y' does not take a collapsed latent"):
        poutine.trace(model).get_trace()
