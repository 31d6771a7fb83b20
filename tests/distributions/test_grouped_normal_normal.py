"""GroupedNormalNormal: density against the joint multivariate normal (scipy), posterior
against the conjugate closed form, sample moments, shapes, validation and pickling."""

import io
import math
import pickle

import numpy as np
import pytest
import scipy.stats
import torch

import ember
import ember.distributions as dist
from ember.distributions.testing.gof import auto_goodness_of_fit
from ember.infer import Trace_ELBO

D = torch.float64


def case(batch=()):
    g = torch.Generator().manual_seed(0)
    group_idx = torch.tensor([1, 0, 2, 1, 1, 0])
    prior_loc = torch.randn(batch + (4,), generator=g, dtype=D)  # group 3 has no data
    prior_scale = 0.5 + torch.rand(batch + (4,), generator=g, dtype=D)
    obs_scale = 0.3 + torch.rand(batch + (6,), generator=g, dtype=D)
    return prior_loc, prior_scale, obs_scale, group_idx


def joint_mvn(prior_loc, prior_scale, obs_scale, group_idx):
    idx = group_idx.numpy()
    mean = prior_loc.numpy()[idx]
    same = idx[:, None] == idx[None, :]
    cov = np.where(same, prior_scale.numpy()[idx][:, None] ** 2, 0.0)
    cov = cov + np.diag(obs_scale.numpy() ** 2)
    return scipy.stats.multivariate_normal(mean, cov)


def test_log_prob_matches_joint_normal():
    params = case()
    d = dist.GroupedNormalNormal(*params)
    x = torch.randn(5, 6, dtype=D)
    ref = joint_mvn(*params).logpdf(x.numpy())
    np.testing.assert_allclose(d.log_prob(x).numpy(), ref, rtol=1e-12)


def test_batched_parameters_match_each_batch_member():
    params = case((3,))
    d = dist.GroupedNormalNormal(*params)
    assert d.batch_shape == (3,) and d.event_shape == (6,)
    x = torch.randn(2, 3, 6, dtype=D)
    lp = d.log_prob(x)
    assert lp.shape == (2, 3)
    for b in range(3):
        mvn = joint_mvn(params[0][b], params[1][b], params[2][b], params[3])
        np.testing.assert_allclose(lp[:, b].numpy(), mvn.logpdf(x[:, b].numpy()), rtol=1e-12)


def test_posterior_matches_conjugate_closed_form():
    prior_loc, prior_scale, obs_scale, group_idx = case()
    x = torch.randn(6, dtype=D)
    post = dist.GroupedNormalNormal(prior_loc, prior_scale, obs_scale, group_idx).get_posterior(x)
    assert post.batch_shape == (4,)
    for g in range(4):
        sel = group_idx == g
        precision = prior_scale[g] ** -2 + (obs_scale[sel] ** -2).sum()
        mean = (
            prior_loc[g] * prior_scale[g] ** -2 + (x[sel] * obs_scale[sel] ** -2).sum()
        ) / precision
        assert float(post.loc[g]) == pytest.approx(float(mean), rel=1e-12)
        assert float(post.scale[g]) == pytest.approx(float(precision**-0.5), rel=1e-12)
    # the empty group keeps its prior
    assert float(post.loc[3]) == pytest.approx(float(prior_loc[3]))


def test_samples_have_the_joint_mean_and_covariance():
    params = case()
    d = dist.GroupedNormalNormal(*params)
    torch.manual_seed(0)
    n = 40000
    x = d.sample((n,))
    mvn = joint_mvn(*params)
    sd = np.sqrt(np.diag(mvn.cov))
    assert (np.abs(x.mean(0).numpy() - mvn.mean) < 4 * sd / math.sqrt(n)).all()
    emp = np.cov(x.numpy().T)
    # standard error of a sample covariance of jointly normal entries
    se = np.sqrt((mvn.cov**2 + np.outer(np.diag(mvn.cov), np.diag(mvn.cov))) / n)
    assert (np.abs(emp - mvn.cov) < 4.5 * se).all()
    assert torch.allclose(d.mean, torch.tensor(mvn.mean))
    assert torch.allclose(d.variance, torch.tensor(np.diag(mvn.cov)))


def test_rsample_gradient_matches_finite_differences():
    prior_loc, prior_scale, obs_scale, group_idx = case()
    prior_scale = prior_scale.clone().requires_grad_()
    torch.manual_seed(3)
    x = dist.GroupedNormalNormal(prior_loc, prior_scale, obs_scale, group_idx).rsample((7,))
    (grad,) = torch.autograd.grad(x.sum(), [prior_scale])
    h = 1e-6
    for g in range(4):
        moved = []
        for sign in (1, -1):
            p = prior_scale.detach().clone()
            p[g] += sign * h
            torch.manual_seed(3)
            moved.append(
                dist.GroupedNormalNormal(prior_loc, p, obs_scale, group_idx).rsample((7,)).sum()
            )
        fd = (moved[0] - moved[1]) / (2 * h)
        assert float(grad[g]) == pytest.approx(float(fd), rel=1e-5, abs=1e-6)


def test_shapes_expand_to_event_mask():
    d = dist.GroupedNormalNormal(*case())
    e = d.expand((2, 3))
    assert type(e) is dist.GroupedNormalNormal and e.batch_shape == (2, 3)
    x = e.sample((4,))
    assert x.shape == (4, 2, 3, 6)
    assert torch.allclose(e.log_prob(x), d.log_prob(x))
    assert e.to_event(1).log_prob(x).shape == (4, 2)
    m = e.mask(torch.tensor([True, False, True]))
    assert (m.log_prob(x)[..., 1] == 0).all()


def test_scalar_parameters_broadcast():
    group_idx = torch.tensor([0, 1, 1])
    d = dist.GroupedNormalNormal(torch.zeros(2), torch.tensor(1.0), torch.tensor(0.5), group_idx)
    assert d.batch_shape == () and d.event_shape == (3,)
    assert d.obs_scale.shape == (3,) and d.prior_scale.shape == (2,)


def test_validation_errors():
    prior_loc, prior_scale, obs_scale, _ = case()
    with pytest.raises(ValueError, match=r"group_idx"):
        dist.GroupedNormalNormal(
            prior_loc, prior_scale, obs_scale, torch.tensor([0, 1, 4, 0, 0, 0])
        )
    with pytest.raises(ValueError, match=r"group_idx"):
        dist.GroupedNormalNormal(prior_loc, prior_scale, obs_scale, torch.zeros(6))
    with pytest.raises(ValueError, match=r"obs_scale"):
        dist.GroupedNormalNormal(prior_loc, prior_scale, obs_scale[:5], torch.zeros(6).long())
    with pytest.raises(ValueError, match="prior_scale"):
        dist.GroupedNormalNormal(
            prior_loc, -prior_scale, obs_scale, torch.zeros(6).long(), validate_args=True
        )
    d = dist.GroupedNormalNormal(prior_loc, prior_scale, obs_scale, torch.zeros(6).long())
    with pytest.raises(ValueError, match="6 observations"):
        d.log_prob(torch.zeros(5, dtype=D))


def test_as_an_observed_site_in_a_model():
    prior_loc, prior_scale, obs_scale, group_idx = case()
    x = torch.randn(6, dtype=D)

    def model():
        ember.sample(
            "x", dist.GroupedNormalNormal(prior_loc, prior_scale, obs_scale, group_idx), obs=x
        )

    tr = ember.poutine.trace(model).get_trace()
    expected = joint_mvn(prior_loc, prior_scale, obs_scale, group_idx).logpdf(x.numpy())
    assert float(tr.log_prob_sum()) == pytest.approx(expected, rel=1e-12)
    assert Trace_ELBO().loss(model, lambda: None) == pytest.approx(-expected, rel=1e-12)


def test_pickle_roundtrip():
    d = dist.GroupedNormalNormal(*case((2,)))
    buf = io.BytesIO()
    torch.save(d, buf, pickle_protocol=pickle.HIGHEST_PROTOCOL)
    buf.seek(0)
    back = torch.load(buf, weights_only=False)
    assert type(back) is dist.GroupedNormalNormal
    x = torch.randn(2, 6, dtype=D)
    assert torch.equal(back.log_prob(x), d.log_prob(x))


def test_samples_fit_the_density():
    torch.manual_seed(0)
    d = dist.GroupedNormalNormal(
        torch.zeros(2, dtype=D),
        torch.ones(2, dtype=D),
        0.5 * torch.ones(3, dtype=D),
        torch.tensor([0, 0, 1]),
    )
    x = d.sample((4000,))
    assert auto_goodness_of_fit(x, d.log_prob(x).exp()) > 1e-3
