"""Fast paths of distributions against torch and scipy: the small simplex check, Normal's
log_prob, Delta's validation and its sample."""

import numpy as np
import pytest
import scipy.stats
import torch
from torch.distributions import constraints

import ember.distributions as dist
from ember.distributions.validation import decide, decide_simplex


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("shape", [(1,), (3,), (2, 3), (4, 1, 5), (300,)])
def test_simplex_check_equals_torch(dtype, shape):
    g = torch.Generator().manual_seed(0)
    for trial in range(120):
        x = torch.rand(shape, generator=g, dtype=torch.float64)
        x = x / x.sum(-1, keepdim=True)
        # perturbations around the 1e-6 tolerance
        size = 10.0 ** -torch.randint(5, 9, (), generator=g).item()
        x = (x + torch.randn(shape, generator=g, dtype=torch.float64) * size).to(dtype)
        if trial % 7 == 0:
            x.view(-1)[0] = float("nan")
        if trial % 11 == 0:
            x.view(-1)[-1] = -1e-9
        if trial % 13 == 0:
            x.view(-1)[0] = float("inf")
        expected = bool(constraints.simplex.check(x).all())
        assert decide_simplex(x) is expected
        assert decide(constraints.simplex, x.requires_grad_(x.is_floating_point())) is expected


def test_categorical_rejects_a_negative_probability():
    with pytest.raises(ValueError, match="probs"):
        dist.Categorical(torch.tensor([0.5, -0.1, 0.6]))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_normal_log_prob_matches_scipy_and_torch_gradients(dtype):
    g = torch.Generator().manual_seed(2)
    loc = torch.randn(3, 1, generator=g, dtype=dtype).requires_grad_(True)
    scale = (torch.rand(3, 1, generator=g, dtype=dtype) + 0.2).requires_grad_(True)
    x = torch.randn(50, generator=g, dtype=dtype) * 3
    lp = dist.Normal(loc, scale).expand((3, 50)).log_prob(x)
    expected = scipy.stats.norm(loc.detach().numpy(), scale.detach().numpy()).logpdf(x.numpy())
    tol = 1e-5 if dtype is torch.float32 else 1e-12
    np.testing.assert_allclose(lp.detach().numpy(), expected, rtol=tol, atol=tol)
    grads = torch.autograd.grad(lp.sum(), [loc, scale])
    ref = torch.distributions.Normal(loc, scale).log_prob(x)
    ref_grads = torch.autograd.grad(ref.sum(), [loc, scale])
    for a, b in zip(grads, ref_grads):
        torch.testing.assert_close(a, b, rtol=tol, atol=tol)


def test_normal_log_prob_of_a_number_and_an_integer_tensor():
    d = dist.Normal(0.0, 1.0, validate_args=False)
    assert abs(d.log_prob(2).item() - scipy.stats.norm.logpdf(2.0)) < 1e-6
    lp = dist.Normal(torch.zeros(2), 2.0).log_prob(torch.tensor([1, 3]))
    np.testing.assert_allclose(lp.numpy(), scipy.stats.norm(0, 2).logpdf([1, 3]), rtol=1e-6)


def test_delta_validates_with_ember_checks():
    with pytest.raises(ValueError, match="parameter v .* nan at index \\(1,\\)"):
        dist.Delta(torch.tensor([1.0, float("nan")]))
    with pytest.raises(ValueError, match="log_density"):
        dist.Delta(torch.tensor([1.0]), log_density=torch.tensor([float("nan")]))
    d = dist.Delta(torch.tensor([1.0, 2.0]))
    with pytest.raises(ValueError, match="support"):
        d.log_prob(torch.tensor([1.0, float("nan")]))
    assert d.log_prob(torch.tensor([1.0, 3.0])).tolist() == [0.0, -float("inf")]


def test_delta_sample_is_its_point_and_carries_gradients():
    p = torch.tensor([1.0, 2.0], requires_grad=True)
    d = dist.Delta(p, event_dim=1)
    x = d.rsample()
    assert torch.equal(x, p) and x.shape == (2,)
    (2 * x).sum().backward()
    assert p.grad.tolist() == [2.0, 2.0]
    assert d.rsample((3,)).shape == (3, 2)
    assert d.log_prob(x).item() == 0.0
