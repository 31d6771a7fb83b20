"""The mixin's interface, compositions of to_event/expand/expand_by/mask in every
order, conjugate updates against numerical integration, and KL rules."""

import itertools
import math

import numpy as np
import pytest
import scipy.integrate
import scipy.special
import torch

import ember.distributions as dist
import ember.distributions.torch as ember_torch
from ember.distributions import kl_divergence
from ember.distributions.torch_distribution import (
    ExpandedDistribution,
    MaskedDistribution,
    TorchDistributionMixin,
)

DT = torch.float64


# --- the mixin ---------------------------------------------------------------------------


def test_every_wrapper_is_a_mixin_subclass_of_its_torch_class():
    for name in ember_torch.__all__:
        cls = getattr(ember_torch, name)
        assert issubclass(cls, TorchDistributionMixin)
        assert issubclass(cls, getattr(torch.distributions, name))


@pytest.mark.parametrize(
    "make",
    [
        lambda: dist.Independent(dist.Normal(torch.zeros(2, 3), 1.0), 1),
        lambda: dist.TransformedDistribution(
            dist.Normal(torch.zeros(2), 1.0), [torch.distributions.ExpTransform()]
        ),
        lambda: dist.MixtureSameFamily(
            dist.Categorical(torch.ones(2, 3)), dist.Normal(torch.zeros(2, 3), 1.0)
        ),
        lambda: ember_torch.LKJCholesky(3, torch.ones(2)),
        lambda: ember_torch.GeneralizedPareto(torch.zeros(2), 1.0, 0.1),
        lambda: ember_torch.InverseGamma(torch.full((2,), 3.0), 1.0),
        lambda: ember_torch.OneHotCategoricalStraightThrough(torch.ones(2, 3) / 3),
        lambda: ember_torch.Wishart(torch.full((2,), 4.0), torch.eye(3)),
        lambda: dist.LogNormal(torch.zeros(2), 1.0),
        lambda: dist.Poisson(torch.ones(2), is_sparse=True),
        lambda: dist.Uniform(torch.zeros(2), 1.0),
        lambda: dist.Beta(torch.ones(2), 2.0),
        lambda: dist.RelaxedBernoulli(0.5, probs=torch.full((2,), 0.3)),
        lambda: dist.RelaxedOneHotCategorical(0.5, probs=torch.ones(2, 3) / 3),
    ],
    ids=lambda f: "",
)
def test_expand_to_event_mask_keep_working(make):
    torch.manual_seed(0)
    d = make()
    assert d.batch_shape == (2,)
    e = d.expand((4, 2))
    assert type(e) is type(d)
    assert e.batch_shape == (4, 2) and e.event_shape == d.event_shape
    x = e.sample((5,))
    assert x.shape == (5, 4, 2) + d.event_shape
    lp = e.log_prob(x)
    assert torch.allclose(lp, d.log_prob(x))
    ind = e.to_event(1)
    assert ind.batch_shape == (4,) and torch.allclose(ind.log_prob(x), lp.sum(-1))
    masked = e.mask(torch.tensor([True, False]))
    assert torch.equal(masked.log_prob(x)[..., 1], torch.zeros(5, 4))
    assert torch.allclose(masked.log_prob(x)[..., 0], lp[..., 0])
    assert e.expand_by((3,)).batch_shape == (3, 4, 2)


def test_shape_and_call():
    d = dist.Normal(torch.zeros(2, 3), 1.0)
    assert d.shape() == (2, 3) and d.shape((4,)) == (4, 2, 3)
    assert d.event_dim == 0 and d.to_event(1).event_dim == 1
    assert d((5,)).shape == (5, 2, 3)


def test_infer_shapes_default():
    assert dist.Normal.infer_shapes(loc=(3, 1), scale=(4,)) == ((3, 4), ())
    assert dist.Categorical.infer_shapes(logits=(2, 5)) == ((2,), ())
    with pytest.raises(ValueError, match="broadcast"):
        dist.Normal.infer_shapes(loc=(3,), scale=(4,))


def test_to_event_errors_state_shapes():
    d = dist.Normal(torch.zeros(2, 3), 1.0)
    with pytest.raises(ValueError, match=r"to_event\(3\).*batch_shape \(2, 3\)"):
        d.to_event(3)
    with pytest.raises(ValueError, match=r"event_shape \(\)"):
        d.to_event(-1)
    with pytest.raises(TypeError, match="int"):
        d.to_event(1.5)
    mvn = dist.MultivariateNormal(torch.zeros(2, 3), torch.eye(3))
    with pytest.raises(ValueError, match="belongs to MultivariateNormal"):
        mvn.to_event(1).to_event(-2)


def test_to_event_none_and_negative():
    d = dist.Normal(torch.zeros(2, 3, 4), 1.0)
    assert d.to_event().event_shape == (2, 3, 4)
    assert d.to_event(0) is d
    e = d.to_event(3).to_event(-2)
    assert (e.batch_shape, e.event_shape) == ((2, 3), (4,))
    assert d.to_event(1).to_event(-1) is d
    # nested Independents are peeled as a whole
    nested = dist.Independent(dist.Independent(d, 1), 1)
    peeled = nested.to_event(-2)
    assert peeled.batch_shape == (2, 3, 4) and peeled.event_shape == ()


def test_score_parts():
    d = dist.Normal(torch.zeros(3), 1.0)
    x = d.sample()
    parts = d.score_parts(x)
    assert parts.score_function == 0 and torch.equal(parts.entropy_term, d.log_prob(x))
    b = dist.Bernoulli(torch.full((3,), 0.3))
    parts = b.score_parts(torch.ones(3))
    assert parts.entropy_term == 0 and torch.equal(parts.score_function, b.log_prob(torch.ones(3)))
    # forcing non-reparameterized sampling switches the parts
    d2 = dist.Normal(torch.zeros(3), 1.0).has_rsample_(False)
    assert not d2.has_rsample and d2.score_parts(x).entropy_term == 0
    with pytest.raises(ValueError, match="no reparameterized sampler"):
        dist.Bernoulli(0.5).has_rsample_(True)


# --- compositions in every order ---------------------------------------------------------


class Reference:
    """Brute-force semantics of a composed univariate Normal: full elementwise
    parameters, a full mask, and how many rightmost dims are event dims."""

    def __init__(self, loc, scale):
        self.loc, self.scale = torch.broadcast_tensors(loc, scale)
        self.mask = torch.ones(self.loc.shape, dtype=torch.bool)
        self.n_event = 0

    @property
    def batch_shape(self):
        return self.loc.shape[: self.loc.dim() - self.n_event]

    def log_prob(self, x):
        lp = torch.distributions.Normal(self.loc, self.scale).log_prob(x)
        lp = torch.where(self.mask, lp, torch.zeros(()))
        return lp.sum(tuple(range(-self.n_event, 0))) if self.n_event else lp


def op_to_event(d, ref):
    if len(ref.batch_shape) == 0:
        return d, ref
    ref.n_event += 1
    return d.to_event(1), ref


def op_expand(d, ref):
    batch = ref.batch_shape
    target = (5,) + tuple(4 if s == 1 else s for s in batch)
    full = target + ref.loc.shape[len(batch) :]
    ref.loc, ref.scale = ref.loc.expand(full), ref.scale.expand(full)
    ref.mask = ref.mask.expand(full)
    return d.expand(target), ref


def op_expand_by(d, ref):
    ref.loc, ref.scale = (
        ref.loc.expand((2,) + ref.loc.shape),
        ref.scale.expand((2,) + ref.loc.shape),
    )
    ref.mask = ref.mask.expand((2,) + ref.mask.shape)
    return d.expand_by((2,)), ref


def op_mask(d, ref):
    batch = ref.batch_shape
    g = torch.Generator().manual_seed(len(batch))
    m = torch.rand(batch[-1:], generator=g) > 0.4 if batch else torch.tensor(False)
    ref.mask = ref.mask & m.reshape(m.shape + (1,) * ref.n_event)
    return d.mask(m), ref


OPS = {"to_event": op_to_event, "expand": op_expand, "expand_by": op_expand_by, "mask": op_mask}


@pytest.mark.parametrize("order", list(itertools.permutations(OPS)), ids="-".join)
def test_compositions_in_every_order(order):
    torch.manual_seed(1)
    loc, scale = torch.randn(3, 1), torch.rand(3, 1) + 0.5
    d, ref = dist.Normal(loc, scale), Reference(loc, scale)
    for name in order + order[:1]:  # apply every op, then the first once more
        d, ref = OPS[name](d, ref)
        assert d.batch_shape == ref.batch_shape
        assert d.batch_shape + d.event_shape == ref.loc.shape
        x = d.sample((2,))
        assert x.shape == (2,) + ref.loc.shape
        assert torch.allclose(d.log_prob(x), ref.log_prob(x), atol=1e-6)
        assert d.log_prob(x).shape == (2,) + d.batch_shape


# --- conjugate updates against numerical integration --------------------------------------


def _check_conjugate(prior, other, xs, integral):
    posterior, log_normalizer = prior.conjugate_update(other)
    lhs = prior.log_prob(xs) + other.log_prob(xs)
    rhs = posterior.log_prob(xs) + log_normalizer
    assert torch.allclose(lhs, rhs, atol=1e-8)
    np.testing.assert_allclose(log_normalizer.numpy(), np.log(integral), rtol=1e-6)


@pytest.mark.parametrize("a1, b1, a2, b2", [(2.0, 5.0, 10.0, 3.0), (0.7, 1.3, 1.5, 0.9)])
def test_beta_conjugate_update(a1, b1, a2, b2):
    prior = dist.Beta(torch.tensor(a1, dtype=DT), torch.tensor(b1, dtype=DT))
    other = dist.Beta(torch.tensor(a2, dtype=DT), torch.tensor(b2, dtype=DT))

    def f(x):
        x = torch.tensor(x, dtype=DT)
        return (prior.log_prob(x) + other.log_prob(x)).exp().item()

    integral = scipy.integrate.quad(f, 0, 1)[0]
    _check_conjugate(prior, other, torch.tensor([0.1, 0.5, 0.95], dtype=DT), integral)


def test_gamma_conjugate_update():
    prior = dist.Gamma(torch.tensor([2.0, 0.8], dtype=DT), torch.tensor([1.0, 2.0], dtype=DT))
    other = dist.Gamma(torch.tensor([3.0, 1.5], dtype=DT), torch.tensor([0.5, 0.3], dtype=DT))
    integrals = []
    for i in range(2):

        def f(x, i=i):
            x = torch.tensor(x, dtype=DT)
            return (prior.log_prob(x)[i] + other.log_prob(x)[i]).exp().item()

        integrals.append(scipy.integrate.quad(f, 0, np.inf)[0])
    xs = torch.tensor([[0.3], [1.0], [4.0]], dtype=DT)
    _check_conjugate(prior, other, xs, np.array(integrals))


def test_dirichlet_conjugate_update():
    prior = dist.Dirichlet(torch.tensor([2.0, 1.5, 3.0], dtype=DT))
    other = dist.Dirichlet(torch.tensor([1.2, 4.0, 2.0], dtype=DT))

    c1, c2 = prior.concentration.numpy(), other.concentration.numpy()
    log_b = (
        sum(scipy.special.gammaln(c) for c in (c1, c2)).sum()
        - scipy.special.gammaln(c1.sum())
        - scipy.special.gammaln(c2.sum())
    )

    def f(y, x):  # the product of the two densities, written out independently
        v = np.maximum(np.array([x, y, 1 - x - y]), 1e-300)
        return math.exp(((c1 + c2 - 2) * np.log(v)).sum() - log_b)

    integral = scipy.integrate.dblquad(f, 0, 1, 0, lambda x: 1 - x)[0]
    xs = torch.tensor([[0.2, 0.3, 0.5], [0.6, 0.1, 0.3]], dtype=DT)
    _check_conjugate(prior, other, xs, integral)


def test_independent_and_masked_conjugate_update():
    a = torch.tensor([[2.0, 3.0], [1.5, 4.0]], dtype=DT)
    prior = dist.Beta(a, 2.0).to_event(1)
    other = dist.Beta(a + 1, 1.5).to_event(1)
    posterior, log_norm = prior.conjugate_update(other)
    assert isinstance(posterior, dist.Independent) and posterior.event_shape == (2,)
    x = torch.tensor([0.3, 0.6], dtype=DT)
    assert torch.allclose(prior.log_prob(x) + other.log_prob(x), posterior.log_prob(x) + log_norm)
    assert log_norm.shape == (2,)
    with pytest.raises(ValueError, match="reinterpreted_batch_ndims=1"):
        prior.conjugate_update(dist.Beta(a, 2.0))
    with pytest.raises(TypeError, match="same family"):
        dist.Beta(2.0, 3.0).conjugate_update(dist.Gamma(2.0, 3.0))
    mask = torch.tensor([True, False])
    post_m, log_norm_m = dist.Beta(a, 2.0).mask(mask).conjugate_update(dist.Beta(a + 1, 1.5))
    assert isinstance(post_m, MaskedDistribution)
    assert torch.equal(log_norm_m[:, 1], torch.zeros(2, dtype=DT))


# --- KL divergences -------------------------------------------------------------------------


def _normals():
    torch.manual_seed(2)
    p = dist.Normal(torch.randn(2, 3), torch.rand(2, 3) + 0.5)
    q = dist.Normal(torch.randn(2, 3), torch.rand(2, 3) + 0.5)
    return p, q


def test_kl_masked():
    p, q = _normals()
    kl = kl_divergence(p, q)
    m1 = torch.tensor([True, False, True])
    m2 = torch.tensor([[True], [False]])
    assert torch.allclose(kl_divergence(p.mask(m1), q), kl * m1)
    assert torch.allclose(kl_divergence(p, q.mask(m2)), kl * m2)
    assert torch.allclose(kl_divergence(p.mask(m1), q.mask(m2)), kl * (m1 & m2))
    assert torch.equal(kl_divergence(p.mask(False), q), torch.zeros(2, 3))
    assert torch.equal(kl_divergence(p.mask(True), q.mask(True)), kl)
    # KL of a masked distribution against an expanded one
    pe = dist.Normal(p.loc[0], p.scale[0]).expand((2, 3))
    assert torch.allclose(kl_divergence(pe, q.mask(m1)), kl_divergence(pe, q) * m1)
    assert torch.allclose(kl_divergence(q.mask(m1), pe), kl_divergence(q, pe) * m1)


def test_kl_expanded():
    p, q = _normals()
    p1 = dist.Normal(p.loc[:1], p.scale[:1])
    q1 = dist.Normal(q.loc[:1], q.scale[:1])
    expected = kl_divergence(p1, q1).expand(4, 3)
    pe = ExpandedDistribution(p1, (4, 3))
    qe = ExpandedDistribution(q1, (4, 3))
    assert torch.allclose(kl_divergence(pe, qe), expected)
    assert torch.allclose(kl_divergence(pe, q1), expected)
    assert torch.allclose(kl_divergence(p1, qe), expected)
    assert kl_divergence(pe.to_event(2), qe.to_event(2)).shape == ()
    assert torch.allclose(kl_divergence(pe.to_event(1), qe.to_event(1)), expected.sum(-1))


def test_kl_independent_different_ndims_and_mvn():
    torch.manual_seed(3)
    loc, scale = torch.randn(2, 3, dtype=DT), torch.rand(2, 3, dtype=DT) + 0.5
    cov = torch.randn(2, 3, 3, dtype=DT)
    cov = cov @ cov.mT + torch.eye(3, dtype=DT)
    q_loc = torch.randn(2, 3, dtype=DT)
    p = dist.Normal(loc, scale).to_event(2)
    q = dist.MultivariateNormal(q_loc, cov).to_event(1)
    expected = torch.distributions.kl_divergence(
        torch.distributions.MultivariateNormal(loc, scale_tril=torch.diag_embed(scale)),
        torch.distributions.MultivariateNormal(q_loc, cov),
    )
    assert torch.allclose(kl_divergence(p, q), expected.sum())
    assert torch.allclose(kl_divergence(dist.Normal(loc, scale).to_event(1), q.base_dist), expected)
    # and the other way round
    back = kl_divergence(q.base_dist, dist.Normal(loc, scale).to_event(1))
    expected_back = torch.distributions.kl_divergence(
        torch.distributions.MultivariateNormal(q_loc, cov),
        torch.distributions.MultivariateNormal(loc, scale_tril=torch.diag_embed(scale)),
    )
    assert torch.allclose(back, expected_back)
    assert torch.allclose(kl_divergence(q, p), expected_back.sum())
    # Monte Carlo agreement of the diagonal-normal rule
    torch.manual_seed(4)
    pd = dist.Normal(loc, scale).to_event(1)
    x = pd.sample((20000,))
    mc = (pd.log_prob(x) - q.base_dist.log_prob(x)).mean(0)
    se = (pd.log_prob(x) - q.base_dist.log_prob(x)).std(0) / math.sqrt(20000)
    assert ((mc - expected).abs() < 5 * se).all()
    with pytest.raises(NotImplementedError):
        kl_divergence(
            dist.Gamma(torch.ones(3), 1.0).to_event(1),
            dist.MultivariateNormal(torch.zeros(3), torch.eye(3)),
        )


def test_has_rsample_forcing_on_wrappers():
    base = dist.Normal(torch.zeros(3, requires_grad=True), 1.0)
    ind = base.to_event(1).has_rsample_(False)
    assert not ind.has_rsample and base.has_rsample
    assert not ind().requires_grad
    parts = ind.score_parts(torch.zeros(3))
    assert parts.entropy_term == 0 and parts.score_function.shape == ()
    with pytest.raises(ValueError, match="no reparameterized sampler"):
        dist.Bernoulli(torch.full((3,), 0.5)).mask(torch.ones(3) > 0).has_rsample_(True)
    with pytest.raises(ValueError, match="no reparameterized sampler"):
        dist.Bernoulli(torch.full((3,), 0.5)).to_event(1).has_rsample_(True)


def test_independent_delegates_validation_to_base():
    base = dist.Normal(torch.zeros(3), 1.0, validate_args=False)
    ind = dist.Independent(base, 1)
    assert ind._validate_args is False
    ind.log_prob(torch.full((3,), float("nan")))  # base does not validate
    checked = dist.Independent(dist.Normal(torch.zeros(3), 1.0), 1)
    with pytest.raises(ValueError, match="support"):
        checked.log_prob(torch.full((3,), float("nan")))


def test_to_event_of_an_independent_is_one_independent_of_the_base():
    base = dist.Normal(torch.zeros(2, 3, 4), 1.0)
    d = base.to_event(1).to_event(1)
    assert type(d) is dist.Independent and d.base_dist is base
    assert d.reinterpreted_batch_ndims == 2 and d.event_shape == (3, 4)
    x = torch.randn(2, 3, 4)
    assert torch.equal(d.log_prob(x), base.log_prob(x).sum((-1, -2)))
    assert d.to_event(-1).base_dist is base and d.to_event(-2) is base
    forced = base.to_event(1).has_rsample_(False)  # keeps its own flag: not merged
    assert forced.to_event(1).base_dist is forced
