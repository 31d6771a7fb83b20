"""Neural, polynomial, Sylvester and conditional planar/radial flows.

log|det J| against autograd Jacobians, closed forms for small configurations,
the autoregressive structure, cached inverses, conditioning on a context
(batched against the input), normalization by quadrature, and bad input.
"""

import math

import pytest
import torch
from torch.autograd.functional import jacobian

import ember.distributions as dist
from ember.distributions import transforms as T
from ember.distributions.transforms.block_autoregressive import MaskedBlockLinear, log_matmul
from ember.distributions.transforms.neural_autoregressive import (
    ACTIVATIONS,
    activation_with_log_derivative,
)
from ember.nn import AutoRegressiveNN, DenseNN

D = 4
CTX = 3


def _perturb(module, scale, seed):
    """Move a flow's parameters away from their (near-identity) initial values."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(scale * torch.randn(p.shape, generator=gen, dtype=p.dtype))
    return module


def _flows():
    """(name, factory) of every unconditional flow of this module, in float64."""
    out = []
    for act in ACTIVATIONS:
        out.append((f"naf-{act}", lambda a=act: T.neural_autoregressive(D, [11], a, width=5)))
        out.append((f"bnaf-{act}", lambda a=act: T.block_autoregressive(D, activation=a)))
    for res in ["normal", "gated"]:
        out.append(
            (
                f"bnaf-{res}",
                lambda r=res: T.block_autoregressive(D, hidden_factors=[3, 2], residual=r),
            )
        )
    out.append(("polynomial", lambda: T.polynomial(D)))
    out.append(("polynomial-deg2", lambda: T.polynomial(D, [12], count_degree=2, count_sum=2)))
    out.append(("sylvester", lambda: T.sylvester(D)))
    out.append(("sylvester-1", lambda: T.sylvester(D, count_transforms=1)))
    return out


def _conditional_flows():
    out = []
    for act in ACTIVATIONS:
        out.append(
            (
                f"cnaf-{act}",
                lambda a=act: T.conditional_neural_autoregressive(D, CTX, [11], a, width=5),
            )
        )
    out.append(("cplanar", lambda: T.conditional_planar(D, CTX, [7])))
    out.append(("cradial", lambda: T.conditional_radial(D, CTX, [7])))
    return out


FLOWS = dict(_flows())
COND = dict(_conditional_flows())


def make(name, seed=0, scale=0.4):
    torch.manual_seed(seed)
    return _perturb(FLOWS[name](), scale, seed).double()


def make_conditioned(name, context, seed=0, scale=0.4):
    torch.manual_seed(seed)
    cond = _perturb(COND[name](), scale, seed).double()
    return cond, cond.condition(context.double())


def _check_ladj_against_jacobian(t, batch=(3, 2)):
    x = torch.randn(batch + (D,), dtype=torch.float64)
    y = t(x)
    ladj = t.log_abs_det_jacobian(x, y)
    assert ladj.shape == batch
    flat_x, flat_ladj = x.reshape(-1, D), ladj.reshape(-1)
    for i in range(flat_x.shape[0]):
        J = jacobian(lambda v: t._call(v), flat_x[i])
        sign, logdet = torch.linalg.slogdet(J)
        assert sign > 0  # every flow here preserves orientation
        assert torch.allclose(flat_ladj[i], logdet, atol=1e-9, rtol=1e-9)
    return x


# ------------------------------------------------------------- log|det J| vs autograd


@pytest.mark.parametrize("name", sorted(FLOWS))
def test_ladj_matches_autograd_jacobian(name):
    _check_ladj_against_jacobian(make(name))


@pytest.mark.parametrize("name", sorted(COND))
def test_conditioned_ladj_matches_autograd_jacobian(name):
    _, t = make_conditioned(name, torch.randn(CTX))
    _check_ladj_against_jacobian(t)


@pytest.mark.parametrize("name", sorted(FLOWS))
def test_ladj_without_cache_equals_cached(name):
    t = make(name, seed=1)
    x = torch.randn(5, D, dtype=torch.float64)
    y = t(x)
    cached = t.log_abs_det_jacobian(x, y)
    fresh = t.log_abs_det_jacobian(x.clone(), y.clone())
    assert torch.allclose(cached, fresh, atol=1e-12)


@pytest.mark.parametrize("name", [n for n in sorted(FLOWS) if not n.startswith("sylvester")])
def test_autoregressive_structure(name):
    """y_i depends on x_j only for j before i in the flow's order, and increases in x_i."""
    t = make(name, seed=2)
    assert t.autoregressive
    x = torch.randn(D, dtype=torch.float64)
    J = jacobian(lambda v: t._call(v), x)  # J[i, j] = dy_i / dx_j
    order = t.arn.get_permutation() if hasattr(t, "arn") else torch.arange(D)
    Jp = J[order][:, order]
    assert torch.all(Jp.diagonal() > 0)
    assert torch.all(Jp.triu(diagonal=1) == 0)


# ------------------------------------------------------------------ closed forms


class _Constant(torch.nn.Module):
    """A stand-in network returning fixed parameters (whatever the input)."""

    def __init__(self, *params):
        super().__init__()
        self.params = [p.double() for p in params]

    def forward(self, x):
        shape = x.shape[:-1]
        out = tuple(p.expand(shape + p.shape) for p in self.params)
        return out if len(out) > 1 else out[0]


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_naf_with_one_unit_is_affine(activation):
    """With one unit per dim, T^{-1}(T(a x + b)) = a x + b, for every activation."""
    a_raw = torch.tensor([[0.3, -1.2, 2.0]])
    b = torch.tensor([[-0.5, 0.7, 4.0]])
    w = torch.tensor([[1.7, -3.0, 0.0]])
    flow = T.NeuralAutoregressive(_Constant(a_raw, b, w), hidden_units=1, activation=activation)
    x = torch.tensor([[-3.0, 0.2, 1.5], [0.1, -6.0, 2.5]], dtype=torch.float64)
    a = torch.nn.functional.softplus(a_raw.double())
    y = flow(x)
    assert torch.allclose(y, a * x + b.double(), atol=1e-9)
    expected = torch.log(a).sum().expand(2)
    assert torch.allclose(flow.log_abs_det_jacobian(x, y), expected, atol=1e-12)


def test_naf_sigmoid_two_units_closed_form():
    a_raw = torch.tensor([[0.5], [-0.3]])
    b = torch.tensor([[1.0], [-2.0]])
    w = torch.tensor([[0.2], [-0.4]])
    flow = T.NeuralAutoregressive(_Constant(a_raw, b, w), hidden_units=2)
    x = torch.tensor([[0.7]], dtype=torch.float64)
    a = torch.nn.functional.softplus(a_raw.double())
    weights = torch.softmax(w.double(), dim=0)
    s = (weights * torch.sigmoid(a * x + b.double())).sum()
    assert torch.allclose(flow(x).squeeze(), torch.logit(s), atol=1e-12)


def test_polynomial_degree_zero_is_affine():
    """count_degree=0, count_sum=1: y = c + a^2 x."""
    a = torch.tensor([[0.5, -2.0, 1.5]])
    flow = T.Polynomial(_Constant(a), input_dim=3, count_degree=0, count_sum=1).double()
    with torch.no_grad():
        flow.c.copy_(torch.tensor([1.0, -1.0, 0.25]))
    x = torch.tensor([[2.0, 3.0, -1.0]], dtype=torch.float64)
    y = flow(x)
    assert torch.allclose(y, flow.c + a.double() ** 2 * x)
    assert torch.allclose(flow.log_abs_det_jacobian(x, y), torch.log(a.double() ** 2).sum(-1))


def test_polynomial_degree_one_closed_form():
    """count_degree=1, one square: y = c + integral (a0 + a1 u)^2 du from 0 to x."""
    a0, a1 = 0.5, -1.5
    a = torch.tensor([[a0], [a1]])  # (R + 1, D) with D = 1
    flow = T.Polynomial(_Constant(a), input_dim=1, count_degree=1, count_sum=1).double()
    x = torch.tensor([[1.3], [-0.4]], dtype=torch.float64)
    c = flow.c.detach()
    expected = c + a0**2 * x + a0 * a1 * x**2 + a1**2 * x**3 / 3
    assert torch.allclose(flow(x), expected, atol=1e-12)
    ladj = flow.log_abs_det_jacobian(x, flow(x))
    assert torch.allclose(ladj, torch.log((a0 + a1 * x) ** 2).squeeze(-1), atol=1e-12)


def test_block_autoregressive_one_dim_closed_form():
    """D = 1, one hidden unit: y = e^{s2} tanh(e^{s1} x + b1) + b2 (rows normalized)."""
    torch.manual_seed(0)
    flow = T.BlockAutoregressive(1, hidden_factors=[1]).double()
    first, last = flow.layers
    with torch.no_grad():
        first.log_scale.fill_(0.3)
        first.bias.fill_(-0.2)
        last.log_scale.fill_(-0.4)
        last.bias.fill_(1.1)
    x = torch.linspace(-2, 2, 7, dtype=torch.float64).unsqueeze(-1)
    s1, s2 = math.exp(0.3), math.exp(-0.4)
    pre = s1 * x - 0.2
    expected = s2 * torch.tanh(pre) + 1.1
    y = flow(x)
    assert torch.allclose(y, expected, atol=1e-12)
    ladj = flow.log_abs_det_jacobian(x, y)
    expected_ladj = math.log(s1 * s2) + torch.log1p(-(torch.tanh(pre) ** 2)).squeeze(-1)
    assert torch.allclose(ladj, expected_ladj, atol=1e-12)


def test_sylvester_q_is_orthogonal_and_one_dim_closed_form():
    t = make("sylvester", seed=3)
    q = t.Q()
    assert torch.allclose(q @ q.T, torch.eye(D, dtype=torch.float64), atol=1e-12)
    flow = T.Sylvester(1).double()  # Q = -1 (one reflection of a line)
    with torch.no_grad():
        flow.R_diag.fill_(0.8)
        flow.S_diag.fill_(-0.5)
        flow.b.fill_(0.3)
    x = torch.tensor([[0.4], [-1.0]], dtype=torch.float64)
    r, s = math.tanh(0.8), math.tanh(-0.5)
    pre = -s * x + 0.3
    assert torch.allclose(flow(x), x - r * torch.tanh(pre), atol=1e-12)
    expected = torch.log1p((1 - torch.tanh(pre) ** 2) * r * s).squeeze(-1)
    assert torch.allclose(flow.log_abs_det_jacobian(x, flow(x)), expected, atol=1e-12)


def test_activation_log_derivatives():
    c = torch.linspace(-30, 30, 121, dtype=torch.float64)
    for act in ACTIVATIONS:
        t, log_dt = activation_with_log_derivative(act, c)
        inner = torch.linspace(-5, 5, 40, dtype=torch.float64).requires_grad_()
        (grad,) = torch.autograd.grad(activation_with_log_derivative(act, inner)[0].sum(), inner)
        assert torch.allclose(activation_with_log_derivative(act, inner)[1], grad.log(), atol=1e-10)
        assert torch.isfinite(log_dt).all() and torch.isfinite(t).all()


def test_log_matmul_and_masked_block_linear():
    a, b = torch.rand(2, 3, 4, dtype=torch.float64), torch.rand(2, 4, 5, dtype=torch.float64)
    assert torch.allclose(log_matmul(a.log(), b.log()).exp(), a @ b)
    layer = _perturb(MaskedBlockLinear(6, 9, 3), 0.5, 0).double()
    w, log_diag = layer.weights()
    assert torch.all(w[0:3, 2:6] == 0) and torch.all(w[3:6, 4:6] == 0)  # above the diagonal
    assert torch.allclose(w.norm(dim=-1), layer.log_scale.exp().squeeze(-1))
    for i in range(3):
        block = w[3 * i : 3 * i + 3, 2 * i : 2 * i + 2]
        assert torch.all(block > 0) and torch.allclose(block.log(), log_diag[i])


# -------------------------------------------------------------- normalization


# The trapezoid rule on 20001 points has relative error ~1e-8 for smooth integrands; where
# dy/dx jumps (the kinks of LeakyReLU) it is first order, ~h = 3e-4 times the jumps' share.
@pytest.mark.parametrize(
    "factory, rtol",
    [
        (lambda: T.block_autoregressive(1, hidden_factors=[4, 4], activation="ELU"), 1e-6),
        (lambda: T.block_autoregressive(1, hidden_factors=[3], residual="gated"), 1e-6),
        (
            lambda: T.NeuralAutoregressive(
                _Constant(torch.randn(3, 1), torch.randn(3, 1), torch.randn(3, 1)),
                hidden_units=3,
                activation="LeakyReLU",
            ),
            2e-5,
        ),
        (
            lambda: T.Polynomial(_Constant(torch.randn(6, 1)), 1, count_degree=2, count_sum=2),
            1e-6,
        ),
    ],
    ids=["bnaf-elu", "bnaf-gated", "naf-leakyrelu", "polynomial"],
)
def test_one_dim_jacobian_integrates_to_the_range(factory, rtol):
    """For an increasing 1-D map, the integral of exp(log|dy/dx|) over [a, b] is y(b) - y(a)."""
    torch.manual_seed(5)
    flow = _perturb(factory(), 0.3, 5).double()
    x = torch.linspace(-3, 3, 20001, dtype=torch.float64).unsqueeze(-1)
    y = flow(x)
    density = flow.log_abs_det_jacobian(x, y).exp()
    area = torch.trapezoid(density, x.squeeze(-1))
    assert torch.allclose(area, (y[-1] - y[0]).squeeze(), rtol=rtol)
    assert torch.all(y[1:] > y[:-1])


def test_flow_density_is_normalized_by_change_of_variables():
    """The density of samples, scored through the cache, matches base density minus log|J|."""
    torch.manual_seed(6)
    flow = make("bnaf-tanh", seed=6)
    base = dist.Normal(torch.zeros(D, dtype=torch.float64), 1.0).to_event(1)
    d = dist.TransformedDistribution(base, [flow])
    x = base.sample((7,))
    y = flow(x)
    expected = base.log_prob(x) - flow.log_abs_det_jacobian(x, y)
    assert torch.allclose(d.log_prob(y), expected)


# ------------------------------------------------------------------- inverses


@pytest.mark.parametrize("name", sorted(FLOWS))
def test_inverse_only_from_cache(name):
    t = make(name, seed=4)
    x = torch.randn(3, D, dtype=torch.float64)
    y = t(x)
    assert t.inv(y) is x
    with pytest.raises(T.InverseNotAvailableError, match="cannot invert"):
        t.inv(y.clone())
    with pytest.raises(KeyError):
        t.inv(y + 1)


@pytest.mark.parametrize("name", sorted(COND))
def test_conditioned_inverse_only_from_cache(name):
    _, t = make_conditioned(name, torch.randn(CTX))
    x = torch.randn(3, D, dtype=torch.float64)
    y = t(x)
    assert t.inv(y) is x
    with pytest.raises(T.InverseNotAvailableError):
        t.inv(y.clone())


# ------------------------------------------------------------- conditioning


@pytest.mark.parametrize("name", sorted(COND))
def test_context_batch_broadcasts_against_input(name):
    contexts = torch.randn(2, 1, CTX, dtype=torch.float64)
    cond, t = make_conditioned(name, contexts)
    x = torch.randn(5, D, dtype=torch.float64)
    y = t(x)
    assert y.shape == (2, 5, D)
    ladj = t.log_abs_det_jacobian(x, y)
    assert ladj.shape == (2, 5)
    for i in range(2):
        single = cond.condition(contexts[i, 0])
        assert torch.allclose(y[i], single(x), atol=1e-12)
        assert torch.allclose(ladj[i], single.log_abs_det_jacobian(x, single(x)), atol=1e-12)
    other = cond.condition(contexts[1, 0] + 1.0)
    assert not torch.allclose(other(x), y[1])


@pytest.mark.parametrize("name", sorted(COND))
def test_conditioned_flow_trains_the_network(name):
    """The conditioned transform exposes the network's parameters, and maximum likelihood
    through it changes them (the transform recomputes its parameters after each step)."""
    cond, t = make_conditioned(name, torch.randn(CTX), scale=0.1)
    params = list(t.parameters())
    assert {id(p) for p in params} == {id(p) for p in cond.parameters()}
    base = dist.Normal(torch.zeros(D, dtype=torch.float64), 1.0).to_event(1)
    d = dist.TransformedDistribution(base, [t.inv])
    data = torch.randn(16, D, dtype=torch.float64) * 0.5 + 1.0
    opt = torch.optim.Adam(params, lr=0.01)
    before = [p.detach().clone() for p in params]
    losses = []
    for _ in range(3):
        opt.zero_grad()
        loss = -d.log_prob(data).mean()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert all(math.isfinite(v) for v in losses)
    assert any(not torch.equal(b, p) for b, p in zip(before, params))


@pytest.mark.parametrize("name", sorted(COND))
def test_conditional_transformed_distribution(name):
    """Through ConditionalTransformedDistribution: a batch of contexts gives a batch of
    flows, and each sample scores as base density minus log|det J| of its own context."""
    torch.manual_seed(7)
    cond = _perturb(COND[name](), 0.3, 7).double()
    base = dist.Normal(torch.zeros(D, dtype=torch.float64), 1.0).to_event(1)
    contexts = torch.randn(5, CTX, dtype=torch.float64)
    d = dist.ConditionalTransformedDistribution(base, [cond]).condition(contexts)
    y = d.sample()
    assert y.shape == (5, D)
    flow = d.transforms[0]
    x = flow.inv(y)  # from the cache of the sampling call: one base draw, broadcast
    assert x.shape == (D,)
    expected = base.log_prob(x) - flow.log_abs_det_jacobian(x, y)
    assert expected.shape == (5,)
    assert torch.allclose(d.log_prob(y), expected)
    for i in range(5):
        single = cond.condition(contexts[i])
        assert torch.allclose(single(x), y[i], atol=1e-12)


# ------------------------------------------------------------- helpers, errors


def test_helpers_build_pyro_shaped_flows():
    torch.manual_seed(0)
    assert T.sylvester(5).count_transforms == 3 and T.sylvester(1).count_transforms == 1
    poly = T.polynomial(3)
    assert (poly.count_degree, poly.count_sum) == (4, 3)
    assert poly.arn.hidden_dims == [30] and poly.arn.param_dims == [15]
    naf = T.neural_autoregressive(3, activation="LeakyReLU", width=6)
    assert isinstance(naf, T.NeuralAutoregressive) and naf.activation == "LeakyReLU"
    assert naf.arn.hidden_dims == [10] and naf.arn.param_dims == [6, 6, 6]
    assert T.DeepSigmoidalFlow is T.NeuralAutoregressive
    assert T.deep_sigmoidal(3, hidden_units=4).activation == "sigmoid"
    bnaf = T.block_autoregressive(3)
    assert [layer.out_features for layer in bnaf.layers] == [24, 24, 3]
    assert bnaf.activation == "tanh" and bnaf.residual is None
    cp = T.conditional_planar(3, 2)
    assert cp.nn.param_dims == [1, 3, 3] and cp.nn.hidden_dims == [30, 30]
    cr = T.conditional_radial(3, 2)
    assert cr.nn.param_dims == [3, 1, 1]
    cnaf = T.conditional_neural_autoregressive(3, 2, width=4)
    assert cnaf.nn.context_dim == 2 and cnaf.nn.param_dims == [4, 4, 4]
    assert isinstance(cnaf.condition(torch.zeros(2)), T.NeuralAutoregressive)
    for name in [
        "BlockAutoregressive",
        "ConditionalNeuralAutoregressive",
        "ConditionalPlanar",
        "ConditionalRadial",
        "NeuralAutoregressive",
        "Polynomial",
        "Sylvester",
        "block_autoregressive",
        "conditional_neural_autoregressive",
        "conditional_planar",
        "conditional_radial",
        "polynomial",
        "sylvester",
    ]:
        assert name in T.__all__ and hasattr(T, name)


def test_bad_arguments():
    with pytest.raises(ValueError, match="activation='relu' is not available"):
        T.neural_autoregressive(3, activation="relu")
    with pytest.raises(ValueError, match="activation='relu' is not available"):
        T.conditional_neural_autoregressive(3, 2, activation="relu")
    with pytest.raises(ValueError, match="activation='softplus' is not available"):
        T.block_autoregressive(3, activation="softplus")
    with pytest.raises(ValueError, match="residual='skip' is not available"):
        T.block_autoregressive(3, residual="skip")
    with pytest.raises(ValueError, match="hidden_factors"):
        T.block_autoregressive(3, hidden_factors=[4, 0])
    with pytest.raises(ValueError, match="count_degree"):
        T.Polynomial(AutoRegressiveNN(3, [9]), 3, count_degree=-1, count_sum=2)
    with pytest.raises(ValueError, match="count_transforms"):
        T.Sylvester(3, count_transforms=0)
    with pytest.raises(ValueError, match="multiples of dim"):
        MaskedBlockLinear(4, 6, 3)
    with pytest.raises(ValueError, match=r"\(5, 3\)"):
        T.Polynomial(AutoRegressiveNN(3, [9], param_dims=[4]), 3, 4, 1)(torch.randn(3))
    for flow in [T.block_autoregressive(3), T.polynomial(3), T.sylvester(3)]:
        with pytest.raises(ValueError, match=r"shape \(\.\.\., 3\)"):
            flow(torch.randn(2, 4))
    with pytest.raises(ValueError, match=r"shape \(\.\.\., 3\)"):
        T.conditional_planar(3, 2).condition(torch.zeros(2))(torch.randn(4))
    with pytest.raises(TypeError, match="context must be a tensor"):
        T.conditional_radial(3, 2).condition([0.0, 1.0])


def test_planar_radial_accept_batched_parameters_like_before():
    """The unconditional flows still give their closed forms after sharing code with the
    conditional ones."""
    torch.manual_seed(0)
    planar = _perturb(T.PlanarFlow(D), 0.8, 0).double()
    x = torch.randn(3, D, dtype=torch.float64)
    u_hat = planar.u_hat()
    assert torch.dot(u_hat, planar.w) > -1
    expected = x + u_hat * torch.tanh(x @ planar.w + planar.bias).unsqueeze(-1)
    assert torch.allclose(planar(x), expected)
    radial = _perturb(T.RadialFlow(D), 0.8, 1).double()
    diff = x - radial.x0
    r = diff.norm(dim=-1, keepdim=True)
    assert torch.allclose(radial(x), x + radial.beta * diff / (radial.alpha + r))
    _check_ladj_against_jacobian(planar)
    _check_ladj_against_jacobian(radial)


def test_conditional_network_of_wrong_width_is_reported():
    flow = T.ConditionalPlanar(DenseNN(CTX, [5], param_dims=[1, 2, 2]))
    with pytest.raises(ValueError, match=r"shape \(\.\.\., 2\)"):
        flow.condition(torch.zeros(CTX))(torch.zeros(3))


@pytest.mark.parametrize("name", sorted(FLOWS))
def test_deepcopy_and_pickle_after_forward(name):
    import copy
    import io

    t = make(name, seed=8)
    x = torch.randn(3, D, dtype=torch.float64)
    y = t(x)  # fills the caches with tensors that carry a graph
    buffer = io.BytesIO()
    torch.save(t, buffer)
    buffer.seek(0)
    for clone in (copy.deepcopy(t), torch.load(buffer, weights_only=False)):
        assert torch.allclose(clone(x), y.detach())
        assert torch.allclose(
            clone.log_abs_det_jacobian(x, clone(x)), t.log_abs_det_jacobian(x, y).detach()
        )
