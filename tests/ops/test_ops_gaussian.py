"""ember.ops.gaussian against dense linear algebra, brute-force integration and the
Kalman filter."""

import math

import pytest
import torch

import ember.distributions as dist
from ember.ops.gaussian import (
    AffineNormal,
    Gaussian,
    gaussian_tensordot,
    matrix_and_gaussian_to_gaussian,
    matrix_and_mvn_to_gaussian,
    mvn_to_gaussian,
    sequential_gaussian_filter_sample,
    sequential_gaussian_tensordot,
)

pytestmark = pytest.mark.usefixtures("float64")


@pytest.fixture
def float64():
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)


def random_gaussian(batch_shape, n, ridge=0.5):
    a = torch.randn(batch_shape + (n, n + 1))
    precision = a @ a.transpose(-1, -2) + ridge * torch.eye(n)
    return Gaussian(torch.randn(batch_shape), torch.randn(batch_shape + (n,)), precision)


def dense_logsumexp(g):
    """log of the integral of exp(log_density), in closed form with dense inverses."""
    n = g.dim()
    cov = torch.linalg.inv(g.precision)
    quad = (g.info_vec.unsqueeze(-2) @ cov @ g.info_vec.unsqueeze(-1)).squeeze(-1).squeeze(-1)
    return g.log_normalizer + 0.5 * quad + 0.5 * n * math.log(2 * math.pi) + 0.5 * torch.logdet(cov)


@pytest.mark.parametrize("batch_shape", [(), (3,), (2, 4)])
def test_mvn_roundtrip_and_normalization(batch_shape):
    torch.manual_seed(0)
    loc = torch.randn(batch_shape + (3,))
    a = torch.randn(batch_shape + (3, 5))
    mvn = dist.MultivariateNormal(loc, a @ a.transpose(-1, -2))
    g = mvn_to_gaussian(mvn)
    x = torch.randn((7,) + batch_shape + (3,))
    assert torch.allclose(g.log_density(x), mvn.log_prob(x))
    # a normalized density integrates to one
    assert torch.allclose(g.event_logsumexp(), torch.zeros(batch_shape), atol=1e-10)
    diag = dist.Normal(loc, a[..., 0].exp()).to_event(1)
    assert torch.allclose(mvn_to_gaussian(diag).log_density(x), diag.log_prob(x))


def test_event_logsumexp_against_quadrature():
    torch.manual_seed(1)
    g = random_gaussian((), 2)
    grid = torch.linspace(-12, 12, 801)
    xx, yy = torch.meshgrid(grid, grid, indexing="ij")
    values = g.log_density(torch.stack([xx, yy], -1))
    step = (grid[1] - grid[0]) ** 2
    assert torch.allclose(g.event_logsumexp(), values.logsumexp((0, 1)) + step.log(), atol=1e-6)
    assert torch.allclose(g.event_logsumexp(), dense_logsumexp(g))


@pytest.mark.parametrize("left, right", [(1, 2), (2, 1), (2, 2)])
def test_condition_and_marginalize_are_exact(left, right):
    torch.manual_seed(2)
    g = random_gaussian((3,), left + right)
    x = torch.randn(3, left + right)
    # conditioning on either side leaves the density at the point unchanged
    assert torch.allclose(g.condition(x[:, left:]).log_density(x[:, :left]), g.log_density(x))
    assert torch.allclose(g.left_condition(x[:, :left]).log_density(x[:, left:]), g.log_density(x))
    # integrating some out keeps the total; the marginal at a point integrates the conditional
    for m in (g.marginalize(left=left), g.marginalize(right=right)):
        assert torch.allclose(m.event_logsumexp(), g.event_logsumexp())
    assert torch.allclose(
        g.marginalize(left=left).log_density(x[:, left:]),
        g.condition(x[:, left:]).event_logsumexp(),
    )


def test_tensordot_against_padding_and_marginalizing():
    torch.manual_seed(3)
    x, y = random_gaussian((2,), 3), random_gaussian((2,), 4)
    z = gaussian_tensordot(x, y, dims=2)
    assert z.dim() == 3 and z.batch_shape == (2,)
    joint = x.event_pad(right=2) + y.event_pad(left=1)  # over (a, b, b, c, c)
    cov = torch.linalg.inv(joint.precision)
    keep = [0, 3, 4]
    z_cov = torch.linalg.inv(z.precision)
    assert torch.allclose(z_cov, cov[..., keep][..., keep, :])
    mean = (cov @ joint.info_vec.unsqueeze(-1)).squeeze(-1)
    assert torch.allclose((z_cov @ z.info_vec.unsqueeze(-1)).squeeze(-1), mean[..., keep])
    assert torch.allclose(z.event_logsumexp(), dense_logsumexp(joint))


def test_matrix_and_mvn_is_the_conditional_density():
    torch.manual_seed(4)
    matrix = torch.randn(2, 3)
    loc, scale = torch.randn(3), torch.rand(3) + 0.5
    x, y = torch.randn(5, 2), torch.randn(5, 3)
    expected = dist.Normal(x @ matrix + loc, scale).to_event(1).log_prob(y)
    lazy = matrix_and_mvn_to_gaussian(matrix, dist.Normal(loc, scale).to_event(1))
    assert isinstance(lazy, AffineNormal)
    assert torch.allclose(lazy.condition(y).log_density(x), expected)
    assert torch.allclose(lazy.left_condition(x).to_gaussian().log_density(y), expected)
    mvn = dist.MultivariateNormal(loc, scale_tril=scale.diag_embed())
    dense = matrix_and_mvn_to_gaussian(matrix, mvn)
    assert torch.allclose(dense.log_density(torch.cat([x, y], -1)), expected)
    as_gaussian = matrix_and_gaussian_to_gaussian(matrix, mvn_to_gaussian(mvn))
    assert torch.allclose(as_gaussian.precision, dense.precision)


def test_rsample_moments_and_noise():
    torch.manual_seed(5)
    g = random_gaussian((), 3)
    cov = torch.linalg.inv(g.precision)
    mean = cov @ g.info_vec
    noise = torch.randn(200_000, 3)
    x = g.rsample((200_000,), noise=noise)
    se = cov.diagonal().sqrt() / math.sqrt(200_000)
    assert ((x.mean(0) - mean).abs() < 5 * se).all()
    assert torch.allclose(torch.cov(x.T), cov, atol=0.02 * cov.abs().max())
    # antithetic: the draw is affine in the noise
    assert torch.allclose(g.rsample((200_000,), noise=-noise), 2 * mean - x)


def test_cat_index_reshape():
    g = random_gaussian((4, 6), 2)
    parts = [g[:, :1], g[:, 1:4], g[:, 4:]]
    back = Gaussian.cat(parts, dim=1)
    assert torch.equal(back.precision, g.precision) and torch.equal(back.info_vec, g.info_vec)
    r = g.reshape((4, 3, 2)).reshape((4, 6))
    assert torch.equal(r.log_normalizer, g.log_normalizer)


def chain_joint(init, trans):
    """The dense joint Gaussian over (x_0, ..., x_T) of a chain."""
    s, T = init.dim(), trans.batch_shape[-1]
    joint = init.event_pad(right=s * T)
    for t in range(T):
        joint = joint + trans[t].event_pad(left=s * t, right=s * (T - 1 - t))
    return joint


@pytest.mark.parametrize("T", [1, 2, 5, 8])
def test_sequential_tensordot_is_the_chain_contraction(T):
    torch.manual_seed(6)
    trans = random_gaussian((T,), 4)
    actual = sequential_gaussian_tensordot(trans)
    expected = trans[0]
    for t in range(1, T):
        expected = gaussian_tensordot(expected, trans[t], 2)
    assert torch.allclose(actual.precision, expected.precision)
    assert torch.allclose(actual.info_vec, expected.info_vec)
    assert torch.allclose(actual.log_normalizer, expected.log_normalizer)


@pytest.mark.parametrize("T", [1, 3, 6])
def test_filter_sample_has_the_joint_distribution(T):
    torch.manual_seed(7)
    init, trans = random_gaussian((), 2), random_gaussian((T,), 4)
    joint = chain_joint(init, trans)
    cov = torch.linalg.inv(joint.precision)
    mean = cov @ joint.info_vec
    n = 100_000
    x = sequential_gaussian_filter_sample(init, trans, (n,))
    assert x.shape == (n, T + 1, 2)
    flat = x.reshape(n, -1)
    se = cov.diagonal().sqrt() / math.sqrt(n)
    assert ((flat.mean(0) - mean).abs() < 5 * se).all()
    assert torch.allclose(torch.cov(flat.T), cov, atol=0.03 * cov.abs().max())
    # with zero noise: the joint mean (the mode), exactly
    zero = sequential_gaussian_filter_sample(init, trans, (), torch.zeros(T + 1, 2))
    assert torch.allclose(zero.reshape(-1), mean)


def test_filter_sample_long_chain_is_finite():
    eye = torch.eye(2, dtype=torch.float32)
    zero = torch.zeros((), dtype=torch.float32)
    matrix = torch.tensor([[0.9, -0.3], [0.4, 0.8]], dtype=torch.float32, requires_grad=True)
    init = Gaussian(zero, zero.expand(2), eye)
    trans = matrix_and_gaussian_to_gaussian(matrix, Gaussian(zero, zero.expand(2), eye))
    noise = torch.randn(20_001, 2, dtype=torch.float32)
    x = sequential_gaussian_filter_sample(init, trans.expand((20_000,)), (), noise)
    assert torch.isfinite(x).all()
    (grad,) = torch.autograd.grad(x.sum(), [matrix])
    assert torch.isfinite(grad).all()
