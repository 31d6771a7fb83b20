"""NanMaskedNormal and NanMaskedMultivariateNormal: missing entries (NaN) score 0 or are
marginalized, checked against scipy on the observed coordinates."""

import io
import math
import pickle

import numpy as np
import pytest
import scipy.stats
import torch

import ember
import ember.distributions as dist
from ember.infer import SVI, Trace_ELBO
from ember.infer.autoguide import AutoNormal
from ember.optim import Adam

D = torch.float64


def roundtrip(d):
    buf = io.BytesIO()
    torch.save(d, buf, pickle_protocol=pickle.HIGHEST_PROTOCOL)
    buf.seek(0)
    return torch.load(buf, weights_only=False)


def test_normal_density_matches_scipy_and_zero_where_missing():
    loc = torch.tensor([0.5, -1.0, 2.0, 0.0], dtype=D)
    scale = torch.tensor([1.0, 2.0, 0.5, 3.0], dtype=D)
    x = torch.tensor([0.1, math.nan, 2.5, -math.inf], dtype=D)
    lp = dist.NanMaskedNormal(loc, scale).log_prob(x)
    ref = scipy.stats.norm(loc.numpy(), scale.numpy()).logpdf(x.numpy())
    np.testing.assert_allclose(lp[[0, 2]].numpy(), ref[[0, 2]], rtol=1e-12)
    assert lp[1] == 0 and lp[3] == 0


def test_normal_gradients_finite_and_zero_for_missing():
    loc = torch.zeros(3, dtype=D, requires_grad=True)
    scale = torch.ones(3, dtype=D, requires_grad=True)
    x = torch.tensor([1.0, math.nan, -2.0], dtype=D)
    g_loc, g_scale = torch.autograd.grad(
        dist.NanMaskedNormal(loc, scale).log_prob(x).sum(), [loc, scale]
    )
    # d/dloc log N(x; loc, 1) = x - loc; d/dscale = (x - loc)^2 - 1 at scale 1
    assert torch.equal(g_loc, torch.tensor([1.0, 0.0, -2.0], dtype=D))
    assert torch.equal(g_scale, torch.tensor([0.0, 0.0, 3.0], dtype=D))


def test_normal_shapes_expand_to_event_mask_and_sampling():
    d = dist.NanMaskedNormal(torch.zeros(3, dtype=D), torch.ones(3, dtype=D))
    e = d.expand((2, 3))
    assert type(e) is dist.NanMaskedNormal and e.batch_shape == (2, 3)
    x = e.sample((4,))
    assert x.shape == (4, 2, 3)
    x[0, 0, 1] = math.nan
    lp = e.log_prob(x)
    assert lp.shape == (4, 2, 3) and lp[0, 0, 1] == 0
    assert e.to_event(2).log_prob(x).shape == (4,)
    m = e.mask(torch.tensor([True, False, True]))
    assert (m.log_prob(x)[..., 1] == 0).all()
    torch.manual_seed(0)
    n = 20000
    s = dist.NanMaskedNormal(torch.tensor(1.5, dtype=D), torch.tensor(2.0, dtype=D)).sample((n,))
    assert float(s.mean()) == pytest.approx(1.5, abs=4 * 2.0 / math.sqrt(n))


def mvn_case(p, batch=()):
    g = torch.Generator().manual_seed(p)
    loc = torch.randn(batch + (p,), generator=g, dtype=D)
    a = torch.randn(batch + (p, p), generator=g, dtype=D)
    cov = a @ a.transpose(-1, -2) + p * torch.eye(p, dtype=D)
    return loc, cov


@pytest.mark.parametrize("p", [1, 2, 4])
def test_mvn_marginalizes_missing_coordinates_against_scipy(p):
    loc, cov = mvn_case(p)
    g = torch.Generator().manual_seed(7)
    n = 40
    x = torch.randn(n, p, generator=g, dtype=D)
    ok = torch.rand(n, p, generator=g) < 0.5
    ok[0] = True
    ok[1] = False
    x[~ok] = math.nan
    lp = dist.NanMaskedMultivariateNormal(loc, cov).log_prob(x)
    assert lp.shape == (n,)
    for i in range(n):
        o = ok[i].numpy()
        if not o.any():
            assert lp[i] == 0
            continue
        ref = scipy.stats.multivariate_normal(loc.numpy()[o], cov.numpy()[np.ix_(o, o)])
        assert float(lp[i]) == pytest.approx(ref.logpdf(x[i].numpy()[o]), rel=1e-10)


def test_mvn_fully_observed_equals_mvn_and_batched_parameters():
    loc, cov = mvn_case(3, (2,))
    x = torch.randn(5, 2, 3, dtype=D)
    d = dist.NanMaskedMultivariateNormal(loc, scale_tril=torch.linalg.cholesky(cov))
    ref = dist.MultivariateNormal(loc, cov)
    assert torch.allclose(d.log_prob(x), ref.log_prob(x))
    x[1, 0, 2] = math.nan
    lp = d.log_prob(x)
    assert lp.shape == (5, 2)
    marg = dist.MultivariateNormal(loc[0, :2], cov[0, :2, :2])
    assert torch.allclose(lp[1, 0], marg.log_prob(x[1, 0, :2]))
    assert torch.allclose(lp[1, 1], ref.log_prob(x[1].nan_to_num())[1])


def test_mvn_gradients_finite_with_missing():
    loc, cov = mvn_case(3)
    loc.requires_grad_()
    tril = torch.linalg.cholesky(cov).requires_grad_()
    x = torch.tensor([[1.0, math.nan, 0.5], [math.nan] * 3], dtype=D)
    lp = dist.NanMaskedMultivariateNormal(loc, scale_tril=tril).log_prob(x)
    g_loc, g_tril = torch.autograd.grad(lp.sum(), [loc, tril])
    assert torch.isfinite(g_loc).all() and torch.isfinite(g_tril).all()
    # the marginal of the observed coordinates does not involve the missing one's mean
    assert g_loc[1] == 0 and (g_loc[[0, 2]] != 0).all()


def test_mvn_shapes_and_sampling_moments():
    loc, cov = mvn_case(2)
    d = dist.NanMaskedMultivariateNormal(loc, cov)
    e = d.expand((3,))
    assert type(e) is dist.NanMaskedMultivariateNormal and e.batch_shape == (3,)
    assert e.event_shape == (2,)
    assert e.mask(torch.tensor([True, False, True])).log_prob(e.sample())[1] == 0
    assert e.to_event(1).log_prob(e.sample((4,))).shape == (4,)
    torch.manual_seed(1)
    n = 20000
    s = d.sample((n,))
    se = cov.diagonal().sqrt() / math.sqrt(n)
    assert ((s.mean(0) - loc).abs() < 4 * se).all()


def test_svi_with_missing_data_runs_with_finite_loss():
    ember.clear_param_store()
    torch.manual_seed(0)
    data = torch.randn(50, 3)
    data[torch.rand(50, 3) < 0.4] = math.nan

    def model(data):
        loc = ember.sample("loc", dist.Normal(torch.zeros(3), torch.ones(3)).to_event(1))
        with ember.plate("data", len(data)):
            ember.sample("obs", dist.NanMaskedMultivariateNormal(loc, torch.eye(3)), obs=data)

    svi = SVI(model, AutoNormal(model), Adam({"lr": 1e-3}), Trace_ELBO())
    for _ in range(3):
        assert math.isfinite(svi.step(data))


def test_pickle_roundtrip():
    loc, cov = mvn_case(2)
    for d in [
        dist.NanMaskedNormal(torch.zeros(2), torch.ones(2)),
        dist.NanMaskedMultivariateNormal(loc, cov),
    ]:
        back = roundtrip(d)
        assert type(back) is type(d)
        x = torch.tensor([0.3, math.nan], dtype=back.loc.dtype)
        assert torch.equal(back.log_prob(x), d.log_prob(x))
