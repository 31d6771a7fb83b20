"""AutoGaussian (dense backend): the sparsity of its precision, exactness at the
exact posterior, recovery of a Gaussian posterior, plates broken into factors."""

import pytest
import torch

import ember
import ember.distributions as dist
from ember.infer import SVI, Predictive, Trace_ELBO
from ember.infer.autoguide import AutoGaussian
from ember.infer.autoguide.gaussian import AutoGaussianDense, break_plates, plates_to_shape
from ember.optim import ClippedAdam
from ember.poutine.runtime import CondIndepStackFrame


@pytest.fixture(autouse=True)
def fresh_store():
    ember.clear_param_store()
    yield
    ember.clear_param_store()


def sparsity(guide):
    for p in guide.parameters():
        with torch.no_grad():
            p.normal_()
    with torch.no_grad():
        precision = guide._dense_get_mvn().precision_matrix
    return precision.abs().gt(1e-6).int()


def test_backends():
    def model():
        ember.sample("x", dist.Normal(0.0, 1.0))

    assert type(AutoGaussian(model)) is AutoGaussianDense
    assert type(AutoGaussian(model, backend="dense")) is AutoGaussianDense
    with pytest.raises(ImportError, match="funsor"):
        AutoGaussian(model, backend="funsor")
    with pytest.raises(ValueError, match="unknown backend"):
        AutoGaussian(model, backend="sparse")


def test_chain_has_a_tridiagonal_precision():
    def model():
        a = ember.sample("a", dist.Normal(0.0, 1.0))
        b = ember.sample("b", dist.Normal(a, 1.0))
        c = ember.sample("c", dist.Normal(b, 1.0))
        d = ember.sample("d", dist.Normal(c, 1.0))
        ember.sample("obs", dist.Normal(d, 1.0), obs=torch.tensor(0.0))

    guide = AutoGaussian(model)
    guide()
    expected = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 0], [0, 1, 1, 1], [0, 0, 1, 1]])
    assert torch.equal(sparsity(guide), expected)


def test_local_latents_couple_only_through_the_global():
    # a global a, locals b_i ~ N(a, 1) in a plate of 3, each observed
    def model():
        a = ember.sample("a", dist.Normal(0.0, 1.0))
        with ember.plate("i", 3):
            b = ember.sample("b", dist.Normal(a, 1.0))
            ember.sample("obs", dist.Normal(b, 1.0), obs=torch.zeros(3))

    guide = AutoGaussian(model)
    guide()
    expected = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0], [1, 0, 1, 0], [1, 0, 0, 1]])
    assert torch.equal(sparsity(guide), expected)
    # the local factor is batched over the plate
    assert guide.prec_sqrts.b.shape == (3, 2, 1)
    # an observation that shares no plate with its parent is broken: all three enter
    # one factor
    assert guide.prec_sqrts.obs.shape == (3, 1, 1)


def test_flatten_round_trip():
    def model():
        with ember.plate("i", 2):
            ember.sample("x", dist.Dirichlet(torch.ones(3)))
        ember.sample("s", dist.LogNormal(0.0, 1.0).expand([2]).to_event(1))

    guide = AutoGaussian(model)
    guide()
    with torch.no_grad():
        flat = guide._dense_get_mvn().sample()
        batched = guide._dense_get_mvn().sample((5, 1))  # sample dims left of the plate
    parts = guide._dense_unflatten(flat)
    assert parts["x"].shape == (2, 2) and parts["s"].shape == (2,)
    assert torch.equal(guide._dense_flatten(parts), flat)
    parts = guide._dense_unflatten(batched)
    assert parts["x"].shape == (5, 2, 2) and parts["s"].shape == (5, 1, 2)
    assert torch.equal(parts["x"][3, 1], batched[3, 0, 2:4])


def test_exact_posterior_gives_the_evidence():
    """The conjugate model loc ~ N(0, 1), obs_i ~ N(loc, 1): with the factors set to the
    posterior's precision and information, every draw gives log p(x, z) - log q(z) =
    log p(x)."""
    data = torch.tensor([0.4, -1.2, 2.0])
    n = len(data)

    def model(data):
        loc = ember.sample("loc", dist.Normal(0.0, 1.0))
        with ember.plate("data", n):
            ember.sample("obs", dist.Normal(loc, 1.0), obs=data)

    guide = AutoGaussian(model)
    guide(data)
    mean = data.sum() / (n + 1)
    with torch.no_grad():
        guide.locs.loc = torch.tensor(0.0)
        guide.scales.loc = torch.tensor(1.0)
        guide.prec_sqrts.loc.fill_((n + 1) ** 0.5)
        guide.white_vecs.loc.fill_(mean * (n + 1) ** 0.5)
        guide.prec_sqrts.obs.zero_()
    mvn = guide._dense_get_mvn()
    assert torch.allclose(mvn.mean, mean.reshape(1))
    assert torch.allclose(mvn.covariance_matrix, torch.tensor([[1.0 / (n + 1)]]))
    cov = torch.eye(n) + torch.ones(n, n)
    evidence = torch.distributions.MultivariateNormal(torch.zeros(n), cov).log_prob(data)
    loss = Trace_ELBO(num_particles=50, vectorize_particles=True).loss(model, guide, data)
    assert loss == pytest.approx(-evidence.item(), abs=1e-5)
    assert torch.allclose(guide.median(data)["loc"], mean)


@pytest.mark.slow
def test_recovers_a_correlated_gaussian_posterior():
    data = torch.tensor([1.0, -0.5])

    def model(data):
        x = ember.sample("x", dist.Normal(0.0, 1.0))
        with ember.plate("data", 2):
            y = ember.sample("y", dist.Normal(x, 1.0))
            ember.sample("obs", dist.Normal(y, 1.0), obs=data)

    precision = torch.tensor([[3.0, -1.0, -1.0], [-1.0, 2.0, 0.0], [-1.0, 0.0, 2.0]])
    cov = torch.linalg.inv(precision)
    mean = cov @ torch.cat([torch.zeros(1), data])
    ember.set_rng_seed(0)
    guide = AutoGaussian(model)
    steps = 2000
    optim = ClippedAdam({"lr": 0.05, "lrd": 0.01 ** (1 / steps)})
    svi = SVI(model, guide, optim, Trace_ELBO(num_particles=64, vectorize_particles=True))
    for _ in range(steps):
        svi.step(data)
    with torch.no_grad():
        joint = guide._dense_get_mvn()
        # the unconstrained values are aux * scale + loc (real supports: the values)
        scale = torch.cat([guide.scales.x.reshape(1), guide.scales.y])
        loc = torch.cat([guide.locs.x.reshape(1), guide.locs.y])
        fitted_mean = joint.mean * scale + loc
        fitted_cov = scale[:, None] * joint.covariance_matrix * scale[None, :]
    sd = cov.diagonal().sqrt()
    assert ((fitted_mean - mean) / sd).abs().max() < 0.05
    assert ((fitted_cov - cov).abs() / (sd[:, None] * sd[None, :])).max() < 0.05
    samples = Predictive(model, guide=guide, num_samples=3)(data)
    assert samples["y"].shape == (3, 2)


def test_break_plates_moves_broken_plates_into_the_event():
    i = CondIndepStackFrame("i", -3, 5, 0)
    j = CondIndepStackFrame("j", -2, 4, 0)
    k = CondIndepStackFrame("k", -1, 3, 0)
    x = torch.arange(5 * 4 * 3 * 2).reshape(5, 4, 3, 2)
    assert plates_to_shape({i, k}) == (5, 1, 3)
    assert torch.equal(break_plates(x, {i, j, k}, {i, j, k}), x)
    assert torch.equal(break_plates(x, {i, j, k}, set()), x.reshape(-1))
    assert torch.equal(break_plates(x, {i, j, k}, {i}), x.reshape(5, 1, 1, -1))
    # keeping k: element [c, :] lists every (a, b, e) with x[a, b, c, e]
    kept_k = break_plates(x, {i, j, k}, {k})
    assert kept_k.shape == (3, 40)
    assert torch.equal(kept_k[2], x[:, :, 2, :].reshape(-1))
    kept_ik = break_plates(x, {i, j, k}, {i, k})
    assert kept_ik.shape == (5, 1, 3, 8)
    assert torch.equal(kept_ik[1, 0, 2], x[1, :, 2, :].reshape(-1))
    with pytest.raises(ValueError, match="batch shape"):
        break_plates(torch.zeros(2, 2), {i}, set())


def test_shape_mismatch_is_named():
    def model():
        ember.sample("x", dist.Normal(torch.zeros(3), 1.0))  # batch shape without a plate

    with pytest.raises(ValueError, match="Shape mismatch at site 'x'.*to_event"):
        AutoGaussian(model)()
