"""Transforms and flows: log|det J| against autograd Jacobians, inverses, constraints, errors."""

import pytest
import torch
from torch.autograd.functional import jacobian
from torch.distributions import constraints

import ember.distributions as dist
from ember.distributions import transforms as T
from ember.nn import AutoRegressiveNN, ConditionalAutoRegressiveNN

D = 4


def _perturb(module, scale, seed):
    """Move a flow's parameters away from their (near-identity) initial values."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(scale * torch.randn(p.shape, generator=gen, dtype=p.dtype))
    return module


def make_iaf(seed=0, skip=False, perm=None):
    torch.manual_seed(seed)
    arn = AutoRegressiveNN(D, [9, 9], permutation=perm, skip_connections=skip)
    return _perturb(T.InverseAutoregressiveFlow(arn), 0.3, seed).double()


def make_iaf_stable(seed=0):
    torch.manual_seed(seed)
    return _perturb(T.InverseAutoregressiveFlowStable(AutoRegressiveNN(D, [9])), 0.3, seed).double()


def make_planar(seed=0):
    torch.manual_seed(seed)
    return _perturb(T.PlanarFlow(D), 1.5, seed).double()


def make_radial(seed=0):
    torch.manual_seed(seed)
    return _perturb(T.RadialFlow(D), 1.0, seed).double()


def make_dsf(seed=0):
    torch.manual_seed(seed)
    arn = AutoRegressiveNN(D, [10], param_dims=[5] * 3)
    return _perturb(T.DeepSigmoidalFlow(arn, hidden_units=5), 0.5, seed).double()


def make_permute(seed=0):
    return T.PermuteTransform(torch.tensor([2, 0, 3, 1]))


def make_compose(seed=0):
    torch.manual_seed(seed)
    parts = [make_iaf(seed), make_permute(), make_planar(seed + 1), make_radial(seed + 2)]
    return T.ComposeTransformModule(parts)


def make_conditional(seed=0):
    torch.manual_seed(seed)
    flow = T.ConditionalAffineAutoregressive(ConditionalAutoRegressiveNN(D, 2, [8]))
    flow = _perturb(flow, 0.3, seed).double()
    return flow.condition(torch.tensor([0.5, -1.0], dtype=torch.float64))


def make_clipped_iaf(seed=0):
    # large weights push log-scales outside [-5, 3], so clipping is active
    torch.manual_seed(seed)
    flow = _perturb(T.InverseAutoregressiveFlow(AutoRegressiveNN(D, [9])), 3.0, seed).double()
    return flow


VECTOR_FLOWS = {
    "iaf": make_iaf,
    "iaf_skip": lambda seed=0: make_iaf(seed, skip=True),
    "iaf_perm": lambda seed=0: make_iaf(seed, perm=torch.tensor([3, 1, 0, 2])),
    "iaf_clipped": make_clipped_iaf,
    "iaf_stable": make_iaf_stable,
    "planar": make_planar,
    "radial": make_radial,
    "dsf": make_dsf,
    "permute": make_permute,
    "compose": make_compose,
    "conditional_iaf": make_conditional,
}
INVERTIBLE = {
    "iaf",
    "iaf_skip",
    "iaf_perm",
    "iaf_clipped",
    "iaf_stable",
    "permute",
    "conditional_iaf",
}
CACHE_ONLY = {"planar", "radial", "dsf"}


def _logabsdet_autograd(t, x):
    jac = jacobian(lambda v: t(v), x)
    return torch.linalg.slogdet(jac).logabsdet


@pytest.mark.parametrize("name", sorted(VECTOR_FLOWS))
def test_log_abs_det_jacobian_matches_autograd(name):
    t = VECTOR_FLOWS[name]()
    torch.manual_seed(10)
    xs = 1.5 * torch.randn(6, D, dtype=torch.float64)
    y = t(xs)
    ladj = t.log_abs_det_jacobian(xs, y)
    assert ladj.shape == (6,)
    expected = torch.stack([_logabsdet_autograd(t, x.clone()) for x in xs])
    assert torch.allclose(ladj, expected, atol=1e-9, rtol=1e-9), (ladj, expected)
    # also when (x, y) is not the cached pair
    ladj_fresh = t.log_abs_det_jacobian(xs.clone(), y.clone())
    assert torch.allclose(ladj_fresh, expected, atol=1e-9, rtol=1e-9)


def test_clipping_is_active_in_clipped_case():
    t = make_clipped_iaf()
    x = 1.5 * torch.randn(50, D, dtype=torch.float64)
    _, s = t.arn(x)
    assert (s < -5).any() or (s > 3).any()
    y = t(x)
    cached_x, log_scale = t._cached_log_scale
    assert cached_x is x
    assert log_scale.min() >= -5 and log_scale.max() <= 3
    assert torch.allclose(t.log_abs_det_jacobian(x, y), s.clamp(-5, 3).sum(-1))


@pytest.mark.parametrize("name", ["iaf", "iaf_stable", "dsf"])
def test_cached_log_det_belongs_to_its_pair(name):
    t = VECTOR_FLOWS[name]()
    x = torch.randn(5, D, dtype=torch.float64)
    y = t(x)
    expected = t.log_abs_det_jacobian(x.clone(), y.clone())  # recomputed from x
    # a direct call of the private map on other values must not leak into the cached pair
    t._call(torch.randn(5, D, dtype=torch.float64))
    if name != "dsf":  # the deep sigmoidal flow has no _inverse
        t._inverse(torch.randn(5, D, dtype=torch.float64))
    assert torch.allclose(t.log_abs_det_jacobian(x, y), expected)


@pytest.mark.parametrize("name", sorted(INVERTIBLE))
def test_inverse_of_forward(name):
    t = VECTOR_FLOWS[name]()
    torch.manual_seed(11)
    x = torch.randn(3, 7, D, dtype=torch.float64)
    y = t(x)
    assert y.shape == x.shape
    # the cached pair returns x itself
    assert t.inv(y) is x
    # a fresh tensor is not in the cache: the inverse is computed
    x_back = t.inv(y.clone())
    assert torch.allclose(x_back, x, atol=1e-9)


@pytest.mark.parametrize("name", sorted(CACHE_ONLY))
def test_cache_only_inverse(name):
    t = VECTOR_FLOWS[name]()
    x = torch.randn(5, D, dtype=torch.float64)
    y = t(x)
    assert t.inv(y) is x
    with pytest.raises(ValueError, match="cannot invert this value.*no closed-form inverse"):
        t.inv(y.clone())
    with pytest.raises(KeyError):  # also a KeyError, as in Pyro
        t.inv(y.clone())


@pytest.mark.parametrize("name", sorted(VECTOR_FLOWS))
def test_constraints_and_event_dim(name):
    t = VECTOR_FLOWS[name]()
    assert t.event_dim == 1
    assert t.domain.event_dim == 1 and t.codomain.event_dim == 1
    assert t.bijective
    x = torch.randn(D, dtype=torch.float64)
    assert bool(t.codomain.check(t(x)))


def test_iaf_inverse_in_d_passes_counts_calls():
    t = make_iaf()
    calls = []
    t.arn.register_forward_hook(lambda *args: calls.append(1))
    y = torch.randn(5, D, dtype=torch.float64)
    t.inv(y)
    assert len(calls) == D
    calls.clear()
    x = torch.randn(5, D, dtype=torch.float64)
    y = t(x)
    t.inv(y)
    t.log_abs_det_jacobian(x, y)
    assert len(calls) == 1  # cached inverse and log-scale


def test_cache_invalidated_after_parameter_update():
    t = make_iaf()
    x = torch.randn(5, D, dtype=torch.float64)
    y = t(x)
    with torch.no_grad():
        for p in t.parameters():
            p.mul_(1.1)
    x_new = t.inv(y)
    assert not torch.allclose(x_new, x)
    assert torch.allclose(t(x_new.clone()), y, atol=1e-9)
    planar = make_planar()
    y = planar(x)
    with torch.no_grad():
        planar.u.add_(0.5)
    with pytest.raises(ValueError, match="cannot invert"):
        planar.inv(y)


def test_permute_log_det_zero_and_shapes():
    t = T.PermuteTransform(torch.tensor([1, 2, 0]))
    x = torch.randn(4, 5, 3)
    assert torch.equal(t.log_abs_det_jacobian(x, t(x)), torch.zeros(4, 5))
    assert torch.equal(t(x)[..., 0], x[..., 1])
    t2 = T.PermuteTransform(torch.tensor([1, 0]), dim=-2)
    x = torch.randn(2, 3)
    assert torch.equal(t2(x), x.flip(0))
    assert t2.event_dim == 2
    assert t2.log_abs_det_jacobian(x, t2(x)).shape == ()
    assert T.permute(3).permutation.sort().values.tolist() == [0, 1, 2]


def test_planar_enforces_w_dot_u_above_minus_one():
    flow = T.PlanarFlow(3).double()
    with torch.no_grad():
        flow.w.copy_(torch.tensor([1.0, 2.0, -1.0]))
        flow.u.copy_(-5.0 * flow.w)  # raw w.u = -30: not invertible as given
        flow.bias.zero_()
    wu_hat = torch.dot(flow.w, flow.u_hat())
    assert wu_hat > -1
    assert torch.allclose(wu_hat, torch.nn.functional.softplus(torch.tensor(-30.0)).double() - 1)
    # the map is increasing along w: at w.x + b = 0 its slope there, 1 + w.u_hat, stays > 0
    x = torch.zeros(3, dtype=torch.float64)
    jac = jacobian(flow, x)
    assert torch.linalg.det(jac) > 0
    assert torch.allclose(flow.log_abs_det_jacobian(x, flow(x)), torch.log(1 + wu_hat))
    s = torch.linspace(-3, 3, 201, dtype=torch.float64)
    proj = flow(s.unsqueeze(-1) * flow.w / flow.w.pow(2).sum()) @ flow.w
    assert torch.all(proj.diff() > 0)


def test_radial_enforces_beta_above_minus_alpha():
    flow = T.RadialFlow(2).double()
    with torch.no_grad():
        flow.alpha_prime.fill_(0.0)
        flow.beta_prime.fill_(-20.0)  # beta -> -alpha from above
        flow.x0.zero_()
    alpha, beta = flow.alpha[0], flow.beta[0]
    assert alpha > 0 and beta > -alpha
    # radius map r -> r (1 + beta / (alpha + r)) is strictly increasing, so the flow is injective
    r = torch.linspace(0, 5, 501, dtype=torch.float64)[1:]
    radius = flow(torch.stack([r, torch.zeros_like(r)], -1)).norm(dim=-1)
    assert torch.all(radius.diff() > 0)
    x = torch.tensor([1e-3, 0.0], dtype=torch.float64)
    assert torch.isfinite(flow.log_abs_det_jacobian(x, flow(x)))
    assert torch.allclose(
        flow.log_abs_det_jacobian(x, flow(x)), _logabsdet_autograd(flow, x.clone()), atol=1e-9
    )


# ---------------------------------------------------------------- batch norm


def _trained_batchnorm(seed=0):
    torch.manual_seed(seed)
    bn = T.BatchNormTransform(D, momentum=0.3).double()
    _perturb(bn, 0.5, seed)
    for _ in range(5):
        bn.inv(3.0 * torch.randn(64, D, dtype=torch.float64) + 2.0)
    return bn


def test_batchnorm_constraints():
    bn = T.BatchNormTransform(D)
    assert bn.event_dim == 0 and bn.domain is constraints.real and bn.codomain is constraints.real
    assert torch.allclose(bn.constrained_gamma, torch.ones(D))
    with torch.no_grad():
        bn.gamma.fill_(-30.0)
    assert (bn.constrained_gamma > 0).all()


def test_batchnorm_eval_jacobian_and_inverse():
    bn = _trained_batchnorm().eval()
    x = torch.randn(6, D, dtype=torch.float64)
    y = bn(x)
    ladj = bn.log_abs_det_jacobian(x, y)
    assert ladj.shape == x.shape
    for i in range(6):
        jac = jacobian(bn, x[i].clone())
        assert torch.allclose(jac, torch.diag(torch.diagonal(jac)))  # elementwise
        assert torch.allclose(ladj[i], torch.diagonal(jac).abs().log())
    assert torch.allclose(bn.inv(y.clone()), x)


def test_batchnorm_training_uses_minibatch_and_updates_averages():
    torch.manual_seed(1)
    bn = T.BatchNormTransform(D, momentum=0.25).double()
    _perturb(bn, 0.5, 3)
    y = 2.0 * torch.randn(100, D, dtype=torch.float64) - 1.0
    x = bn.inv(y)
    gamma, beta = bn.constrained_gamma, bn.beta
    # normalized with the minibatch statistics
    assert torch.allclose(x.mean(0), beta, atol=1e-9)
    assert torch.allclose(
        x.std(0, unbiased=False),
        gamma * y.std(0, unbiased=False) / torch.sqrt(y.var(0, unbiased=False) + bn.epsilon),
        atol=1e-9,
    )
    # running averages: (1 - m) * old + m * minibatch (unbiased variance)
    assert torch.allclose(bn.moving_mean, 0.25 * y.mean(0))
    assert torch.allclose(bn.moving_variance, 0.75 + 0.25 * y.var(0))
    # log|det| of the forward map equals minus that of the minibatch inverse (stats fixed)
    var = y.var(0, unbiased=False).detach()
    mean = y.mean(0).detach()

    def inverse_fixed_stats(v):
        return (v - mean) / torch.sqrt(var + bn.epsilon) * gamma + beta

    for i in range(3):
        jac = jacobian(inverse_fixed_stats, y[i].clone())
        ladj = bn.log_abs_det_jacobian(x, y)[i]
        assert torch.allclose(ladj, -torch.diagonal(jac).abs().log())
    # forward uses the running averages, so it does not undo the training-mode inverse
    assert not torch.allclose(bn(x.clone()), y)
    # one row moves the running mean; its variance is unknown, so the average stays
    before_mean, before_var = bn.moving_mean.clone(), bn.moving_variance.clone()
    row = torch.randn(1, D, dtype=torch.float64)
    bn.inv(row)
    assert torch.allclose(bn.moving_mean, (1 - bn.momentum) * before_mean + bn.momentum * row[0])
    assert torch.equal(bn.moving_variance, before_var)
    with pytest.raises(ValueError, match="at least 1 row"):
        bn.inv(torch.randn(0, D, dtype=torch.float64))


# ---------------------------------------------------------------- torch transforms


@pytest.mark.parametrize(
    "t",
    [
        T.ExpTransform(),
        T.AffineTransform(1.0, 3.0),
        T.SigmoidTransform(),
        T.TanhTransform(),
        T.ComposeTransform([T.ExpTransform(), T.AffineTransform(-1.0, 0.5)]),
    ],
    ids=lambda t: type(t).__name__,
)
def test_reexported_torch_transforms(t):
    x = 0.5 * torch.randn(5, dtype=torch.float64)
    y = t(x)
    jac = jacobian(t, x)
    assert torch.allclose(t.log_abs_det_jacobian(x, y), torch.diagonal(jac).abs().log())
    assert torch.allclose(t.inv(y.clone()), x)


def test_all_torch_transforms_reexported():
    import torch.distributions.transforms as tt

    for name in tt.__all__:
        assert getattr(T, name) is getattr(tt, name)
    assert dist.transforms is T


# ---------------------------------------------------------------- modules, distributions


def test_transform_module_registers_parameters_and_hashes():
    flows = [make_iaf(), make_planar(), make_radial(), make_dsf(), _trained_batchnorm()]
    container = torch.nn.ModuleList(flows)
    n_params = sum(1 for _ in container.parameters())
    assert n_params == sum(len(list(f.parameters())) for f in flows) > 0
    assert len({f: 1 for f in flows}) == len(flows)
    assert all(isinstance(f, T.TransformModule) for f in flows)


def test_transformed_distribution_samples_scores_and_trains():
    torch.manual_seed(5)
    base = dist.Normal(torch.zeros(D, dtype=torch.float64), 1.0)
    flows = [
        make_iaf(),
        make_permute(),
        make_iaf_stable(1),
        make_planar(2),
        make_radial(3),
        make_dsf(4),
    ]
    d = dist.TransformedDistribution(base, flows)
    y = d.rsample((8,))
    assert y.shape == (8, D)
    lp = d.log_prob(y)
    assert lp.shape == (8,)
    # score by hand: walk back through the cached inverses
    x, expected = y, 0.0
    for f in reversed(flows):
        x_prev = f.inv(x)
        expected = expected - f.log_abs_det_jacobian(x_prev, x)
        x = x_prev
    expected = expected + base.log_prob(x).sum(-1)
    assert torch.allclose(lp, expected)
    lp.sum().backward()
    for f in flows:
        if not isinstance(f, torch.nn.Module):
            continue
        for p in f.parameters():
            assert p.grad is not None and torch.isfinite(p.grad).all()
            assert p.grad.abs().sum() > 0


def test_transformed_distribution_batchnorm_and_event_dims():
    base = dist.Normal(torch.zeros(D, dtype=torch.float64), 1.0)
    bn = _trained_batchnorm().eval()
    d = dist.TransformedDistribution(base, [make_iaf(), bn])
    assert d.event_shape == (D,) and d.batch_shape == ()
    y = torch.randn(3, D, dtype=torch.float64)
    assert d.log_prob(y).shape == (3,)


def test_float32_and_helpers():
    torch.manual_seed(0)
    for t in [
        T.iaf(3, [8]),
        T.affine_autoregressive(3, stable=True),
        T.planar(3),
        T.radial(3),
        T.deep_sigmoidal(3, [8], hidden_units=4),
        T.batchnorm(3),
        T.permute(3),
    ]:
        y = t(torch.randn(4, 3))
        assert y.dtype == torch.float32 and y.shape == (4, 3)


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "t",
    [T.iaf(3, [8]), T.planar(3), T.radial(3), T.batchnorm(3), T.permute(3), T.iaf(3, [8]).inv],
    ids=lambda t: type(t).__name__,
)
def test_wrong_input_dimension(t):
    with pytest.raises(ValueError, match=r"shape|size 3"):
        t(torch.randn(5, 4))


def test_bad_constructor_arguments():
    with pytest.raises(ValueError, match="not a permutation"):
        T.PermuteTransform(torch.tensor([0, 2, 2]))
    with pytest.raises(ValueError, match="1-D"):
        T.PermuteTransform(torch.tensor([[0, 1]]))
    with pytest.raises(ValueError, match="permutation has 2 entries but input_dim=3"):
        T.permute(3, torch.tensor([1, 0]))
    with pytest.raises(ValueError, match="input_dim must be a positive int"):
        T.PlanarFlow(0)
    with pytest.raises(ValueError, match="input_dim must be a positive int"):
        T.RadialFlow(-2)
    with pytest.raises(ValueError, match="momentum"):
        T.BatchNormTransform(3, momentum=2.0)
    with pytest.raises(ValueError, match="log_scale_min_clip"):
        T.InverseAutoregressiveFlow(AutoRegressiveNN(3, [6]), log_scale_min_clip=4.0)
    bad = T.DeepSigmoidalFlow(AutoRegressiveNN(3, [6], param_dims=[4] * 3), hidden_units=5)
    with pytest.raises(ValueError, match=r"\(hidden_units, D\) = \(5, 3\)"):
        bad(torch.randn(3))
    bad = T.InverseAutoregressiveFlow(AutoRegressiveNN(3, [6], param_dims=[1]))
    with pytest.raises(ValueError, match="must return a pair"):
        bad(torch.randn(3))


@pytest.mark.parametrize("name", ["iaf", "planar", "radial", "dsf", "compose"])
def test_deepcopy_and_save_after_forward(name):
    import copy
    import io

    t = VECTOR_FLOWS[name]()
    x = torch.randn(3, D, dtype=torch.float64)
    t(x)  # fills the cache with tensors that carry a graph
    buffer = io.BytesIO()
    torch.save(t, buffer)
    buffer.seek(0)
    for clone in (copy.deepcopy(t), torch.load(buffer, weights_only=False)):
        x2 = torch.randn(3, D, dtype=torch.float64)
        assert torch.allclose(clone(x2), t(x2))
        assert clone is not t and next(clone.parameters()) is not next(t.parameters())
