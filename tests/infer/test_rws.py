"""ReweightedWakeSleep against direct computations and the exact posterior of a conjugate model."""

import math

import pytest
import torch

import ember
import ember.distributions as dist
from ember.distributions import constraints
from ember.infer import SVI, ReweightedWakeSleep
from ember.optim import Adam

DATA = torch.tensor([0.9, 1.7, 0.4], dtype=torch.float64)


def make_model(prior_loc=None):
    def model(data):
        loc = ember.param("prior_loc", torch.tensor(0.2, dtype=torch.float64))
        z = ember.sample("z", dist.Normal(loc, 1.0))
        with ember.plate("data", len(data)):
            ember.sample("x", dist.Normal(z, 1.0), obs=data)

    return model


def make_guide(captured):
    def guide(data, observations=None):
        loc = ember.param("loc", torch.tensor(0.3, dtype=torch.float64))
        scale = ember.param(
            "scale", torch.tensor(0.8, dtype=torch.float64), constraint=constraints.positive
        )
        z = ember.sample("z", dist.Normal(loc, scale))
        captured.append(z.detach().clone())

    return guide


def leaf(name):
    return ember.get_param_store()[name].unconstrained()


@pytest.mark.parametrize("vectorized", [False, True])
def test_wake_losses_and_gradients_equal_direct_computation(vectorized):
    ember.clear_param_store()
    ember.set_rng_seed(2)
    captured = []
    k = 6
    rws = ReweightedWakeSleep(num_particles=k, vectorize_particles=vectorized, max_plate_nesting=1)
    theta_loss, phi_loss = rws.loss_and_grads(make_model(), make_guide(captured), DATA)
    z = captured[-1].reshape(k) if vectorized else torch.stack(captured)
    # direct: the same particles, with fresh leaves for the parameters
    prior_loc = leaf("prior_loc").detach().clone().requires_grad_()
    loc = leaf("loc").detach().clone().requires_grad_()
    log_scale = leaf("scale").detach().clone().requires_grad_()
    log_p = torch.distributions.Normal(prior_loc, 1.0).log_prob(z) + torch.distributions.Normal(
        z[:, None], 1.0
    ).log_prob(DATA).sum(-1)
    log_q = torch.distributions.Normal(loc, log_scale.exp()).log_prob(z)
    log_w = log_p - log_q.detach()
    expected_theta = -(torch.logsumexp(log_w, 0) - math.log(k))
    wbar = torch.softmax(log_w, 0).detach()
    expected_phi = -(wbar * log_q).sum()
    assert theta_loss == pytest.approx(expected_theta.item(), rel=1e-12)
    assert phi_loss == pytest.approx(expected_phi.item(), rel=1e-12)
    g_theta = torch.autograd.grad(expected_theta, [prior_loc])[0]
    g_phi = torch.autograd.grad(expected_phi, [loc, log_scale])
    assert torch.allclose(leaf("prior_loc").grad, g_theta, rtol=1e-10)
    assert torch.allclose(leaf("loc").grad, g_phi[0], rtol=1e-10)
    assert torch.allclose(leaf("scale").grad, g_phi[1], rtol=1e-10)


def test_loss_returns_tensors_and_matches_loss_and_grads():
    ember.clear_param_store()
    rws = ReweightedWakeSleep(num_particles=4, max_plate_nesting=1)
    ember.set_rng_seed(9)
    losses = rws.loss(make_model(), make_guide([]), DATA)
    ember.set_rng_seed(9)
    floats = rws.loss_and_grads(make_model(), make_guide([]), DATA)
    assert all(isinstance(v, torch.Tensor) and not v.requires_grad for v in losses)
    assert all(isinstance(v, float) for v in floats)
    assert [v.item() for v in losses] == pytest.approx(list(floats), rel=1e-12)


@pytest.mark.parametrize("vectorized", [False, True])
@pytest.mark.parametrize("insomnia", [0.0, 0.3])
def test_sleep_phi_is_guide_log_density_at_joint_model_draws(insomnia, vectorized):
    ember.clear_param_store()
    ember.set_rng_seed(6)
    seen = []

    def guide(data, observations=None):
        a = ember.param("a", torch.tensor(0.2, dtype=torch.float64))
        scale = ember.param(
            "scale", torch.tensor(0.7, dtype=torch.float64), constraint=constraints.positive
        )
        x = data if observations is None else observations["x"]
        loc = a * x.sum(-1, keepdim=True)  # (the sleep particles' plate is at dim -2)
        z = ember.sample("z", dist.Normal(loc.squeeze(-1) if x.dim() == 1 else loc, scale))
        if observations is not None:
            seen.append((z.detach().clone(), x.detach().clone()))

    s = 5
    rws = ReweightedWakeSleep(
        num_particles=3,
        insomnia=insomnia,
        num_sleep_particles=s,
        vectorize_particles=vectorized,
        max_plate_nesting=1,
    )
    wake_rws = ReweightedWakeSleep(
        num_particles=3, vectorize_particles=vectorized, max_plate_nesting=1
    )
    ember.set_rng_seed(6)
    _, wake_phi = wake_rws.loss(make_model(), guide, DATA)
    ember.set_rng_seed(6)
    seen.clear()
    _, phi = rws.loss(make_model(), guide, DATA)
    if vectorized:
        ((z, x),) = seen
        z, x = z.reshape(s), x.reshape(s, 3)
    else:
        assert len(seen) == s
        z = torch.stack([v[0] for v in seen])
        x = torch.stack([v[1] for v in seen])
    # the joint draws: x is a fresh draw (not the data), the guide's z is the model's z
    assert not torch.equal(x[0], DATA)
    log_q = torch.distributions.Normal(0.2 * x.sum(-1), 0.7).log_prob(z)
    sleep_phi = -log_q.mean()
    expected = insomnia * wake_phi + (1 - insomnia) * sleep_phi
    assert phi.item() == pytest.approx(expected.item(), rel=1e-10)


@pytest.mark.slow
def test_rws_learns_exact_posterior_and_prior_mean():
    # z ~ N(theta, 1), x_i ~ N(z, 1): the posterior is N((theta + sum x) / (n + 1), 1 / (n + 1))
    # and the marginal likelihood is maximized at theta = mean(x)
    ember.clear_param_store()
    ember.set_rng_seed(0)
    data = torch.tensor([0.9, 1.7, 0.4, 1.2])
    n = len(data)

    def model():
        theta = ember.param("theta", torch.tensor(0.0))
        z = ember.sample("z", dist.Normal(theta, 1.0))
        with ember.plate("data", n):
            ember.sample("x", dist.Normal(z, 1.0), obs=data)

    def guide():
        loc = ember.param("loc", torch.tensor(0.0))
        scale = ember.param("scale", torch.tensor(1.0), constraint=constraints.positive)
        ember.sample("z", dist.Normal(loc, scale))

    svi = SVI(model, guide, Adam({"lr": 0.02}), ReweightedWakeSleep(num_particles=50))
    for _ in range(2000):
        out = svi.step()
    assert isinstance(out, tuple) and len(out) == 2
    theta = data.mean().item()
    assert ember.param("theta").item() == pytest.approx(theta, abs=0.08)
    assert ember.param("loc").item() == pytest.approx(
        (theta + data.sum().item()) / (n + 1), abs=0.08
    )
    assert ember.param("scale").item() == pytest.approx((1 / (n + 1)) ** 0.5, abs=0.05)


@pytest.mark.slow
def test_sleep_only_learns_amortized_posterior():
    # q(z | x) = N(a * sum x + b, s) with sleep-phi only: a = 1/(n+1), b = 0, s = 1/sqrt(n+1)
    ember.clear_param_store()
    ember.set_rng_seed(1)
    n = 3
    data = torch.tensor([0.5, -0.2, 1.1])

    def model(data):
        z = ember.sample("z", dist.Normal(0.0, 1.0))
        with ember.plate("data", n):
            ember.sample("x", dist.Normal(z, 1.0), obs=data)

    def guide(data, observations=None):
        a = ember.param("a", torch.tensor(0.0))
        b = ember.param("b", torch.tensor(0.5))
        s = ember.param("s", torch.tensor(1.0), constraint=constraints.positive)
        x = data if observations is None else observations["x"]
        loc = a * x.sum(-1, keepdim=True) + b  # (the sleep particles' plate is at dim -2)
        ember.sample("z", dist.Normal(loc.squeeze(-1) if x.dim() == 1 else loc, s))

    rws = ReweightedWakeSleep(
        num_particles=2, insomnia=0.0, model_has_params=False, num_sleep_particles=100
    )
    svi = SVI(model, guide, Adam({"lr": 0.02}), rws)
    for _ in range(1500):
        svi.step(data)
    assert ember.param("a").item() == pytest.approx(1 / (n + 1), abs=0.03)
    assert ember.param("b").item() == pytest.approx(0.0, abs=0.05)
    assert ember.param("s").item() == pytest.approx((1 / (n + 1)) ** 0.5, abs=0.04)


def test_bad_arguments():
    with pytest.raises(ValueError, match="more than one particle"):
        ReweightedWakeSleep(num_particles=1)
    with pytest.raises(ValueError, match="insomnia"):
        ReweightedWakeSleep(insomnia=1.5)
    with pytest.raises(ValueError, match="num_sleep_particles"):
        ReweightedWakeSleep(num_sleep_particles=0)


def test_sleep_needs_guide_with_observations_keyword():
    def model():
        ember.sample("z", dist.Normal(0.0, 1.0))

    def guide():
        ember.sample("z", dist.Normal(0.0, 1.0))

    with pytest.raises(TypeError, match="observations"):
        ReweightedWakeSleep(insomnia=0.5).loss(model, guide)
