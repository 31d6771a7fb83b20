"""Batched parameters of GaussianScaleMixture and AVFMultivariateNormal: every batch member
behaves as the unbatched distribution with its parameters (density against scipy,
moments, pathwise gradients), and shapes under expand/to_event/mask."""

import io
import math
import pickle

import numpy as np
import pytest
import torch
from scipy import stats

import ember.distributions as dist

D = torch.float64


def gsm_params(batch, K=3, dim=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    coord = 0.5 + torch.rand(batch + (dim,), generator=g, dtype=D)
    logits = torch.randn(batch + (K,), generator=g, dtype=D)
    comp = 0.3 + 2 * torch.rand(batch + (K,), generator=g, dtype=D)
    return coord, logits, comp


def gsm_scipy_logpdf(coord, logits, comp, z):
    pi = torch.softmax(logits, -1).numpy()
    pdf = sum(
        pi[k]
        * stats.multivariate_normal(
            np.zeros(len(coord)), np.diag((comp[k] * coord).numpy() ** 2)
        ).pdf(z)
        for k in range(len(pi))
    )
    return np.log(pdf)


def test_gsm_batched_density_matches_scipy_per_member():
    coord, logits, comp = gsm_params((2, 3))
    d = dist.GaussianScaleMixture(coord, logits, comp)
    assert d.batch_shape == (2, 3) and d.event_shape == (2,)
    z = torch.randn(4, 2, 3, 2, dtype=D) * 2
    lp = d.log_prob(z)
    assert lp.shape == (4, 2, 3)
    for i in range(2):
        for j in range(3):
            ref = gsm_scipy_logpdf(coord[i, j], logits[i, j], comp[i, j], z[:, i, j].numpy())
            np.testing.assert_allclose(lp[:, i, j].numpy(), ref, rtol=1e-10)


def test_gsm_broadcasts_shared_parameters():
    coord, logits, comp = gsm_params((3,))
    d = dist.GaussianScaleMixture(coord, logits[0], comp[0])  # shared mixture weights
    assert d.batch_shape == (3,)
    z = torch.randn(3, 2, dtype=D)
    for j in range(3):
        single = dist.GaussianScaleMixture(coord[j], logits[0], comp[0])
        assert torch.allclose(d.log_prob(z)[j], single.log_prob(z[j]))
    assert dist.GaussianScaleMixture.infer_shapes((3, 2), (4,), (1, 4)) == ((3,), (2,))


def test_gsm_batched_sample_moments():
    coord, logits, comp = gsm_params((2,), dim=3)
    d = dist.GaussianScaleMixture(coord, logits, comp)
    torch.manual_seed(0)
    n = 40000
    z = d.sample((n,))
    assert z.shape == (n, 2, 3)
    var = d.variance
    assert var.shape == (2, 3) and d.mean.shape == (2, 3)
    # standard error of the sample second moment: sqrt((E z^4 - var^2) / n), E z^4 from the
    # mixture: sum_k pi_k 3 (s_k c)^4
    pi = torch.softmax(logits, -1)
    m4 = 3 * (pi * comp.pow(4)).sum(-1, keepdim=True) * coord.pow(4)
    se = ((m4 - var.pow(2)) / n).sqrt()
    assert ((z.pow(2).mean(0) - var).abs() < 4.5 * se).all()


def test_gsm_batched_pathwise_gradient_matches_each_member():
    coord, logits, comp = gsm_params((2,))
    params = [p.clone().requires_grad_() for p in (coord, logits, comp)]
    torch.manual_seed(5)
    reps, n = 20, 2000
    estimates = []
    for _ in range(reps):
        z = dist.GaussianScaleMixture(*params).rsample((n,))
        grads = torch.autograd.grad(z.pow(2).sum() / n, params)
        estimates.append(torch.cat([g.reshape(-1) for g in grads]))
    estimates = torch.stack(estimates)
    mean, se = estimates.mean(0), estimates.std(0) / math.sqrt(reps)
    # the gradient of E|z|^2 = sum_i c_i^2 sum_k pi_k s_k^2, in closed form
    exact = [p.clone().requires_grad_() for p in (coord, logits, comp)]
    c, lg, s = exact
    value = (c.pow(2).sum(-1) * (torch.softmax(lg, -1) * s.pow(2)).sum(-1)).sum()
    expected = torch.cat([g.reshape(-1) for g in torch.autograd.grad(value, exact)])
    assert ((mean - expected).abs() < 4.5 * se).all()


def test_gsm_shapes_expand_to_event_mask_and_pickle():
    coord, logits, comp = gsm_params((3,))
    d = dist.GaussianScaleMixture(coord, logits, comp)
    e = d.expand((2, 3))
    assert type(e) is dist.GaussianScaleMixture and e.batch_shape == (2, 3)
    x = e.sample((4,))
    assert x.shape == (4, 2, 3, 2)
    assert torch.allclose(e.log_prob(x), d.log_prob(x))
    assert e.to_event(1).log_prob(x).shape == (4, 2)
    assert (e.mask(torch.tensor([True, False, True])).log_prob(x)[..., 1] == 0).all()
    buf = io.BytesIO()
    torch.save(d, buf, pickle_protocol=pickle.HIGHEST_PROTOCOL)
    buf.seek(0)
    assert torch.equal(torch.load(buf, weights_only=False).log_prob(x), d.log_prob(x))


def avf_params(batch, dim=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    loc = torch.randn(batch + (dim,), generator=g, dtype=D)
    a = torch.randn(batch + (dim, dim), generator=g, dtype=D)
    tril = a.tril(-1) + torch.diag_embed(0.5 + torch.rand(batch + (dim,), generator=g, dtype=D))
    return loc, tril


def test_avf_batched_samples_and_density_are_the_mvn():
    loc, tril = avf_params((2, 2))
    cv = torch.randn(2, 1, 3, dtype=D)
    d = dist.AVFMultivariateNormal(loc, tril, cv)
    assert d.batch_shape == (2, 2) and d.event_shape == (3,)
    assert dist.AVFMultivariateNormal.infer_shapes((2, 1, 3), (2, 3, 3), (2, 1, 3)) == (
        (2, 2),
        (3,),
    )
    torch.manual_seed(0)
    z = d.rsample((5,))
    torch.manual_seed(0)
    ref = dist.MultivariateNormal(loc, scale_tril=tril)
    assert torch.allclose(z, ref.rsample((5,)))
    cov = (tril @ tril.transpose(-1, -2)).numpy()
    for i in range(2):
        for j in range(2):
            sp = stats.multivariate_normal(loc[i, j].numpy(), cov[i, j]).logpdf(z[:, i, j].numpy())
            np.testing.assert_allclose(d.log_prob(z)[:, i, j].numpy(), sp, rtol=1e-10)


@pytest.mark.parametrize("shared_tril", [False, True])
def test_avf_batched_gradient_is_unbiased(shared_tril):
    # E[d/dL sum z^2] = 2 L (the gradient of tr(L L^T)), whatever the control variate
    loc, tril = avf_params((2,))
    if shared_tril:
        tril = tril[0]
    loc = loc.requires_grad_()
    tril = tril.clone().requires_grad_()
    cv = torch.randn(2, 2, 3, dtype=D, requires_grad=True)
    # replicate the estimator to get its standard error
    torch.manual_seed(1)
    reps, n = 20, 2000
    estimates = []
    for _ in range(reps):
        z = dist.AVFMultivariateNormal(loc, tril, cv).rsample((n,))
        g_loc, g_tril, g_cv = torch.autograd.grad(z.pow(2).sum() / n, [loc, tril, cv])
        assert g_loc.shape == loc.shape and g_tril.shape == tril.shape
        assert g_cv.shape == cv.shape
        estimates.append(torch.cat([g_loc.reshape(-1), g_tril.reshape(-1)]))
    estimates = torch.stack(estimates)
    mean, se = estimates.mean(0), estimates.std(0) / math.sqrt(reps)
    copies = 2 if shared_tril else 1  # a shared scale_tril collects both batch members
    expected = torch.cat([2 * loc.detach().reshape(-1), (2 * copies * tril.detach()).reshape(-1)])
    assert ((mean - expected).abs() <= 4.5 * se + 1e-12).all()


def test_avf_shapes_expand_to_event_mask():
    loc, tril = avf_params((3,))
    d = dist.AVFMultivariateNormal(loc, tril, torch.zeros(2, 1, 3, dtype=D))
    e = d.expand((2, 3))
    assert e.batch_shape == (2, 3)
    x = e.sample((4,))
    assert x.shape == (4, 2, 3, 3)
    assert torch.allclose(e.log_prob(x), d.log_prob(x))
    assert e.to_event(1).log_prob(x).shape == (4, 2)
    assert (e.mask(torch.tensor([True, False, True])).log_prob(x)[..., 1] == 0).all()
    assert math.isfinite(float(d.log_prob(x).sum()))
