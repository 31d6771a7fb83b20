"""Linear flows (Householder, matrix exponential, 1x1 convolution, lower-Cholesky affine)
and the orthogonal DCT / Haar transforms: against explicit matrices and autograd Jacobians."""

import math

import pytest
import torch
from torch.autograd.functional import jacobian
from torch.nn import functional as F

import ember.distributions as dist
from ember.distributions import transforms as T

DT = torch.float64


def _logdet(f, x):
    return torch.linalg.slogdet(jacobian(f, x)).logabsdet


def _double(module, seed, scale=0.0):
    torch.manual_seed(seed)
    module = module.double()
    if scale:
        with torch.no_grad():
            for p in module.parameters():
                p.add_(scale * torch.randn_like(p))
    return module


# --- Householder ---------------------------------------------------------------------


def _householder_matrix(u):
    """The product H_{K-1} ... H_0 of the reflections with normals u (K, D)."""
    D = u.size(-1)
    out = torch.eye(D, dtype=u.dtype)
    for k in range(u.size(0)):
        n = u[k] / u[k].norm()
        out = (torch.eye(D, dtype=u.dtype) - 2 * torch.outer(n, n)) @ out
    return out


@pytest.mark.parametrize("count", [1, 2, 4])
def test_householder_is_the_product_of_reflections(count):
    flow = _double(T.Householder(4, count_transforms=count), seed=count)
    u = flow.u_unnormed.detach()
    Q = _householder_matrix(u)
    x = torch.randn(6, 4, dtype=DT)
    y = flow(x)
    assert torch.allclose(y, x @ Q.T, atol=1e-12)
    assert torch.allclose(Q @ Q.T, torch.eye(4, dtype=DT), atol=1e-12)
    J = jacobian(lambda v: flow(v), x[0])
    assert torch.allclose(J, Q, atol=1e-12)
    ladj = flow.log_abs_det_jacobian(x, y)
    assert ladj.shape == (6,)
    assert torch.allclose(ladj, _logdet(flow, x[0]).expand(6), atol=1e-12)
    assert torch.allclose(flow._inverse(y), x, atol=1e-12)


def test_householder_flow_keeps_a_standard_normal():
    flow = _double(T.householder(3), seed=0)
    d = dist.TransformedDistribution(dist.Normal(torch.zeros(3, dtype=DT), 1.0).to_event(1), flow)
    y = torch.randn(5, 3, dtype=DT)
    expected = dist.Normal(torch.zeros(3, dtype=DT), 1.0).to_event(1).log_prob(y)
    assert torch.allclose(d.log_prob(y), expected, atol=1e-12)


def test_householder_bad_counts():
    with pytest.raises(ValueError, match="count_transforms"):
        T.Householder(3, count_transforms=0)
    with pytest.warns(UserWarning, match="over-parametrize"):
        T.Householder(2, count_transforms=3)
    assert T.householder(5).u_unnormed.shape == (3, 5)


@pytest.mark.parametrize("count", [1, 3])
def test_conditional_householder_with_a_batch_of_contexts(count):
    cond = _double(T.conditional_householder(3, 2, [7], count_transforms=count), seed=1)
    context = torch.randn(4, 1, 2, dtype=DT)
    t = cond.condition(context)
    x = torch.randn(5, 3, dtype=DT)
    y = t(x)
    assert y.shape == (4, 5, 3)
    assert t.log_abs_det_jacobian(x, y).shape == (4, 5)
    assert t.log_abs_det_jacobian(x, None).shape == (4, 5)  # batch taken from u
    for i in range(4):
        u = cond.u_unnormed(context[i, 0]).detach()
        assert u.shape == (count, 3)
        Q = _householder_matrix(u)
        assert torch.allclose(y[i], x @ Q.T, atol=1e-12)
        ti = cond.condition(context[i, 0])
        assert float(_logdet(ti, x[0])) == pytest.approx(0.0, abs=1e-12)
    assert torch.allclose(t.inv(y), x.expand(4, 5, 3), atol=1e-12)
    assert torch.allclose(cond.inv.condition(context)(y), x.expand(4, 5, 3), atol=1e-12)


def test_conditional_householder_context_must_be_a_tensor():
    with pytest.raises(TypeError, match="context"):
        T.conditional_householder(3, 2).condition([1.0, 2.0])


# --- matrix exponential ----------------------------------------------------------------


def test_matrix_exponential_against_matrix_exp():
    flow = _double(T.matrix_exponential(4, iterations=30), seed=2, scale=0.3)
    M = flow.weights.detach()
    E = torch.linalg.matrix_exp(M)
    x = torch.randn(3, 2, 4, dtype=DT)
    y = flow(x)
    assert torch.allclose(y, x @ E.T, atol=1e-12)
    assert torch.allclose(flow._inverse(y), x, atol=1e-12)
    ladj = flow.log_abs_det_jacobian(x, y)
    assert ladj.shape == (3, 2)
    assert torch.allclose(ladj, torch.trace(M).expand(3, 2), atol=1e-12)
    assert torch.allclose(ladj[0, 0], _logdet(flow, x[0, 0]), atol=1e-10)


def test_matrix_exponential_default_series_is_accurate_and_invertible():
    flow = _double(T.MatrixExponential(5), seed=3)
    x = torch.randn(10, 5, dtype=DT)
    y = flow(x)
    expected = x @ torch.linalg.matrix_exp(flow.weights.detach()).T
    assert torch.allclose(y, expected, atol=1e-5)
    assert torch.allclose(flow._inverse(y), x, atol=1e-5)
    assert torch.allclose(flow.log_abs_det_jacobian(x, y)[0], _logdet(flow, x[0]), atol=1e-5)


def test_matrix_exponential_flow_density_is_a_gaussian():
    flow = _double(T.matrix_exponential(3, iterations=40), seed=4, scale=0.2)
    E = torch.linalg.matrix_exp(flow.weights.detach())
    base = dist.Normal(torch.zeros(3, dtype=DT), 1.0).to_event(1)
    d = dist.TransformedDistribution(base, flow)
    y = torch.randn(6, 3, dtype=DT)
    mvn = dist.MultivariateNormal(torch.zeros(3, dtype=DT), covariance_matrix=E @ E.T)
    assert torch.allclose(d.log_prob(y), mvn.log_prob(y), atol=1e-10)


def test_matrix_exponential_options():
    with pytest.raises(NotImplementedError, match="spectral"):
        T.MatrixExponential(3, normalization="spectral")
    with pytest.raises(ValueError, match="unknown normalization"):
        T.matrix_exponential(3, normalization="bogus")
    with pytest.raises(ValueError, match="iterations"):
        T.MatrixExponential(3, iterations=0)


def test_conditional_matrix_exponential_with_a_batch_of_contexts():
    cond = _double(T.conditional_matrix_exponential(3, 2, [6], iterations=40), seed=5)
    context = torch.randn(4, 2, dtype=DT)
    t = cond.condition(context)
    x = torch.randn(4, 3, dtype=DT)
    y = t(x)
    ladj = t.log_abs_det_jacobian(x, y)
    assert y.shape == (4, 3) and ladj.shape == (4,)
    for i in range(4):
        M = cond.weights(context[i]).detach()
        assert torch.allclose(y[i], torch.linalg.matrix_exp(M) @ x[i], atol=1e-10)
        ti = cond.condition(context[i])
        assert torch.allclose(ladj[i], _logdet(ti, x[i]), atol=1e-8)
    assert torch.allclose(t.inv(y), x, atol=1e-10)


# --- generalized channel permute (1x1 convolution) --------------------------------------


def test_generalized_channel_permute_is_a_1x1_convolution():
    flow = _double(T.generalized_channel_permute(channels=3), seed=6, scale=0.2)
    W = flow.weight().detach()
    assert torch.allclose(W, flow.permutation @ flow.L.detach() @ flow.U.detach())
    x = torch.randn(2, 3, 2, 2, dtype=DT)
    y = flow(x)
    assert torch.allclose(y, F.conv2d(x, W[..., None, None]), atol=1e-12)
    assert torch.allclose(flow._inverse(y), x, atol=1e-10)
    ladj = flow.log_abs_det_jacobian(x, y)
    assert ladj.shape == (2,)

    def flat(v):
        return flow(v.reshape(3, 2, 2)).reshape(-1)

    assert torch.allclose(ladj[0], _logdet(flat, x[0].reshape(-1)), atol=1e-10)
    assert torch.allclose(ladj[0], 4 * torch.linalg.slogdet(W).logabsdet, atol=1e-10)


def test_generalized_channel_permute_given_permutation():
    flow = T.GeneralizedChannelPermute(channels=3, permutation=torch.tensor([2, 0, 1]))
    assert torch.equal(flow.permutation, torch.eye(3)[[2, 0, 1]])
    assert [n for n, _ in flow.named_parameters()] == ["LU"]
    assert "permutation" in dict(flow.named_buffers())
    with pytest.raises(ValueError, match="permutation"):
        T.GeneralizedChannelPermute(channels=3, permutation=torch.tensor([0, 0, 1]))
    with pytest.raises(ValueError, match=r"\(\.\.\., 3, H, W\)"):
        flow(torch.randn(2, 4, 5, 5))


def test_conditional_generalized_channel_permute_with_a_batch_of_contexts():
    cond = _double(T.conditional_generalized_channel_permute(2, channels=2, hidden_dims=[5]), 7)
    with torch.no_grad():  # keep U well conditioned
        cond.nn.layers[-1].bias.copy_(torch.tensor([2.0, 0.3, -0.4, 2.0], dtype=DT))
    context = torch.randn(3, 2, dtype=DT)
    t = cond.condition(context)
    x = torch.randn(3, 2, 4, 5, dtype=DT)
    y = t(x)
    ladj = t.log_abs_det_jacobian(x, y)
    assert y.shape == x.shape and ladj.shape == (3,)
    for i in range(3):
        W = cond.condition(context[i]).weight().detach()
        assert torch.allclose(y[i], F.conv2d(x[i : i + 1], W[..., None, None])[0], atol=1e-12)
        assert torch.allclose(ladj[i], 20 * torch.linalg.slogdet(W).logabsdet, atol=1e-10)
    assert torch.allclose(t.inv(y), x, atol=1e-10)


# --- lower-Cholesky affine -------------------------------------------------------------


def test_lower_cholesky_affine_against_its_matrix():
    torch.manual_seed(8)
    L = torch.randn(4, 4, dtype=DT).tril()
    loc = torch.randn(4, dtype=DT)
    t = T.LowerCholeskyAffine(loc, L)
    x = torch.randn(5, 4, dtype=DT)
    y = t(x)
    assert torch.allclose(y, x @ L.T + loc)
    assert torch.allclose(t._inverse(y), x, atol=1e-10)
    ladj = t.log_abs_det_jacobian(x, y)
    assert ladj.shape == (5,)
    assert torch.allclose(ladj[0], _logdet(t, x[0]))
    # with a positive diagonal the flow of a standard normal is MVN(loc, L L^T)
    L_pos = L.tril(-1) + torch.diag(L.diagonal().abs())
    d = dist.TransformedDistribution(
        dist.Normal(torch.zeros(4, dtype=DT), 1.0).to_event(1), T.LowerCholeskyAffine(loc, L_pos)
    )
    assert torch.allclose(d.log_prob(y), dist.MultivariateNormal(loc, scale_tril=L_pos).log_prob(y))


def test_lower_cholesky_affine_batched_and_errors():
    L = torch.eye(2).expand(3, 2, 2) * torch.tensor([1.0, 2.0, 4.0]).reshape(3, 1, 1)
    t = T.LowerCholeskyAffine(torch.zeros(2), L)
    x = torch.ones(5, 1, 2)
    y = t(x)
    assert y.shape == (5, 3, 2)
    assert torch.allclose(t.log_abs_det_jacobian(x, y)[0], torch.tensor([0.0, 2, 4]) * math.log(2))
    assert torch.allclose(t.inv(y), x.expand(5, 3, 2))
    assert t.forward_shape((5, 1, 2)) == (5, 3, 2)
    with pytest.raises(ValueError, match="scale_tril"):
        T.LowerCholeskyAffine(torch.zeros(3), torch.eye(2))


# --- DCT and Haar: explicit orthogonal matrices ----------------------------------------


def _dct_matrix(n):
    k = torch.arange(n, dtype=DT).unsqueeze(-1)
    j = torch.arange(n, dtype=DT)
    C = torch.cos(math.pi * (j + 0.5) * k / n) * math.sqrt(2.0 / n)
    C[0] /= math.sqrt(2.0)
    return C


@pytest.mark.parametrize("n", [1, 2, 5, 8])
@pytest.mark.parametrize("smooth", [0.0, 0.5, 1.0, -1.0])
def test_dct_against_its_matrix(n, smooth):
    t = T.DiscreteCosineTransform(smooth=smooth)
    C = _dct_matrix(n)
    assert torch.allclose(C @ C.T, torch.eye(n, dtype=DT), atol=1e-12)
    freq = torch.arange(n, dtype=DT) + 0.5
    w = freq**smooth
    w = w / w.log().mean().exp()
    A = w.unsqueeze(-1) * C
    x = torch.randn(3, 2, n, dtype=DT)
    y = t(x)
    assert torch.allclose(y, x @ A.T, atol=1e-10)
    assert torch.allclose(t._inverse(y), x, atol=1e-10)
    ladj = t.log_abs_det_jacobian(x, y)
    assert ladj.shape == (3, 2)
    assert torch.equal(ladj, torch.zeros(3, 2, dtype=DT))
    assert float(_logdet(t, x[0, 0])) == pytest.approx(0.0, abs=1e-10)


def test_dct_along_another_dim():
    t = T.DiscreteCosineTransform(dim=-2, smooth=1.0)
    assert t.event_dim == 2 and t.domain.event_dim == 2
    x = torch.randn(4, 5, 3, dtype=DT)
    y = t(x)
    expected = T.DiscreteCosineTransform(smooth=1.0)(x.transpose(-1, -2)).transpose(-1, -2)
    assert torch.allclose(y, expected, atol=1e-12)
    assert torch.allclose(t.inv(y), x, atol=1e-12)
    assert t.log_abs_det_jacobian(x, y).shape == (4,)
    assert t.with_cache(1) == t and hash(t.with_cache(1)) == hash(t)
    with pytest.raises(ValueError, match="negative int"):
        T.DiscreteCosineTransform(dim=1)


def _haar_matrix(n):
    """Rows of the orthonormal Haar basis in ember's coefficient order, built by hand."""
    r = 1 / math.sqrt(2)
    if n == 3:
        return torch.tensor([[r, r, 0], [r, -r, 0], [0, 0, 1]], dtype=DT)
    if n == 4:
        return torch.tensor(
            [[0.5, 0.5, 0.5, 0.5], [0.5, 0.5, -0.5, -0.5], [r, -r, 0, 0], [0, 0, r, -r]],
            dtype=DT,
        )
    raise ValueError(n)


@pytest.mark.parametrize("n", [3, 4])
@pytest.mark.parametrize("flip", [False, True])
def test_haar_against_its_matrix(n, flip):
    t = T.HaarTransform(flip=flip)
    H = _haar_matrix(n)
    if flip:
        H = H.flip(-1)
    x = torch.randn(2, n, dtype=DT)
    y = t(x)
    assert torch.allclose(y, x @ H.T, atol=1e-12)
    assert torch.allclose(t._inverse(y), x, atol=1e-12)
    assert torch.equal(t.log_abs_det_jacobian(x, y), torch.zeros(2, dtype=DT))


@pytest.mark.parametrize("n", range(1, 12))
def test_haar_is_orthogonal(n):
    H = T.HaarTransform()(torch.eye(n, dtype=DT))  # rows: the images of the unit vectors
    assert torch.allclose(H @ H.T, torch.eye(n, dtype=DT), atol=1e-12)
    x = torch.randn(n, dtype=DT)
    assert float(_logdet(T.HaarTransform(), x)) == pytest.approx(0.0, abs=1e-10)


def test_haar_along_another_dim():
    t = T.HaarTransform(dim=-2, flip=True)
    x = torch.randn(3, 6, 2, dtype=DT)
    y = t(x)
    expected = T.HaarTransform(flip=True)(x.transpose(-1, -2)).transpose(-1, -2)
    assert torch.allclose(y, expected)
    assert torch.allclose(t.inv(y), x, atol=1e-12)
    assert t.log_abs_det_jacobian(x, y).shape == (3,)
    assert t.forward_shape((6, 2)) == (6, 2)
    with pytest.raises(ValueError, match="fewer than 2 dims"):
        t.forward_shape((6,))


def test_conditional_flows_in_a_conditional_transformed_distribution():
    householder_flow = _double(T.conditional_householder(3, 2, [6], count_transforms=2), seed=9)
    expm_flow = _double(T.conditional_matrix_exponential(3, 2, [6], iterations=40), seed=10)
    base = dist.Normal(torch.zeros(3, dtype=DT), 1.0).to_event(1)
    cond = dist.ConditionalTransformedDistribution(base, [householder_flow, expm_flow])
    context = torch.randn(2, dtype=DT)
    d = cond.condition(context)
    y = d.sample((4,))
    assert y.shape == (4, 3)
    # y = E Q z with Q orthogonal and E = exp(M): a centred Gaussian with covariance E E^T
    E = torch.linalg.matrix_exp(expm_flow.weights(context).detach())
    mvn = dist.MultivariateNormal(torch.zeros(3, dtype=DT), covariance_matrix=E @ E.T)
    assert torch.allclose(d.log_prob(y), mvn.log_prob(y), atol=1e-10)
    y_new = torch.randn(4, 3, dtype=DT)  # not produced by the flow: uses the exact inverses
    assert torch.allclose(d.log_prob(y_new), mvn.log_prob(y_new), atol=1e-10)
