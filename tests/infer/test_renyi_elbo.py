"""RenyiELBO against direct computations of the bound, brute force and finite differences."""

import itertools
import math

import numpy as np
import pytest
import torch
from scipy import integrate, stats
from scipy.special import logsumexp

import ember
import ember.distributions as dist
from ember.distributions import constraints
from ember.distributions.testing import fakes
from ember.infer import SVI, RenyiELBO, Trace_ELBO
from ember.optim import Adam

DATA = torch.tensor([0.3, -1.2, 0.8], dtype=torch.float64)


def global_model(data):
    z = ember.sample("z", dist.Normal(torch.tensor(0.0, dtype=torch.float64), 1.0))
    with ember.plate("data", len(data)):
        ember.sample("x", dist.Normal(z, 1.0), obs=data)


def make_global_guide(captured, reparam=True):
    def guide(data):
        loc = ember.param("loc", torch.tensor(0.3, dtype=torch.float64))
        scale = ember.param(
            "scale", torch.tensor(0.8, dtype=torch.float64), constraint=constraints.positive
        )
        fn = dist.Normal if reparam else fakes.NonreparameterizedNormal
        z = ember.sample("z", fn(loc, scale))
        captured.append(z.detach().clone())

    return guide


def local_model(data):
    with ember.plate("data", len(data)):
        z = ember.sample("z", dist.Normal(torch.tensor(0.0, dtype=torch.float64), 1.0))
        ember.sample("x", dist.Normal(z, 1.0), obs=data)


def make_local_guide(captured):
    def guide(data):
        loc = ember.param("loc", torch.tensor([0.1, -0.4, 0.5], dtype=torch.float64))
        scale = ember.param(
            "scale",
            torch.tensor([0.9, 0.6, 0.7], dtype=torch.float64),
            constraint=constraints.positive,
        )
        with ember.plate("data", len(data)):
            z = ember.sample("z", dist.Normal(loc, scale))
        captured.append(z.detach().clone())

    return guide


def particles(captured, num_particles, vectorized, event_shape=()):
    """The captured guide values as an array with the particles first."""
    if vectorized:  # (the last run: a first one may have found the plate nesting)
        z = captured[-1]
        return z.reshape((num_particles,) + event_shape).numpy()
    return torch.stack(captured).reshape((num_particles,) + event_shape).numpy()


def renyi_bound(log_w, alpha):
    """1/(1-alpha) log mean_k exp((1-alpha) log w_k), over axis 0, summed over the rest."""
    k = log_w.shape[0]
    return float(np.sum((logsumexp((1 - alpha) * log_w, axis=0) - math.log(k)) / (1 - alpha)))


def global_log_weights(z):
    x = DATA.numpy()
    log_p = stats.norm.logpdf(z, 0, 1) + stats.norm.logpdf(x[None, :], z[:, None], 1).sum(-1)
    log_q = stats.norm.logpdf(z, 0.3, 0.8)
    return log_p - log_q


@pytest.mark.parametrize("vectorized", [False, True])
@pytest.mark.parametrize("alpha", [0.0, 0.5, -0.7, 2.5])
def test_loss_equals_direct_bound_global_latent(alpha, vectorized):
    ember.clear_param_store()
    ember.set_rng_seed(3)
    captured = []
    k = 6
    elbo = RenyiELBO(alpha=alpha, num_particles=k, vectorize_particles=vectorized)
    loss = elbo.loss(global_model, make_global_guide(captured), DATA)
    z = particles(captured, k, vectorized)
    expected = -renyi_bound(global_log_weights(z), alpha)
    assert loss == pytest.approx(expected, rel=1e-10, abs=1e-10)


@pytest.mark.parametrize("vectorized", [False, True])
@pytest.mark.parametrize("alpha", [0.0, 0.3])
def test_loss_is_per_element_bound_in_shared_plate(alpha, vectorized):
    # every site sits in the data plate: the bound is formed per data point, then summed
    ember.clear_param_store()
    ember.set_rng_seed(4)
    captured = []
    k = 5
    elbo = RenyiELBO(alpha=alpha, num_particles=k, vectorize_particles=vectorized)
    loss = elbo.loss(local_model, make_local_guide(captured), DATA)
    z = particles(captured, k, vectorized, (3,))
    x = DATA.numpy()
    loc, scale = np.array([0.1, -0.4, 0.5]), np.array([0.9, 0.6, 0.7])
    log_w = (
        stats.norm.logpdf(z, 0, 1) + stats.norm.logpdf(x, z, 1) - stats.norm.logpdf(z, loc, scale)
    )
    assert log_w.shape == (k, 3)
    expected = -renyi_bound(log_w, alpha)
    assert loss == pytest.approx(expected, rel=1e-10, abs=1e-10)
    # (a single bound over the whole plate would differ)
    assert abs(loss + renyi_bound(log_w.sum(1), alpha)) > 1e-3


@pytest.mark.parametrize("alpha", [0.0, 0.5, 3.0])
def test_exact_posterior_guide_gives_log_evidence(alpha):
    # guide = exact posterior N(x/2, 1/2) per element: every weight is p(x_i) = N(x_i; 0, 2)
    def guide(data):
        with ember.plate("data", len(data)):
            ember.sample("z", dist.Normal(data / 2, 0.5**0.5))

    loss = RenyiELBO(alpha=alpha, num_particles=4, vectorize_particles=True).loss(
        local_model, guide, DATA
    )
    expected = -stats.norm.logpdf(DATA.numpy(), 0, 2**0.5).sum()
    assert loss == pytest.approx(expected, rel=1e-9)


def test_alpha_near_one_equals_trace_elbo():
    # L_alpha = mean log w + (1 - alpha)/2 Var(log w) + O((1 - alpha)^2): the same particles
    k = 8
    ember.clear_param_store()
    ember.set_rng_seed(11)
    cap_r = []
    renyi = RenyiELBO(alpha=0.999, num_particles=k)
    loss_r = renyi.loss_and_grads(global_model, make_global_guide(cap_r), DATA)
    grads_r = [ember.param(n).unconstrained().grad.clone() for n in ("loc", "scale")]
    ember.clear_param_store()
    ember.set_rng_seed(11)
    cap_t = []
    loss_t = Trace_ELBO(num_particles=k).loss_and_grads(
        global_model, make_global_guide(cap_t), DATA
    )
    grads_t = [ember.param(n).unconstrained().grad.clone() for n in ("loc", "scale")]
    assert torch.equal(torch.stack(cap_r), torch.stack(cap_t))  # same particles
    log_w = global_log_weights(torch.stack(cap_r).numpy())
    assert loss_t == pytest.approx(-log_w.mean(), rel=1e-10)
    bound = 0.0005 * log_w.var() * 1.5 + 1e-9
    assert abs(loss_r - loss_t) < bound
    for g_r, g_t in zip(grads_r, grads_t):
        assert torch.allclose(g_r, g_t, rtol=0.01, atol=1e-3)


@pytest.mark.parametrize("vectorized", [False, True])
@pytest.mark.parametrize("alpha", [0.0, 0.4, -1.0])
@pytest.mark.parametrize("which", ["global", "local"])
def test_gradient_equals_finite_differences(which, alpha, vectorized):
    # reparameterized guide: with the same noise the loss is a smooth function of the params
    model = global_model if which == "global" else local_model
    make_guide = make_global_guide if which == "global" else make_local_guide
    # (max_plate_nesting given: no tracing run to find it draws extra random numbers)
    elbo = RenyiELBO(
        alpha=alpha, num_particles=4, vectorize_particles=vectorized, max_plate_nesting=1
    )
    ember.clear_param_store()
    ember.set_rng_seed(5)
    guide = make_guide([])
    elbo.loss_and_grads(model, guide, DATA)
    store = ember.get_param_store()
    for name in ("loc", "scale"):
        p = store[name].unconstrained()
        grad = p.grad.clone()
        base = p.detach().clone()
        eps = 1e-6
        for i in range(base.numel()):
            vals = []
            for sign in (1, -1):
                with torch.no_grad():
                    p.copy_(base)
                    p.view(-1)[i] += sign * eps
                ember.set_rng_seed(5)
                vals.append(elbo.loss(model, guide, DATA))
            fd = (vals[0] - vals[1]) / (2 * eps)
            assert grad.view(-1)[i].item() == pytest.approx(fd, rel=1e-5, abs=1e-7), (name, i)
        with torch.no_grad():
            p.copy_(base)


@pytest.mark.parametrize("vectorized", [False, True])
@pytest.mark.parametrize("alpha", [0.0, 0.5, -0.5])
def test_score_function_gradient_is_self_normalized_estimate(alpha, vectorized):
    # non-reparameterized guide: grad = -sum_k wbar_k alpha/(1-alpha) grad log q(z_k)
    ember.clear_param_store()
    ember.set_rng_seed(8)
    captured = []
    k = 5
    guide = make_global_guide(captured, reparam=False)
    RenyiELBO(alpha=alpha, num_particles=k, vectorize_particles=vectorized).loss_and_grads(
        global_model, guide, DATA
    )
    store = ember.get_param_store()
    loc_u, scale_u = store["loc"].unconstrained(), store["scale"].unconstrained()
    got = torch.stack([loc_u.grad, scale_u.grad])
    z = torch.as_tensor(particles(captured, k, vectorized))
    log_w = torch.as_tensor(global_log_weights(z.numpy()))
    wbar = torch.softmax((1 - alpha) * log_w, 0)
    loc = loc_u.detach().requires_grad_()
    log_scale = scale_u.detach().requires_grad_()  # positive: unconstrained = log
    log_q = torch.distributions.Normal(loc, log_scale.exp()).log_prob(z)
    surrogate = -(wbar * (alpha / (1 - alpha)) * log_q).sum()
    expected = torch.stack(torch.autograd.grad(surrogate, [loc, log_scale]))
    assert torch.allclose(got, expected, rtol=1e-9, atol=1e-12)


def test_expected_iwae_bound_by_brute_force():
    # discrete latent: E[L] over all K-tuples of particles, against the Monte Carlo mean
    prior = torch.tensor([0.2, 0.5, 0.3])
    q = torch.tensor([0.5, 0.2, 0.3])
    mu = torch.tensor([-1.0, 0.0, 2.0])
    x = torch.tensor(0.7)
    alpha, k = 0.0, 3

    def model():
        z = ember.sample("z", dist.Categorical(prior))
        ember.sample("x", dist.Normal(mu[z], 1.0), obs=x)

    def guide():
        ember.sample("z", dist.Categorical(q))

    log_w = (prior.log() + dist.Normal(mu, 1.0).log_prob(x) - q.log()).double()
    values, probs = [], []
    for tup in itertools.product(range(3), repeat=k):
        lw = log_w[list(tup)]
        values.append(float(torch.logsumexp(lw, 0) - math.log(k)))
        probs.append(float(q[list(tup)].double().prod()))
    values, probs = np.array(values), np.array(probs)
    mean = float((probs * values).sum())
    sd = float(np.sqrt((probs * (values - mean) ** 2).sum()))
    ember.set_rng_seed(0)
    elbo = RenyiELBO(alpha=alpha, num_particles=k, vectorize_particles=True)
    m = 2000
    draws = np.array([-elbo.loss(model, guide) for _ in range(m)])
    assert abs(draws.mean() - mean) < 4 * sd / math.sqrt(m)
    # the expected bound lies below log p(x) and above the ELBO
    log_px = float(torch.logsumexp(log_w + q.double().log(), 0))
    elbo_value = float((q.double() * log_w).sum())
    assert elbo_value < mean < log_px


def test_svi_with_renyi_finds_posterior():
    # z ~ N(0, 1), x_i ~ N(z, 1): the posterior N(sum x / (n + 1), 1 / (n + 1)) maximizes the bound
    ember.clear_param_store()
    ember.set_rng_seed(0)
    data = DATA.float()

    def model():
        z = ember.sample("z", dist.Normal(0.0, 1.0))
        with ember.plate("data", 3):
            ember.sample("x", dist.Normal(z, 1.0), obs=data)

    def guide():
        loc = ember.param("loc", torch.tensor(1.0))
        scale = ember.param("scale", torch.tensor(1.0), constraint=constraints.positive)
        ember.sample("z", dist.Normal(loc, scale))

    svi = SVI(
        model, guide, Adam({"lr": 0.02}), RenyiELBO(num_particles=10, vectorize_particles=True)
    )
    for _ in range(1500):
        svi.step()
    assert ember.param("loc").item() == pytest.approx(data.sum().item() / 4, abs=0.05)
    assert ember.param("scale").item() == pytest.approx(0.5, abs=0.05)


def test_bad_alpha():
    with pytest.raises(ValueError, match="alpha"):
        RenyiELBO(alpha=1)
    with pytest.raises(TypeError, match="alpha"):
        RenyiELBO(alpha="0.5")


def test_partly_reparameterized_site_is_an_error():
    def model():
        ember.sample("z", dist.Normal(0.0, 1.0))

    class PartlyReparam(dist.Normal):
        def score_parts(self, value):
            lp = self.log_prob(value)
            return dist.ScoreParts(lp, lp, lp)

    def guide():
        loc = ember.param("loc_partly", torch.tensor(0.0))
        ember.sample("z", PartlyReparam(loc, 1.0))

    with pytest.raises(NotImplementedError, match="partly reparameterized"):
        RenyiELBO().loss_and_grads(model, guide)


@pytest.mark.parametrize("alpha", [0.5, -1.0])
def test_many_particles_approach_exact_renyi_bound_by_quadrature(alpha):
    # K -> inf: L_alpha -> 1/(1-alpha) log E_q[w^(1-alpha)] = log p(x) - D_alpha(q || p(z | x))
    x = DATA.numpy()
    loc, scale = 0.3, 0.8

    def log_w(z):
        return (
            stats.norm.logpdf(z, 0, 1)
            + stats.norm.logpdf(x, z, 1).sum()
            - stats.norm.logpdf(z, loc, scale)
        )

    def moment(power):  # E_q[w^power] by quadrature
        f = lambda z: math.exp(power * log_w(z) + stats.norm.logpdf(z, loc, scale))  # noqa: E731
        return integrate.quad(f, -12, 12, epsabs=1e-14, epsrel=1e-12)[0]

    m1, m2 = moment(1 - alpha), moment(2 * (1 - alpha))
    exact = math.log(m1) / (1 - alpha)
    k = 40000
    # delta method: sd of log(mean w^(1-alpha)) / (1 - alpha); bias O(1/K) is far smaller
    se = math.sqrt((m2 - m1**2) / k) / m1 / abs(1 - alpha)
    ember.clear_param_store()
    ember.set_rng_seed(12)
    loss = RenyiELBO(alpha=alpha, num_particles=k, vectorize_particles=True).loss(
        global_model, make_global_guide([]), DATA
    )
    assert abs(-loss - exact) < 4 * se
    # and the bound lies between the ELBO and log p(x) for alpha in (0, 1)
    if 0 < alpha < 1:
        log_px = stats.multivariate_normal.logpdf(x, np.zeros(3), np.eye(3) + np.ones((3, 3)))
        assert exact < log_px
