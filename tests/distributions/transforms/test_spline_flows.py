"""Spline flows and coupling flows: the rational spline kernel against its defining
properties and closed forms, log|det J| against autograd Jacobians, exact inverses,
conditional variants, shapes, gradients, and normalization by quadrature."""

import math

import pytest
import torch
from torch.nn import functional as F

import ember.distributions as dist
from ember.distributions import transforms as T
from ember.distributions.transforms.spline import monotonic_rational_spline
from ember.nn import DenseNN


@pytest.fixture(autouse=True)
def float64():
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    torch.manual_seed(0)
    yield
    torch.set_default_dtype(old)


def _perturb(module, scale=0.5):
    """Move the parameters away from their initial values (a non-trivial map)."""
    with torch.no_grad():
        for p in module.parameters():
            p.add_(scale * torch.randn_like(p))
    return module


def _params(D, K, order, batch=()):
    shape = batch + (D,)
    lambdas = torch.randn(shape + (K,)) if order == "linear" else None
    return (
        torch.randn(shape + (K,)),
        torch.randn(shape + (K,)),
        torch.randn(shape + (K - 1,)),
        lambdas,
    )


def _knots(unnormalized, bound, minimum=1e-3):
    K = unnormalized.shape[-1]
    frac = minimum + (1 - minimum * K) * F.softmax(unnormalized, -1)
    cum = torch.cat([torch.zeros(frac.shape[:-1] + (1,)), torch.cumsum(frac, -1)], -1)
    return 2 * bound * cum - bound


ORDERS = ["linear", "quadratic"]


# ---------------------------------------------------------------- the kernel


@pytest.mark.parametrize("order", ORDERS)
def test_kernel_interpolates_knots_with_given_slopes(order):
    D, K, B = 3, 5, 2.5
    w, h, d, lam = _params(D, K, order)
    xk, yk = _knots(w, B), _knots(h, B)
    slopes = torch.cat([torch.ones(D, 1), 1e-3 + F.softplus(d), torch.ones(D, 1)], -1)
    # knot k of every coordinate at once: inputs of shape (K + 1, D)
    x = xk.T.clone().requires_grad_()
    y, log_det = monotonic_rational_spline(x, w, h, d, lam, bound=B)
    assert torch.allclose(y, yk.T, atol=1e-12)
    # the slope at the knots, from either side, is the given derivative (C1 spline)
    for side in (-1e-10, 1e-10):
        xs = (xk.T + side).clamp(-B, B)
        _, ld = monotonic_rational_spline(xs, w, h, d, lam, bound=B)
        assert torch.allclose(ld.exp(), slopes.T, rtol=1e-5)


@pytest.mark.parametrize("order", ORDERS)
def test_kernel_is_identity_with_equal_bins_and_unit_slopes(order):
    D, K, B = 2, 6, 3.0
    w = torch.randn(D, K)
    d = torch.full((D, K - 1), math.log(math.expm1(1 - 1e-3)))  # softplus^-1(1 - min_derivative)
    lam = torch.randn(D, K) if order == "linear" else None
    x = torch.linspace(-4, 4, 101).unsqueeze(-1).expand(101, D)
    y, log_det = monotonic_rational_spline(x, w, w.clone(), d, lam, bound=B)
    assert torch.allclose(y, x, atol=1e-12)
    assert log_det.abs().max() < 1e-12


def test_kernel_quadratic_closed_form_mid_bin():
    """Eq. (4) of Durkan et al. evaluated by hand at the middle of every bin."""
    D, K, B = 1, 4, 2.0
    w, h, d, _ = _params(D, K, "quadratic")
    xk, yk = _knots(w, B)[0], _knots(h, B)[0]
    slopes = torch.cat([torch.ones(1), 1e-3 + F.softplus(d[0]), torch.ones(1)])
    mids = 0.5 * (xk[1:] + xk[:-1])
    y, _ = monotonic_rational_spline(mids.unsqueeze(-1), w, h, d, bound=B)
    for k in range(K):
        wk, hk = (xk[k + 1] - xk[k]).item(), (yk[k + 1] - yk[k]).item()
        s, d0, d1 = hk / wk, slopes[k].item(), slopes[k + 1].item()
        expected = yk[k].item() + hk * (s / 4 + d0 / 4) / (s + (d0 + d1 - 2 * s) / 4)
        assert y[k, 0].item() == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("order", ORDERS)
def test_kernel_monotone_onto_box_and_identity_outside(order):
    D, K, B = 4, 8, 3.0
    w, h, d, lam = _params(D, K, order)
    x = torch.linspace(-6, 6, 4001).unsqueeze(-1).expand(-1, D).clone().requires_grad_()
    y, log_det = monotonic_rational_spline(x, w, h, d, lam, bound=B)
    assert (y[1:] > y[:-1]).all()
    outside = x.detach().abs() > B
    assert torch.equal(y[outside], x.detach()[outside])
    assert torch.equal(log_det[outside], torch.zeros_like(log_det[outside]))
    edges = torch.tensor([[-B] * D, [B] * D])
    assert torch.allclose(monotonic_rational_spline(edges, w, h, d, lam, bound=B)[0], edges)
    (grad,) = torch.autograd.grad(y.sum(), x)
    assert torch.isfinite(grad).all()
    assert torch.allclose(grad[outside], torch.ones_like(grad[outside]))
    # log_det is log dy/dx elementwise
    assert torch.allclose(grad.log(), log_det.detach(), atol=1e-10)


@pytest.mark.parametrize("order", ORDERS)
def test_kernel_inverse_and_broadcasting(order):
    D, K = 3, 7
    w, h, d, lam = _params(D, K, order, batch=(4, 1))
    x = 2.5 * torch.randn(5, D)
    y, ld = monotonic_rational_spline(x, w, h, d, lam)
    assert y.shape == ld.shape == (4, 5, D)
    x2, ld_inv = monotonic_rational_spline(y, w, h, d, lam, inverse=True)
    assert torch.allclose(x2, x.expand(4, 5, D), atol=1e-10)
    assert torch.allclose(ld_inv, -ld, atol=1e-9)


def test_kernel_rejects_bad_shapes():
    w, h, d, _ = _params(2, 4, "quadratic")
    with pytest.raises(ValueError, match="unnormalized_derivatives"):
        monotonic_rational_spline(torch.zeros(2), w, h, torch.zeros(2, 4))
    with pytest.raises(ValueError, match="do not broadcast"):
        monotonic_rational_spline(torch.zeros(3), w, h, d)
    with pytest.raises(ValueError, match="too large"):
        monotonic_rational_spline(torch.zeros(2), w, h, d, min_bin_width=0.3)


# ---------------------------------------------------------------- the transforms

D = 4
CONTEXT_DIM = 3


def _conditioned(factory):
    """A context-conditioned transform with its conditional module."""

    def make():
        cond = _perturb(factory())
        return cond.condition(torch.randn(CONTEXT_DIM)), cond

    return make


FLOWS = {
    "spline-linear": lambda: (_perturb(T.spline(D, count_bins=5)),) * 2,
    "spline-quadratic": lambda: (_perturb(T.spline(D, order="quadratic")),) * 2,
    "spline_autoregressive-linear": lambda: (_perturb(T.spline_autoregressive(D, [20])),) * 2,
    "spline_autoregressive-quadratic": lambda: (
        (_perturb(T.spline_autoregressive(D, [20], count_bins=4, order="quadratic")),) * 2
    ),
    "spline_coupling-linear": lambda: (_perturb(T.spline_coupling(D, hidden_dims=[16])),) * 2,
    "spline_coupling-quadratic": lambda: (
        (_perturb(T.spline_coupling(D, split_dim=1, count_bins=3, order="quadratic")),) * 2
    ),
    "spline_coupling-identity": lambda: (
        (
            _perturb(
                T.SplineCoupling(D, 3, DenseNN(3, [8], [4, 4, 3, 4]), count_bins=4, identity=True)
            ),
        )
        * 2
    ),
    "affine_coupling": lambda: (_perturb(T.affine_coupling(D, [16])),) * 2,
    "conditional_spline-linear": _conditioned(
        lambda: T.conditional_spline(D, CONTEXT_DIM, [12], count_bins=6)
    ),
    "conditional_spline-quadratic": _conditioned(
        lambda: T.conditional_spline(D, CONTEXT_DIM, order="quadratic")
    ),
    "conditional_spline_autoregressive": _conditioned(
        lambda: T.conditional_spline_autoregressive(D, CONTEXT_DIM, [20], count_bins=5)
    ),
    "conditional_affine_coupling": _conditioned(
        lambda: T.conditional_affine_coupling(D, CONTEXT_DIM, [16], split_dim=1)
    ),
}


def _full_log_det(t, x):
    """log|det J| of the map on the whole vector x (elementwise maps: summed)."""
    jac = torch.autograd.functional.jacobian(t._call, x)
    return torch.linalg.slogdet(jac)[1]


@pytest.mark.parametrize("name", sorted(FLOWS))
def test_log_det_matches_autograd_jacobian(name):
    t, _ = FLOWS[name]()
    for _ in range(3):
        x = 2.0 * torch.randn(D)
        y = t(x)
        ld = t.log_abs_det_jacobian(x, y)
        if t.event_dim == 0:
            ld = ld.sum(-1)
        assert ld.item() == pytest.approx(_full_log_det(t, x).item(), abs=1e-9)
        # recomputed (not from the cache) for a copy of x
        ld2 = t.log_abs_det_jacobian(x.clone(), y)
        assert torch.allclose(ld2.sum(-1) if t.event_dim == 0 else ld2, ld)


@pytest.mark.parametrize("name", sorted(FLOWS))
def test_inverse_of_forward_is_identity(name):
    t, _ = FLOWS[name]()
    x = 2.0 * torch.randn(3, 5, D)
    y = t(x)
    assert y.shape == x.shape
    assert t.inv(y) is x  # cached
    x2 = t.inv(y.clone())  # computed
    assert torch.allclose(x2, x, atol=1e-9)
    assert torch.allclose(t(x2.clone()), y, atol=1e-9)
    ld = t.log_abs_det_jacobian(x, y)
    assert ld.shape == ((3, 5, D) if t.event_dim == 0 else (3, 5))
    assert torch.allclose(t.log_abs_det_jacobian(x2, y), ld, atol=1e-8)


@pytest.mark.parametrize("name", sorted(FLOWS))
def test_density_log_prob_and_gradients(name):
    t, module = FLOWS[name]()
    base = dist.Normal(torch.zeros(D), 1.0).to_event(1)
    d = dist.TransformedDistribution(base, [t])
    y = d.sample((6, 2))
    assert y.shape == (6, 2, D)
    x = t.inv(y.clone())
    expected = base.log_prob(x) - t.log_abs_det_jacobian(x, y).reshape(6, 2, -1).sum(-1)
    assert torch.allclose(d.log_prob(y.clone()), expected, atol=1e-9)
    loss = -d.log_prob(3 * torch.rand(6, 2, D) - 1.5).sum()
    loss.backward()
    # (an identity coupling leaves its lower spline unused)
    skip = "lower_spline" if getattr(module, "identity", False) else "-"
    params = [p for n, p in module.named_parameters() if not n.startswith(skip)]
    assert params
    for p in params:
        assert p.grad is not None and torch.isfinite(p.grad).all()
    assert all(p.grad.abs().sum() > 0 for p in params if p.dim() == 2)


@pytest.mark.parametrize("order", ORDERS)
def test_spline_autoregressive_jacobian_is_triangular_in_its_ordering(order):
    t = _perturb(T.spline_autoregressive(D, [20], order=order))
    perm = t.arn.get_permutation()
    jac = torch.autograd.functional.jacobian(t._call, torch.randn(D))
    jac = jac[perm][:, perm]
    assert torch.equal(jac.triu(1), torch.zeros_like(jac))
    assert (jac.diagonal() > 0).all()
    assert (jac.tril(-1) != 0).any()


def test_coupling_first_part_is_fixed_and_conditions_the_rest():
    t = _perturb(T.affine_coupling(D, [16], split_dim=2))
    x = torch.randn(5, D)
    y = t(x)
    assert torch.equal(y[:, :2], x[:, :2])
    jac = torch.autograd.functional.jacobian(t._call, x[0])
    assert torch.equal(jac[:2], torch.eye(D)[:2])
    assert torch.equal(jac[2:, 2:], torch.diag(jac[2:, 2:].diagonal()))
    s = _perturb(T.spline_coupling(D, split_dim=2, hidden_dims=[16]))
    jac = torch.autograd.functional.jacobian(s._call, x[0])
    assert torch.equal(jac[:2, 2:], torch.zeros(2, 2))
    assert (jac[2:, :2] != 0).any()


def test_affine_coupling_closed_form_with_fixed_hypernet():
    """With mean = a * x1 and log_scale = c (clipped), the map is explicit."""

    class Net(torch.nn.Module):
        def forward(self, x1):
            return 2.0 * x1, torch.full_like(x1, 4.0)  # log_scale 4 is clipped to 3

    t = T.AffineCoupling(1, Net())
    x = torch.tensor([[0.5, -1.0]])
    y = t(x)
    assert torch.allclose(y, torch.tensor([[0.5, math.exp(3.0) * -1.0 + 1.0]]))
    assert t.log_abs_det_jacobian(x, y).item() == pytest.approx(3.0)


def test_affine_coupling_event_dim_two():
    t = _perturb(T.affine_coupling((4, 3), [20], dim=-2))
    assert t.event_dim == 2 and t.domain.event_dim == 2
    x = torch.randn(5, 4, 3)
    y = t(x)
    assert torch.equal(y[:, :2], x[:, :2])
    ld = t.log_abs_det_jacobian(x, y)
    assert ld.shape == (5,)
    jac = torch.autograd.functional.jacobian(
        lambda v: t._call(v.reshape(4, 3)).reshape(12), x[0].reshape(12)
    )
    assert ld[0].item() == pytest.approx(torch.linalg.slogdet(jac)[1].item(), abs=1e-10)
    assert torch.allclose(t.inv(y.clone()), x, atol=1e-10)
    cond = T.conditional_affine_coupling((4, 3), 2, [20], dim=-2)
    assert cond.event_dim == 2
    tc = cond.condition(torch.randn(7, 1, 2))
    assert tc(x).shape == (7, 5, 4, 3)
    assert torch.allclose(tc.inv(tc(x).clone()), x.expand(7, 5, 4, 3), atol=1e-10)


@pytest.mark.parametrize(
    "factory",
    [
        lambda: T.conditional_spline(D, CONTEXT_DIM, [8], count_bins=4),
        lambda: T.conditional_spline_autoregressive(D, CONTEXT_DIM, [16], count_bins=4),
        lambda: T.conditional_affine_coupling(D, CONTEXT_DIM, [8]),
    ],
    ids=["spline", "spline_autoregressive", "affine_coupling"],
)
def test_conditional_flows_depend_on_context_and_broadcast(factory):
    cond = _perturb(factory(), scale=0.1)  # larger moves make nearly flat (ill-posed) bins
    x = 2 * torch.randn(5, D)
    c1, c2 = torch.randn(CONTEXT_DIM), torch.randn(CONTEXT_DIM)
    y1, y2 = cond.condition(c1)(x), cond.condition(c2)(x)
    assert not torch.allclose(y1, y2)
    # a batch of contexts: row i of the result is the flow for context i
    contexts = torch.randn(7, 1, CONTEXT_DIM)
    t = cond.condition(contexts)
    y = t(x)
    assert y.shape == (7, 5, D)
    assert torch.allclose(y[3], cond.condition(contexts[3, 0])(x), atol=1e-12)
    assert torch.allclose(t.inv(y.clone()), x.expand(7, 5, D), atol=1e-9)
    assert torch.allclose(cond.inv.condition(c1)(y1.clone()), x, atol=1e-9)
    assert set(t.parameters()) == set(cond.parameters())


def test_cache_is_dropped_when_parameters_change():
    t = _perturb(T.spline(D))
    x = torch.randn(3, D)
    y = t(x)
    ld = t.log_abs_det_jacobian(x, y)
    opt = torch.optim.SGD(t.parameters(), lr=0.5)
    (-ld.sum()).backward()
    opt.step()
    y_new = t(x)
    assert not torch.allclose(y_new, y)
    assert torch.allclose(t.log_abs_det_jacobian(x, y), t.log_abs_det_jacobian(x.clone(), y_new))


def test_spline_sign_and_shapes():
    t = T.spline(3, count_bins=2)
    assert t.sign == 1 and t.event_dim == 0 and t.bijective
    assert t.forward_shape((4, 3)) == (4, 3)
    assert [n for n, _ in t.named_parameters()] == [
        "unnormalized_widths",
        "unnormalized_heights",
        "unnormalized_derivatives",
        "unnormalized_lambdas",
    ]
    assert len(list(T.spline(3, order="quadratic").parameters())) == 3


def test_bad_arguments_raise_clear_errors():
    with pytest.raises(ValueError, match="order"):
        T.Spline(2, order="cubic")
    with pytest.raises(ValueError, match="count_bins"):
        T.spline_coupling(4, count_bins=1)
    with pytest.raises(ValueError, match="bound"):
        T.Spline(2, bound=-1.0)
    with pytest.raises(ValueError, match="split_dim"):
        T.spline_coupling(4, split_dim=4)
    with pytest.raises(ValueError, match="'dim'"):
        T.AffineCoupling(1, DenseNN(1, [4]), dim=0)
    with pytest.raises(ValueError, match="event shape"):
        T.affine_coupling((4, 3), dim=-1)
    with pytest.raises(ValueError, match=r"\(\.\.\., 3\)"):
        T.Spline(3)(torch.zeros(2, 4))
    with pytest.raises(ValueError, match="4 tensors"):
        T.ConditionalSpline(DenseNN(2, [4], [6, 6, 3]), 3, 2).condition(torch.zeros(2))(
            torch.zeros(3)
        )
    with pytest.raises(ValueError, match="pair"):
        T.AffineCoupling(1, DenseNN(1, [4], param_dims=[1]))(torch.zeros(2))
    with pytest.raises(TypeError, match="context"):
        T.conditional_spline(2, 2).condition([0.0, 1.0])


# ---------------------------------------------------------------- normalization


def _grid(L=9.0, N=241):
    g = torch.linspace(-L, L, N)
    return g, torch.stack(torch.meshgrid(g, g, indexing="ij"), -1).reshape(-1, 2)


@pytest.mark.parametrize(
    "make",
    [
        lambda: T.spline_autoregressive(2, [8], count_bins=5),
        lambda: T.affine_coupling(2, [8], log_scale_max_clip=0.5),
    ],
    ids=["spline_autoregressive", "affine"],
)
def test_flow_density_integrates_to_one(make):
    flow = _perturb(make(), scale=0.1)
    d = dist.TransformedDistribution(dist.Normal(torch.zeros(2), 1.0).to_event(1), [flow])
    g, yy = _grid()
    with torch.no_grad():
        dens = d.log_prob(yy).exp().reshape(len(g), len(g))
    total = torch.trapezoid(torch.trapezoid(dens, g, dim=-1), g).item()
    assert total == pytest.approx(1.0, abs=2e-3)


def _integrate_1d(log_density, g):
    return torch.trapezoid(log_density.exp(), g, dim=0)


@pytest.mark.parametrize("order", ORDERS)
def test_spline_coupling_conditional_density_integrates_to_the_marginal(order):
    """p(y1, y2) integrated over y2 (a fine 1-D grid) is the lower spline's density p(y1),
    and that integrates to one: together, the 2-D density is normalized."""
    flow = _perturb(T.spline_coupling(2, hidden_dims=[8], count_bins=5, order=order), scale=0.3)
    d = dist.TransformedDistribution(dist.Normal(torch.zeros(2), 1.0).to_event(1), [flow])
    marginal = dist.TransformedDistribution(dist.Normal(torch.zeros(1), 1.0), [flow.lower_spline])
    g = torch.linspace(-10, 10, 100001)
    with torch.no_grad():
        assert _integrate_1d(marginal.log_prob(g.unsqueeze(-1)), g).item() == pytest.approx(
            1.0, abs=1e-6
        )
        for y1 in [-3.5, -2.0, -0.3, 0.0, 1.1, 2.9]:
            yy = torch.stack([torch.full_like(g, y1), g], -1)
            slice_mass = _integrate_1d(d.log_prob(yy), g).item()
            expected = marginal.log_prob(torch.tensor([y1])).exp().item()
            assert slice_mass == pytest.approx(expected, rel=1e-5)


def test_conditional_spline_density_integrates_to_one_per_coordinate():
    cond = _perturb(T.conditional_spline(3, 2, [8], count_bins=6), scale=0.3)
    d = dist.TransformedDistribution(
        dist.Normal(torch.zeros(3), 1.0), [cond.condition(torch.ones(2))]
    )
    g = torch.linspace(-10, 10, 100001)
    with torch.no_grad():
        mass = _integrate_1d(d.log_prob(g.unsqueeze(-1).expand(-1, 3)), g)
    assert torch.allclose(mass, torch.ones(3), atol=1e-6)


def test_spline_density_integrates_to_one_in_one_dim():
    t = _perturb(T.spline(1, count_bins=6, bound=2.0), scale=1.0)
    d = dist.TransformedDistribution(dist.Normal(torch.zeros(1), 1.0), [t])
    g = torch.linspace(-9, 9, 200001).unsqueeze(-1)
    with torch.no_grad():
        total = torch.trapezoid(d.log_prob(g).exp().squeeze(-1), g.squeeze(-1)).item()
    assert total == pytest.approx(1.0, abs=1e-6)
