"""Score-function gradients inside plates.

Each plate element's score term must be weighted by the costs that depend on
it: the costs of its own element, plus the whole of the costs outside its
plates. The gradient stays unbiased and its variance grows like the plate size
(one independent term per element), not like its square.

The reference model: guide ``Bernoulli(q)``, model ``Bernoulli(p0)``, one site
per plate element. The loss gradient per element is ``d KL(q || p0) / dq =
log(q / p0) - log((1 - q) / (1 - p0))`` (``log 3`` at ``q = 1/2, p0 = 1/4``);
its single-draw estimate is ``-(d log q(z) / dq) * (log p0(z) - log q(z))``,
whose exact mean and standard deviation come from enumerating ``z in {0, 1}``.
"""

import contextlib
import math

import pytest
import torch

import ember
import ember.distributions as dist
from ember import poutine
from ember.infer import Trace_ELBO, TraceGraph_ELBO, TraceMeanField_ELBO

P0 = 0.25


def kl_gradient(q: float, p0: float = P0) -> float:
    return math.log(q / p0) - math.log((1 - q) / (1 - p0))


def per_element_gradient_moments(q: float, p0: float = P0):
    """Exact mean and sd of one element's single-draw loss-gradient estimate."""
    values, probs = [], []
    for z, prob in ((1.0, q), (0.0, 1 - q)):
        dlogq = z / q - (1 - z) / (1 - q)
        log_ratio = math.log(p0 if z else 1 - p0) - math.log(q if z else 1 - q)
        values.append(-dlogq * log_ratio)
        probs.append(prob)
    mean = sum(p * v for p, v in zip(probs, values))
    var = sum(p * (v - mean) ** 2 for p, v in zip(probs, values))
    return mean, math.sqrt(var)


def test_reference_moments_are_the_kl_gradient():
    mean, sd = per_element_gradient_moments(0.5)
    assert mean == pytest.approx(math.log(3.0), abs=1e-12)
    assert mean == pytest.approx(kl_gradient(0.5), abs=1e-12)
    # the two values, 2 log 2 and 2 log 1.5, are equally likely: sd = log(4 / 3)
    assert sd == pytest.approx(math.log(4.0 / 3.0), abs=1e-12)


def bernoulli_pair(size, q, subsample_size=None, mask=None, scale=None):
    """(model, guide, record): one Bernoulli site per element of a plate of ``size``."""
    record = {}

    def masked(idx):
        return contextlib.nullcontext() if mask is None else poutine.mask(mask=mask[idx])

    def model():
        with ember.plate("particles", size, subsample_size=subsample_size) as idx:
            record["model_idx"] = idx
            with masked(idx):
                ember.sample("z", dist.Bernoulli(P0))

    def guide():
        with ember.plate("particles", size, subsample_size=subsample_size) as idx:
            record["idx"] = idx
            with masked(idx):
                ember.sample("z", dist.Bernoulli(q))

    if scale is not None:
        model = poutine.scale(model, scale=scale)
        guide = poutine.scale(guide, scale=scale)
    return model, guide, record


@pytest.mark.parametrize("elbo_cls", [Trace_ELBO, TraceGraph_ELBO, TraceMeanField_ELBO])
@pytest.mark.parametrize("vectorize", [False, True])
def test_kl_gradient_inside_a_large_plate(elbo_cls, vectorize):
    ember.set_rng_seed(0)
    n = 10000
    q = torch.tensor(0.5, requires_grad=True)
    model, guide, _ = bernoulli_pair(n, q)
    particles = 4 if vectorize else 1
    elbo = elbo_cls(num_particles=particles, vectorize_particles=vectorize, max_plate_nesting=1)
    elbo.loss_and_grads(model, guide)
    mean, sd = per_element_gradient_moments(0.5)
    se = sd / math.sqrt(n * particles)  # the particle average of n * particles terms
    assert abs(q.grad.item() / n - math.log(3.0)) < 4 * se, (q.grad.item() / n, se)


@pytest.mark.parametrize("elbo_cls", [Trace_ELBO, TraceGraph_ELBO])
def test_gradient_variance_grows_like_the_plate_size(elbo_cls):
    # var(grad) = n * var(one element) for every n; weighting each element by the
    # whole trace's cost would make it grow like n ** 2
    ember.set_rng_seed(1)
    q0 = 0.3
    mean, sd = per_element_gradient_moments(q0)
    runs = 300
    for n in (20, 400):
        q = torch.tensor(q0, requires_grad=True)
        model, guide, _ = bernoulli_pair(n, q)
        elbo = elbo_cls(max_plate_nesting=1)
        grads = []
        for _ in range(runs):
            q.grad = None
            elbo.loss_and_grads(model, guide)
            grads.append(q.grad.item())
        grads = torch.tensor(grads, dtype=torch.float64)
        ratio = grads.var().item() / (n * sd**2)
        # the sample variance of 300 draws is within about +-25% (4 standard errors of
        # sqrt(2 / 299) relative, with margin for the non-Gaussian terms)
        assert 0.6 < ratio < 1.5, (n, ratio)
        se = grads.std().item() / math.sqrt(runs)
        assert abs(grads.mean().item() - n * mean) < 4 * se


@pytest.mark.parametrize("elbo_cls", [Trace_ELBO, TraceGraph_ELBO, TraceMeanField_ELBO])
def test_masked_scaled_and_subsampled_plate(elbo_cls):
    # subsample 4,000 of 12,000 elements, mask every third element, scale by 2.5:
    # given the drawn subsample, E[grad] = scale * (12000 / 4000) * (#unmasked drawn) *
    # kl', with standard error scale * 3 * sqrt(#unmasked drawn) * sd
    ember.set_rng_seed(2)
    full, sub, scale = 12000, 4000, 2.5
    mask = torch.arange(full) % 3 != 0
    q = torch.tensor(0.6, requires_grad=True)
    model, guide, record = bernoulli_pair(full, q, subsample_size=sub, mask=mask, scale=scale)
    elbo_cls(max_plate_nesting=1).loss_and_grads(model, guide)
    assert torch.equal(record["idx"], record["model_idx"])  # the model replays the subsample
    unmasked = int(mask[record["idx"]].sum())
    mean, sd = per_element_gradient_moments(0.6)
    factor = scale * full / sub
    expected = factor * unmasked * kl_gradient(0.6)
    se = factor * math.sqrt(unmasked) * sd
    assert abs(q.grad.item() - expected) < 4 * se, (q.grad.item(), expected, se)


def _dlogq(z, p):
    return z / p - (1.0 - z) / (1.0 - p)


def _bern_lp(p, z):
    return dist.Bernoulli(p).log_prob(z)


@pytest.mark.parametrize("elbo_cls", [Trace_ELBO, TraceGraph_ELBO])
def test_one_draw_nested_plates_and_a_global_site_exact(elbo_cls):
    # g outside all plates; z_i in plate "outer" (dim -2); x_ij observed in "outer" and
    # "inner" (dim -1). One draw: the score term of z_i is weighted by the costs of
    # element i (its own log-ratio and x_i.) plus, for Trace_ELBO, the global cost
    # (TraceGraph_ELBO drops it: g is upstream of z); g's by everything.
    data = torch.tensor([[0.5, -1.0, 2.0, 0.1], [1.5, 0.3, -0.2, 0.0], [0.0, 2.2, 1.1, -0.7]])
    pg = torch.tensor(0.35, requires_grad=True)
    pz = torch.tensor([[0.2], [0.5], [0.7]], requires_grad=True)
    drawn = {}

    def model():
        g = ember.sample("g", dist.Bernoulli(0.4))
        with ember.plate("outer", 3, dim=-2):
            z = ember.sample("z", dist.Bernoulli(0.3 + 0.4 * g))
            with ember.plate("inner", 4, dim=-1):
                ember.sample("x", dist.Normal(z + g, 1.0), obs=data)

    def guide():
        drawn["g"] = ember.sample("g", dist.Bernoulli(pg))
        with ember.plate("outer", 3, dim=-2):
            drawn["z"] = ember.sample("z", dist.Bernoulli(pz))

    for seed in range(3):
        ember.set_rng_seed(seed)
        pg.grad = pz.grad = None
        elbo_cls(max_plate_nesting=2).loss_and_grads(model, guide)
        with torch.no_grad():
            g, z = drawn["g"], drawn["z"]
            global_cost = _bern_lp(torch.tensor(0.4), g) - _bern_lp(pg, g)
            local = (
                _bern_lp(0.3 + 0.4 * g, z)
                - _bern_lp(pz, z)
                + dist.Normal(z + g, 1.0).log_prob(data).sum(-1, keepdim=True)
            )  # (3, 1): one cost per element of "outer"
            total = global_cost + local.sum()
            upstream = 0.0 if elbo_cls is TraceGraph_ELBO else global_cost
            expected_pz = -_dlogq(z, pz) * (local + upstream)
            expected_pg = -_dlogq(g, pg) * total
        torch.testing.assert_close(pz.grad, expected_pz, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(pg.grad, expected_pg, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("elbo_cls", [Trace_ELBO, TraceGraph_ELBO])
def test_one_draw_two_plates_at_the_same_dim_exact(elbo_cls):
    # plates "a" (size 5) and "b" (size 6) both at dim -1, not nested: each is summed
    # out of the other's cost. TraceGraph_ELBO also drops a's costs from b's terms (a is
    # sampled first, so it is not downstream of b).
    pa = torch.linspace(0.2, 0.8, 5).requires_grad_()
    pb = torch.linspace(0.3, 0.6, 6).requires_grad_()
    drawn = {}

    def model():
        with ember.plate("a", 5):
            ember.sample("x", dist.Bernoulli(0.5))
        with ember.plate("b", 6):
            ember.sample("y", dist.Bernoulli(0.25))

    def guide():
        with ember.plate("a", 5):
            drawn["x"] = ember.sample("x", dist.Bernoulli(pa))
        with ember.plate("b", 6):
            drawn["y"] = ember.sample("y", dist.Bernoulli(pb))

    for seed in range(3):
        ember.set_rng_seed(seed)
        pa.grad = pb.grad = None
        elbo_cls(max_plate_nesting=1).loss_and_grads(model, guide)
        with torch.no_grad():
            x, y = drawn["x"], drawn["y"]
            rx = _bern_lp(torch.tensor(0.5), x) - _bern_lp(pa, x)
            ry = _bern_lp(torch.tensor(0.25), y) - _bern_lp(pb, y)
            expected_pa = -_dlogq(x, pa) * (rx + ry.sum())
            upstream = 0.0 if elbo_cls is TraceGraph_ELBO else rx.sum()
            expected_pb = -_dlogq(y, pb) * (ry + upstream)
        torch.testing.assert_close(pa.grad, expected_pa, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(pb.grad, expected_pb, rtol=1e-5, atol=1e-5)


def test_vectorized_particles_keep_each_particle_s_own_cost():
    # With vectorized particles every particle is an element of one more plate:
    # each particle's score term sees only that particle's cost.
    ember.set_rng_seed(3)
    p = torch.tensor(0.4, requires_grad=True)
    drawn = {}

    def model():
        ember.sample("z", dist.Bernoulli(0.25))

    def guide():
        drawn["z"] = ember.sample("z", dist.Bernoulli(p))

    n = 8
    Trace_ELBO(num_particles=n, vectorize_particles=True, max_plate_nesting=0).loss_and_grads(
        model, guide
    )
    with torch.no_grad():
        z = drawn["z"]
        cost = _bern_lp(torch.tensor(0.25), z) - _bern_lp(p, z)
        expected = (-_dlogq(z, p) * cost).sum() / n
    torch.testing.assert_close(p.grad, expected, rtol=1e-5, atol=1e-6)


def test_a_masked_latent_still_gets_the_gradient_of_its_unmasked_children():
    # z's own terms are masked out of the ELBO, but x depends on z: the objective is
    # E_q[log N(x; 2z, 1)], whose gradient in q is log N(x; 2, 1) - log N(x; 0, 1)
    ember.set_rng_seed(4)
    x = torch.tensor(1.5)
    q = torch.tensor(0.3, requires_grad=True)

    def model():
        with poutine.mask(mask=torch.tensor(False)):
            z = ember.sample("z", dist.Bernoulli(0.5))
        ember.sample("x", dist.Normal(2 * z, 1.0), obs=x)

    def guide():
        with poutine.mask(mask=torch.tensor(False)):
            ember.sample("z", dist.Bernoulli(q))

    n = 4000
    Trace_ELBO(num_particles=n, vectorize_particles=True, max_plate_nesting=0).loss_and_grads(
        model, guide
    )
    lik = [dist.Normal(2.0 * z, 1.0).log_prob(x).item() for z in (0.0, 1.0)]
    expected = -(lik[1] - lik[0])
    # one draw's loss gradient: -(d log q(z) / dq) * log N(x; 2z, 1)
    values = [(1 - 0.3, (1.0 / (1 - 0.3)) * lik[0]), (0.3, -(1.0 / 0.3) * lik[1])]
    mean = sum(p * v for p, v in values)
    sd = math.sqrt(sum(p * (v - mean) ** 2 for p, v in values))
    assert mean == pytest.approx(expected, abs=1e-6)
    assert abs(q.grad.item() - expected) < 4 * sd / math.sqrt(n)
