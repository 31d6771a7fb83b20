"""Trace_ELBO and TraceMeanField_ELBO: values and gradients against closed forms."""

import math

import pytest
import torch

import ember
import ember.distributions as dist
from ember.infer import Trace_ELBO, TraceMeanField_ELBO

X0 = 1.3


def normal_model():
    z = ember.sample("z", dist.Normal(0.0, 1.0))
    ember.sample("x", dist.Normal(z, 1.0), obs=torch.tensor(X0))


def make_normal_guide(m, s):
    def guide():
        ember.sample("z", dist.Normal(m, s))

    return guide


def analytic_normal_elbo(m, s):
    # E_q[log N(z;0,1) + log N(x0;z,1)] + H[q] for q = N(m, s)
    e_prior = -0.5 * math.log(2 * math.pi) - 0.5 * (m**2 + s**2)
    e_lik = -0.5 * math.log(2 * math.pi) - 0.5 * ((X0 - m) ** 2 + s**2)
    entropy = 0.5 * torch.log(2 * math.pi * math.e * s**2)
    return e_prior + e_lik + entropy


def _mean_and_se(samples):
    samples = torch.stack(samples)
    return samples.mean(0), samples.std(0) / math.sqrt(samples.shape[0])


@pytest.mark.parametrize("elbo_cls", [Trace_ELBO, TraceMeanField_ELBO])
def test_loss_is_unbiased_for_analytic_elbo(elbo_cls):
    ember.set_rng_seed(0)
    m, s = torch.tensor(0.4), torch.tensor(0.7)
    elbo = elbo_cls(num_particles=500, vectorize_particles=True, max_plate_nesting=0)
    estimates = [torch.tensor(elbo.loss(normal_model, make_normal_guide(m, s))) for _ in range(20)]
    mean, se = _mean_and_se(estimates)
    expected = -analytic_normal_elbo(m, s)
    assert abs(mean - expected) < 4 * se + 1e-6


@pytest.mark.parametrize("elbo_cls", [Trace_ELBO, TraceMeanField_ELBO])
def test_reparameterized_gradient_is_unbiased(elbo_cls):
    ember.set_rng_seed(1)
    m = torch.tensor(0.4, requires_grad=True)
    s = torch.tensor(0.7, requires_grad=True)
    (-analytic_normal_elbo(m, s)).backward()
    expected = torch.stack([m.grad, s.grad])
    elbo = elbo_cls(num_particles=200, vectorize_particles=True)  # max_plate_nesting guessed
    grads = []
    for _ in range(30):
        m.grad = s.grad = None
        elbo.loss_and_grads(normal_model, make_normal_guide(m, s))
        grads.append(torch.stack([m.grad, s.grad]))
    assert elbo.max_plate_nesting == 0
    mean, se = _mean_and_se(grads)
    assert ((mean - expected).abs() < 4 * se + 1e-6).all(), (mean, expected, se)


def bern_model():
    z = ember.sample("z", dist.Bernoulli(0.3))
    ember.sample("x", dist.Normal(2.0 * z, 1.0), obs=torch.tensor(1.5))


def bern_guide(p):
    def guide():
        ember.sample("z", dist.Bernoulli(p))

    return guide


def exact_bern_elbo(p):
    total = 0.0
    for z in (0.0, 1.0):
        zt = torch.tensor(z)
        q = dist.Bernoulli(p).log_prob(zt)
        joint = dist.Bernoulli(0.3).log_prob(zt) + dist.Normal(2.0 * zt, 1.0).log_prob(
            torch.tensor(1.5)
        )
        total = total + q.exp() * (joint - q)
    return total


def test_score_function_gradient_is_unbiased():
    ember.set_rng_seed(2)
    p = torch.tensor(0.6, requires_grad=True)
    (-exact_bern_elbo(p)).backward()
    expected = p.grad.clone()
    elbo = Trace_ELBO(num_particles=500, vectorize_particles=True, max_plate_nesting=0)
    grads = []
    for _ in range(30):
        p.grad = None
        elbo.loss_and_grads(bern_model, bern_guide(p))
        grads.append(p.grad.clone())
    mean, se = _mean_and_se(grads)
    assert abs(mean - expected) < 4 * se + 1e-6, (mean, expected, se)


def test_sequential_particles_agree_with_vectorized():
    p = torch.tensor(0.6)
    ember.set_rng_seed(3)
    seq = [Trace_ELBO(num_particles=50).loss(bern_model, bern_guide(p)) for _ in range(20)]
    vec_elbo = Trace_ELBO(num_particles=50, vectorize_particles=True, max_plate_nesting=0)
    vec = [vec_elbo.loss(bern_model, bern_guide(p)) for _ in range(20)]
    exact = -exact_bern_elbo(p).item()
    for est in (seq, vec):
        mean, se = _mean_and_se([torch.tensor(e) for e in est])
        assert abs(mean - exact) < 4 * se + 1e-6


def test_loss_returns_float_and_exact_for_perfect_guide():
    # the guide equals the posterior: log p(x, z) - log q(z) = log p(x) for every z
    post_var = 0.5
    post_mean = X0 * post_var
    guide = make_normal_guide(torch.tensor(post_mean), torch.tensor(post_var).sqrt())
    loss = Trace_ELBO(num_particles=3).loss(normal_model, guide)
    assert isinstance(loss, float)
    log_evidence = dist.Normal(0.0, math.sqrt(2.0)).log_prob(torch.tensor(X0)).item()
    assert loss == pytest.approx(-log_evidence, abs=1e-5)


def test_missing_guide_site_is_an_error_naming_it():
    def model():
        ember.sample("a", dist.Normal(0.0, 1.0))
        ember.sample("b", dist.Normal(0.0, 1.0))

    def guide():
        ember.sample("a", dist.Normal(0.0, 1.0))

    with pytest.raises(ValueError, match="'b'"):
        Trace_ELBO().loss(model, guide)


def test_observed_model_site_sampled_by_guide_is_an_error():
    def model():
        ember.sample("a", dist.Normal(0.0, 1.0), obs=torch.tensor(0.0))

    def guide():
        ember.sample("a", dist.Normal(0.0, 1.0))

    with pytest.raises(ValueError, match="'a'"):
        Trace_ELBO().loss(model, guide)


def test_plate_shape_error_names_site():
    def model():
        ember.sample("z", dist.Normal(torch.zeros(3), 1.0))  # batch dim without a plate

    def guide():
        ember.sample("z", dist.Normal(torch.zeros(3), 1.0))

    with pytest.raises(ValueError, match="'z'"):
        Trace_ELBO().loss(model, guide)


def test_vectorized_particles_with_plates_guess_nesting():
    data = torch.tensor([0.5, -0.2, 1.0])

    def model():
        loc = ember.sample("loc", dist.Normal(0.0, 1.0))
        with ember.plate("data", 3):
            ember.sample("x", dist.Normal(loc, 1.0), obs=data)

    def guide():
        ember.sample("loc", dist.Normal(0.3, 0.5))

    ember.set_rng_seed(4)
    elbo = Trace_ELBO(num_particles=2000, vectorize_particles=True)
    est = elbo.loss(model, guide)
    assert elbo.max_plate_nesting == 1
    m, s = 0.3, 0.5
    exact = (
        -0.5 * math.log(2 * math.pi)
        - 0.5 * (m**2 + s**2)
        + sum(-0.5 * math.log(2 * math.pi) - 0.5 * ((x - m) ** 2 + s**2) for x in data.tolist())
        + 0.5 * math.log(2 * math.pi * math.e * s**2)
    )
    # per-particle sd is about sqrt(4 * s^2 * (...)) < 3; 2000 particles -> se < 0.07
    assert est == pytest.approx(-exact, abs=0.3)


def test_mean_field_uses_analytic_kl():
    # no observations: the loss is exactly KL(q || p), with zero variance
    def model():
        with ember.plate("p", 2):
            ember.sample("z", dist.Normal(0.0, 2.0))

    def guide():
        with ember.plate("p", 2):
            ember.sample("z", dist.Normal(torch.tensor([1.0, -1.0]), 1.0))

    loss = TraceMeanField_ELBO().loss(model, guide)
    kl = dist.kl_divergence(dist.Normal(torch.tensor([1.0, -1.0]), 1.0), dist.Normal(0.0, 2.0))
    assert loss == pytest.approx(kl.sum().item(), abs=1e-5)


def test_differentiable_loss_and_elbo_module():
    m = torch.tensor(0.4, requires_grad=True)
    s = torch.tensor(0.7)
    ember.set_rng_seed(5)
    loss = Trace_ELBO().differentiable_loss(normal_model, make_normal_guide(m, s))
    (grad,) = torch.autograd.grad(loss, [m])
    assert torch.isfinite(grad)
    module = Trace_ELBO()(normal_model, make_normal_guide(m, s))
    assert isinstance(module, torch.nn.Module) and module().requires_grad


def test_bad_arguments():
    with pytest.raises(ValueError, match="num_particles"):
        Trace_ELBO(num_particles=0)
    with pytest.raises(ValueError, match="max_plate_nesting"):
        Trace_ELBO(max_plate_nesting=-1)


def test_differentiable_loss_agrees_with_loss_and_grads():
    # same seed, same particles: the same value and the same gradient
    m = torch.tensor(0.4, requires_grad=True)
    s = torch.tensor(0.7, requires_grad=True)
    p = torch.tensor(0.6, requires_grad=True)

    def model():
        normal_model()
        b = ember.sample("b", dist.Bernoulli(0.3))
        ember.sample("y", dist.Normal(2.0 * b, 1.0), obs=torch.tensor(1.5))

    def guide():
        make_normal_guide(m, s)()
        ember.sample("b", dist.Bernoulli(p))

    elbo = Trace_ELBO(num_particles=4, vectorize_particles=True, max_plate_nesting=0)
    ember.set_rng_seed(6)
    value = elbo.loss_and_grads(model, guide)
    grads = [m.grad.clone(), s.grad.clone(), p.grad.clone()]
    ember.set_rng_seed(6)
    loss = elbo.differentiable_loss(model, guide)
    assert isinstance(loss, torch.Tensor) and loss.item() == pytest.approx(value, abs=1e-6)
    for got, want in zip(torch.autograd.grad(loss, [m, s, p]), grads):
        torch.testing.assert_close(got, want)


LOCAL_X = torch.tensor([0.5, -1.0, 2.0])


def local_model():
    with ember.plate("data", 3):
        z = ember.sample("z", dist.Normal(0.0, 1.0))
        ember.sample("x", dist.Normal(z, 1.0), obs=LOCAL_X)


def local_guide():
    with ember.plate("data", 3):
        ember.sample("z", dist.Normal(0.5 * LOCAL_X, 0.8))


def exact_local_elbo():
    total = 0.0
    for x in LOCAL_X.tolist():
        m, s = 0.5 * x, 0.8
        total += (
            -math.log(2 * math.pi)
            - 0.5 * (m**2 + s**2)
            - 0.5 * ((x - m) ** 2 + s**2)
            + 0.5 * math.log(2 * math.pi * math.e * s**2)
        )
    return total


@pytest.mark.parametrize("elbo_cls", [Trace_ELBO, TraceMeanField_ELBO])
@pytest.mark.parametrize("vectorize", [False, True])
def test_local_latents_with_particles(elbo_cls, vectorize):
    # particles go left of the data plate (dim -2); each estimate averages them
    ember.set_rng_seed(7)
    elbo = elbo_cls(num_particles=40, vectorize_particles=vectorize, max_plate_nesting=1)
    estimates = torch.tensor([elbo.loss(local_model, local_guide) for _ in range(20)])
    mean, se = estimates.mean(), estimates.std() / math.sqrt(len(estimates))
    assert abs(mean.item() + exact_local_elbo()) < 4 * se.item() + 1e-6


def test_mean_field_without_registered_kl_falls_back_to_monte_carlo():
    # KL(Normal || Laplace) is not registered: the site keeps log p - log q
    m, s = 0.3, 0.8

    def model():
        ember.sample("z", dist.Laplace(0.0, 1.0))

    def guide():
        ember.sample("z", dist.Normal(m, s))

    # E_q|z| for z ~ N(m, s) (the folded normal mean)
    e_abs = s * math.sqrt(2 / math.pi) * math.exp(-(m**2) / (2 * s**2)) + m * (
        1 - 2 * torch.distributions.Normal(0.0, 1.0).cdf(torch.tensor(-m / s)).item()
    )
    exact = -math.log(2.0) - e_abs + 0.5 * math.log(2 * math.pi * math.e * s**2)
    ember.set_rng_seed(8)
    elbo = TraceMeanField_ELBO(num_particles=500, vectorize_particles=True, max_plate_nesting=0)
    estimates = torch.tensor([elbo.loss(model, guide) for _ in range(20)])
    mean, se = estimates.mean(), estimates.std() / math.sqrt(len(estimates))
    assert se > 0  # a Monte Carlo estimate, not an analytic one
    assert abs(mean.item() + exact) < 4 * se.item()
