"""Gaussian-process kernels against their closed forms."""

import math

import pytest
import torch

import ember
from ember.contrib.gp.kernels import RBF, Exponential, Matern32, Matern52, RationalQuadratic
from ember.infer import Trace_MMD


@pytest.fixture(autouse=True)
def _fresh_store():
    ember.clear_param_store()  # top-level kernels share parameter names in the store
    yield
    ember.clear_param_store()


def profile(name, d, alpha=1.0):
    """The closed form of each kernel at scaled distance ``d`` (variance 1)."""
    if name == "RBF":
        return math.exp(-0.5 * d * d)
    if name == "RationalQuadratic":
        return (1 + d * d / (2 * alpha)) ** -alpha
    if name == "Exponential":
        return math.exp(-d)
    if name == "Matern32":
        return (1 + math.sqrt(3) * d) * math.exp(-math.sqrt(3) * d)
    return (1 + math.sqrt(5) * d + 5 * d * d / 3) * math.exp(-math.sqrt(5) * d)


KERNELS = [RBF, RationalQuadratic, Exponential, Matern32, Matern52]


@pytest.mark.parametrize("cls", KERNELS)
def test_kernel_matrix_equals_closed_form(cls):
    torch.manual_seed(0)
    X = torch.randn(5, 3, dtype=torch.float64)
    Z = torch.randn(4, 3, dtype=torch.float64)
    lengthscale = torch.tensor([0.5, 1.0, 2.0], dtype=torch.float64)
    kernel = cls(3, variance=torch.tensor(1.7, dtype=torch.float64), lengthscale=lengthscale)
    K = kernel(X, Z).detach()
    assert K.shape == (5, 4)
    for i in range(5):
        for j in range(4):
            d = float(((X[i] - Z[j]) / lengthscale).norm())
            assert K[i, j].item() == pytest.approx(1.7 * profile(cls.__name__, d), rel=1e-9)
    assert torch.allclose(kernel(X, diag=True).detach(), torch.full((5,), 1.7, dtype=X.dtype))
    # k(X) is k(X, X): symmetric with the variance on its diagonal
    KXX = kernel(X).detach()
    assert torch.allclose(KXX, KXX.T) and torch.allclose(KXX.diagonal(), kernel(X, diag=True))


@pytest.mark.parametrize("cls", KERNELS)
def test_gradients_are_finite_at_zero_distance(cls):
    X = torch.zeros(3, 2, requires_grad=True)
    kernel = cls(2)
    kernel(X).sum().backward()
    assert torch.isfinite(X.grad).all()
    assert all(torch.isfinite(p.grad).all() for p in kernel.parameters())


def test_active_dims_and_vector_inputs():
    X = torch.tensor([[0.0, 5.0], [1.0, -3.0]])
    k = RBF(1, active_dims=[0])
    assert torch.allclose(k(X).detach(), RBF(1)(X[:, 0]).detach())
    assert k(X)[0, 1].item() == pytest.approx(math.exp(-0.5))


def test_bad_arguments_are_clear_errors():
    with pytest.raises(ValueError, match="active_dims"):
        RBF(2, active_dims=[0])
    with pytest.raises(ValueError, match="lengthscale must be positive"):
        RBF(1, lengthscale=torch.tensor(-1.0))
    with pytest.raises(ValueError, match=r"no column 1.*2 features"):
        RBF(2)(torch.zeros(3, 2), torch.zeros(3, 1))
    with pytest.raises(ValueError, match="shape"):
        RBF(1)(torch.zeros(2, 2, 2))


def test_trace_mmd_with_an_rbf_kernel_matches_a_direct_computation():
    import ember.distributions as dist

    def model():
        ember.sample("z", dist.Normal(torch.zeros(2), 1.0).to_event(1))

    def guide():
        loc = ember.param("loc", torch.tensor([0.5, -0.5]))
        ember.sample("z", dist.Normal(loc, 1.0).to_event(1))

    kernel = RBF(2, lengthscale=torch.tensor(1.5))
    elbo = Trace_MMD(kernel=kernel, num_particles=50, vectorize_particles=False)
    ember.set_rng_seed(0)
    loss = elbo.loss(model, guide)
    assert math.isfinite(loss)
    # the estimator's gradient moves the guide's mean towards the prior's
    ember.set_rng_seed(0)
    torch.autograd.backward(elbo.differentiable_loss(model, guide))
    grad = ember.get_param_store().get_unconstrained("loc").grad
    assert grad[0] > 0 and grad[1] < 0
