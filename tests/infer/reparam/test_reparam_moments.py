"""Samples drawn through each reparameterizer follow the original distribution.

Draws are vectorized over a plate of N sites (fixed seed). Means are compared
within 5 standard errors; full distributions by a Kolmogorov-Smirnov test
against the exact CDF (scipy) or, where none is at hand, against the
distribution's own sampler (two-sample test), at level 1e-3.
"""

import math

import pytest
import torch
from scipy import stats

import ember
import ember.distributions as dist
from ember import poutine
from ember.distributions.transforms import ExpTransform, PermuteTransform
from ember.infer.reparam import (
    AutoReparam,
    ConjugateReparam,
    GumbelSoftmaxReparam,
    LatentStableReparam,
    LinearHMMReparam,
    LocScaleReparam,
    MinimalReparam,
    ProjectedNormalReparam,
    StableReparam,
    StudentTReparam,
    SymmetricStableReparam,
    TransformReparam,
    UnitJacobianReparam,
)

N = 20000


def draw(d, reparam, n=N, site="x"):
    """``n`` draws of site ``x ~ d`` (batched by a plate) through ``reparam``."""

    def model():
        with ember.plate("draws", n, dim=-1 - len(d.batch_shape) if d.batch_shape else -1):
            return ember.sample(site, d)

    tr = poutine.trace(poutine.reparam(model, {site: reparam})).get_trace()
    return tr.nodes[site]["value"].detach(), tr


def assert_mean(x, mean, std):
    se = std / math.sqrt(x.shape[0])
    assert abs(float(x.mean(0)) - mean) < 5 * se, (float(x.mean(0)), mean, se)


@pytest.mark.parametrize("centered", [None, 0.0, 0.4])
def test_loc_scale_moments(centered):
    ember.set_rng_seed(0)
    ember.clear_param_store()
    x, tr = draw(dist.Normal(1.0, 2.0), LocScaleReparam(centered))
    assert "x_decentered" in tr.nodes
    assert stats.kstest(x.numpy(), stats.norm(1.0, 2.0).cdf).pvalue > 1e-3
    ember.clear_param_store()


def test_transform_moments():
    ember.set_rng_seed(1)
    d = dist.TransformedDistribution(dist.Normal(0.3, 0.5), [ExpTransform()])
    x, _ = draw(d, TransformReparam())
    assert stats.kstest(x.numpy(), stats.lognorm(0.5, scale=math.exp(0.3)).cdf).pvalue > 1e-3


def test_studentt_moments():
    ember.set_rng_seed(2)
    x, tr = draw(dist.StudentT(5.0, 1.0, 2.0), StudentTReparam())
    assert tr.nodes["x_gamma"]["value"].shape == (N,)
    assert stats.kstest(x.numpy(), stats.t(5.0, 1.0, 2.0).cdf).pvalue > 1e-3
    assert_mean(x, 1.0, 2.0 * math.sqrt(5.0 / 3.0))


def test_unit_jacobian_moments():
    ember.set_rng_seed(3)
    d = dist.Normal(torch.tensor([0.0, 1.0, 2.0]), torch.tensor([1.0, 2.0, 3.0])).to_event(1)
    x, _ = draw(d, UnitJacobianReparam(PermuteTransform(torch.tensor([1, 2, 0]))))
    for i, (m, s) in enumerate([(0.0, 1.0), (1.0, 2.0), (2.0, 3.0)]):
        assert stats.kstest(x[:, i].numpy(), stats.norm(m, s).cdf).pvalue > 1e-3


def test_gumbel_softmax_moments():
    ember.set_rng_seed(4)
    logits = torch.tensor([0.5, -1.0, 1.5])
    d = dist.RelaxedOneHotCategorical(torch.tensor(0.7), logits=logits)
    x, _ = draw(d, GumbelSoftmaxReparam())
    ref = d.sample((N,))
    for i in range(3):
        assert stats.ks_2samp(x[:, i].numpy(), ref[:, i].numpy()).pvalue > 1e-3
    assert torch.allclose(x.sum(-1), torch.ones(N), atol=1e-5)


def test_projected_normal_moments():
    ember.set_rng_seed(5)
    d = dist.ProjectedNormal(torch.tensor([1.0, -0.5, 0.2]))
    x, _ = draw(d, ProjectedNormalReparam())
    assert torch.allclose(x.norm(dim=-1), torch.ones(N), atol=1e-5)
    ref = d.sample((N,))
    for i in range(3):
        assert stats.ks_2samp(x[:, i].numpy(), ref[:, i].numpy()).pvalue > 1e-3


STABLE_CASES = [(1.5, 0.0), (1.5, 0.5), (0.8, -0.3), (1.0, 0.4), (1.999, 0.0)]


@pytest.mark.parametrize(
    "stability,skew,kind",
    [(a, b, k) for a, b in STABLE_CASES for k in ["latent", "general"]]
    + [(a, b, "symmetric") for a, b in STABLE_CASES if b == 0],
)
def test_stable_moments(stability, skew, kind):
    ember.set_rng_seed(6)
    d = dist.Stable(torch.tensor(stability), torch.tensor(skew), 1.3, 0.2)
    reparam = {
        "latent": LatentStableReparam,
        "general": StableReparam,
        "symmetric": SymmetricStableReparam,
    }[kind]()
    x, tr = draw(d, reparam)
    if kind != "latent":
        # conditionally Normal: the site keeps a Normal given the auxiliary sites
        assert type(tr.nodes["x"]["fn"]).__name__ == "Normal"
    ref = d.sample((N,))
    assert stats.ks_2samp(x.numpy(), ref.numpy()).pvalue > 1e-3
    if stability == 1.999:  # nearly Normal(loc, sqrt(2) scale)
        assert stats.kstest(x.numpy(), stats.norm(0.2, 1.3 * math.sqrt(2)).cdf).pvalue > 1e-3


def test_stable_rejects_observed_latent_reparam():
    d = dist.Stable(torch.tensor(1.5), torch.tensor(0.0))
    model = lambda: ember.sample("x", d, obs=torch.tensor(0.1))  # noqa: E731
    with pytest.raises(NotImplementedError, match="observe"):
        poutine.trace(poutine.reparam(model, {"x": LatentStableReparam()})).get_trace()


def test_conjugate_samples_follow_posterior():
    ember.set_rng_seed(7)
    x, _ = draw(dist.Beta(2.0, 2.0), ConjugateReparam(dist.Beta(torch.tensor(4.0), 8.0)))
    assert stats.kstest(x.numpy(), stats.beta(5.0, 9.0).cdf).pvalue > 1e-3


def test_linear_hmm_studentt_moments():
    ember.set_rng_seed(8)
    T = 4
    hmm = dist.LinearHMM(
        dist.Normal(torch.zeros(1), 1.0).to_event(1),
        torch.tensor([[0.8]]),
        dist.StudentT(5.0, torch.zeros(1), 0.7).to_event(1),
        torch.tensor([[1.5]]),
        dist.StudentT(4.5, torch.zeros(1), 0.3).to_event(1),
        duration=T,
    )
    rep = LinearHMMReparam(trans=StudentTReparam(), obs=StudentTReparam())
    n = 5000

    def model():
        with ember.plate("draws", n, dim=-1):
            return ember.sample("x", hmm)

    tr = poutine.trace(poutine.reparam(model, {"x": rep})).get_trace()
    assert type(tr.nodes["x"]["fn"]).__name__ == "GaussianHMM"
    assert tr.nodes["x_trans_gamma"]["value"].shape == (n, T, 1)
    x = tr.nodes["x"]["value"].detach()
    ref = hmm.sample((n,))
    for t in range(T):
        assert stats.ks_2samp(x[:, t, 0].numpy(), ref[:, t, 0].numpy()).pvalue > 1e-3


def test_strategies_pick_reparameterizers():
    ember.clear_param_store()

    def model():
        ember.sample("a", dist.Normal(0.0, 1.0))
        ember.sample("b", dist.LogNormal(0.0, 1.0))
        ember.sample("c", dist.Stable(torch.tensor(1.5), torch.tensor(0.0)))
        ember.sample("d", dist.Gamma(2.0, 1.0))
        ember.sample("e", dist.Stable(torch.tensor(1.5), torch.tensor(0.0)), obs=torch.tensor(0.3))

    auto = AutoReparam()
    poutine.trace(auto(model)).get_trace()
    kinds = {k: type(v).__name__ if v is not None else None for k, v in auto.config.items()}
    assert kinds["a"] == "LocScaleReparam"
    assert kinds["b"] == "TransformReparam"
    # a Stable is a location-scale family: decentered first, then the decentered site
    assert kinds["c"] == "LocScaleReparam"
    assert kinds["c_decentered"] == "LatentStableReparam"
    assert kinds["d"] is None
    assert kinds["e"] == "SymmetricStableReparam"
    minimal = MinimalReparam()
    poutine.trace(minimal(model)).get_trace()
    assert minimal.config["a"] is None and minimal.config["b"] is None
    assert type(minimal.config["c"]).__name__ == "LatentStableReparam"
    ember.clear_param_store()
