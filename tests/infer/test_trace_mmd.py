"""Trace_MMD against a direct computation of its loss, and its gradient by finite differences."""

import pytest
import torch

import ember
import ember.distributions as dist
from ember.distributions import constraints
from ember.distributions.testing import fakes
from ember.infer import Trace_MMD
from ember.infer.trace_mmd import mmd

DATA = torch.tensor([[0.4, -0.3], [1.1, 0.2], [0.7, 0.9]], dtype=torch.float64)


class RBF(torch.nn.Module):
    """k(x, y) = exp(-|x - y|^2 / (2 l^2)), the call signature of Pyro's GP kernels."""

    def __init__(self, lengthscale):
        super().__init__()
        self.lengthscale = torch.nn.Parameter(torch.tensor(lengthscale, dtype=torch.float64))

    def forward(self, x, z=None):
        z = x if z is None else z
        d2 = ((x[:, None, :] - z[None, :, :]) / self.lengthscale).pow(2).sum(-1)
        return torch.exp(-0.5 * d2)


def make_model(record):
    def model():
        z = ember.sample("z", dist.Normal(torch.zeros(2, dtype=torch.float64), 1.0).to_event(1))
        w = ember.sample("w", dist.Normal(torch.tensor(0.0, dtype=torch.float64), 2.0))
        record.append((z.detach().clone(), w.detach().clone()))
        with ember.plate("data", 3, dim=-1):
            loc = z + w.unsqueeze(-1)  # batch shape: the particles' plate, if any
            ember.sample("x", dist.Normal(loc, 1.0).to_event(1), obs=DATA)

    return model


def guide():
    loc = ember.param("loc", torch.tensor([0.5, -0.2], dtype=torch.float64))
    scale = ember.param(
        "scale", torch.tensor([0.7, 1.2], dtype=torch.float64), constraint=constraints.positive
    )
    ember.sample("z", dist.Normal(loc, scale).to_event(1))
    w_loc = ember.param("w_loc", torch.tensor(0.3, dtype=torch.float64))
    ember.sample("w", dist.Normal(w_loc, 0.5))


def direct_mmd(x, y, kernel):
    def mean_k(a, b):
        return torch.stack(
            [kernel(a[i : i + 1], b[j : j + 1])[0, 0] for i in range(len(a)) for j in range(len(b))]
        ).mean()

    return mean_k(x, x) + mean_k(y, y) - 2 * mean_k(x, y)


@pytest.mark.parametrize("vectorized", [False, True])
def test_loss_equals_direct_computation(vectorized):
    ember.clear_param_store()
    ember.set_rng_seed(0)
    record = []
    n = 6
    kernels = {"z": RBF(1.3), "w": RBF(0.8)}
    elbo = Trace_MMD(
        kernel=kernels,
        mmd_scale={"z": 2.0, "w": 0.5},
        num_particles=n,
        vectorize_particles=vectorized,
        max_plate_nesting=1,
    )
    loss = elbo.loss(make_model(record), guide)
    # the model replayed against the guide, and an independent prior run
    if vectorized:
        (zg, wg), (zp, wp) = record
        zg, zp = zg.reshape(n, 2), zp.reshape(n, 2)
        wg, wp = wg.reshape(n, 1), wp.reshape(n, 1)
    else:
        # (all particles' trace pairs first, then the prior runs)
        zg = torch.stack([r[0] for r in record[:n]])
        zp = torch.stack([r[0] for r in record[n:]])
        wg = torch.stack([r[1] for r in record[:n]]).reshape(n, 1)
        wp = torch.stack([r[1] for r in record[n:]]).reshape(n, 1)
    assert not torch.equal(zg, zp)
    log_lik = torch.distributions.Normal(zg[:, None, :] + wg[:, :, None], 1.0).log_prob(DATA)
    expected = (
        -log_lik.sum() / n
        + 2.0 * direct_mmd(zp, zg, kernels["z"])
        + 0.5 * direct_mmd(wp, wg, kernels["w"])
    )
    assert loss == pytest.approx(expected.item(), rel=1e-10)
    # the kernels' own parameters are frozen
    assert not kernels["z"].lengthscale.requires_grad


@pytest.mark.parametrize("vectorized", [False, True])
def test_gradient_equals_finite_differences(vectorized):
    kernel = RBF(1.0)
    elbo = Trace_MMD(
        kernel=kernel, num_particles=5, vectorize_particles=vectorized, max_plate_nesting=1
    )
    model = make_model([])
    ember.clear_param_store()
    ember.set_rng_seed(1)
    elbo.loss_and_grads(model, guide)
    store = ember.get_param_store()
    for name in ("loc", "scale", "w_loc"):
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
                ember.set_rng_seed(1)
                vals.append(elbo.loss(model, guide))
            fd = (vals[0] - vals[1]) / (2 * eps)
            assert grad.view(-1)[i].item() == pytest.approx(fd, rel=1e-5, abs=1e-7), (name, i)
        with torch.no_grad():
            p.copy_(base)


def test_mmd_of_identical_samples_is_zero_and_positive_otherwise():

    kernel = RBF(1.0)
    x = torch.randn(7, 3, dtype=torch.float64)
    assert mmd(x, x, kernel).abs() < 1e-12
    assert mmd(x, x + 1.0, kernel) > 0


def test_errors():
    with pytest.raises(TypeError, match="kernel"):
        Trace_MMD(kernel="rbf")
    with pytest.raises(TypeError, match="mmd_scale"):
        Trace_MMD(kernel=RBF(1.0), mmd_scale="big")

    def nonreparam_guide():
        ember.sample(
            "z",
            fakes.NonreparameterizedNormal(torch.zeros(2, dtype=torch.float64), 1.0).to_event(1),
        )
        ember.sample("w", dist.Normal(torch.tensor(0.0, dtype=torch.float64), 1.0))

    with pytest.raises(ValueError, match="no entry|without an entry"):
        Trace_MMD(kernel={"z": RBF(1.0)}, num_particles=3).loss(make_model([]), guide)
    with pytest.raises(ValueError, match="'z' is not reparameterizable"):
        Trace_MMD(kernel=RBF(1.0), num_particles=3).loss(make_model([]), nonreparam_guide)
