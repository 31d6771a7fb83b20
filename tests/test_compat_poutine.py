"""Integration: Pyro-style handler programs (condition, do, block, replay,
trace, mask, scale, subsampling) under ``import ember as pyro``.

Log-densities are checked against hand-computed closed forms.
"""

import math
import warnings

import pytest
import torch

import ember as pyro
import ember.distributions as dist
from ember import poutine
from ember.infer import SVI, Trace_ELBO
from ember.optim import SGD
from ember.poutine.util import prune_subsample_sites


@pytest.fixture(autouse=True)
def _fresh_store():
    pyro.clear_param_store()
    yield
    pyro.clear_param_store()


def normal_logpdf(x, loc, scale):
    x, loc, scale = (torch.as_tensor(v, dtype=torch.float64) for v in (x, loc, scale))
    return -0.5 * ((x - loc) / scale) ** 2 - torch.log(scale) - 0.5 * math.log(2 * math.pi)


CHAIN_DATA = torch.tensor([0.3, -0.2, 1.1])


def chain(data=CHAIN_DATA):
    a = pyro.sample("a", dist.Normal(0.0, 1.0))
    b = pyro.sample("b", dist.Normal(a, 2.0))
    with pyro.plate("data", len(data)):
        pyro.sample("y", dist.Normal(b, 0.5), obs=data)
    return a, b


# --------------------------------------------------------------------------
# 3. condition / do / block / replay / trace nesting
# --------------------------------------------------------------------------


def sample_names(tr):
    tr = prune_subsample_sites(tr)
    return [n for n, s in tr.nodes.items() if s["type"] == "sample"]


def test_trace_records_sites_in_order_with_types():
    tr = poutine.trace(chain).get_trace()
    # the plate records its subsample as a sample site, as in Pyro
    assert [n for n, s in tr.nodes.items() if s["type"] == "sample"] == ["a", "b", "data", "y"]
    assert sample_names(tr) == ["a", "b", "y"]
    assert tr.nodes["y"]["is_observed"] and not tr.nodes["a"]["is_observed"]
    assert prune_subsample_sites(tr).stochastic_nodes == ["a", "b"]
    assert tr.observation_nodes == ["y"]
    a, b = tr.nodes["_RETURN"]["value"]
    assert a is tr.nodes["a"]["value"] and b is tr.nodes["b"]["value"]
    frames = tr.nodes["y"]["cond_indep_stack"]
    assert [(f.name, f.dim, f.size) for f in frames] == [("data", -1, 3)]


def test_compute_log_prob_matches_hand_computed():
    data = torch.tensor([0.3, -0.2, 1.1])
    tr = poutine.trace(chain).get_trace(data)
    tr.compute_log_prob()
    a = tr.nodes["a"]["value"]
    b = tr.nodes["b"]["value"]
    exp_a = normal_logpdf(a, 0.0, 1.0)
    exp_b = normal_logpdf(b, a, 2.0)
    exp_y = normal_logpdf(data, b, 0.5)
    assert torch.allclose(tr.nodes["a"]["log_prob"].double(), exp_a, atol=1e-5)
    assert torch.allclose(tr.nodes["b"]["log_prob"].double(), exp_b, atol=1e-5)
    assert tr.nodes["y"]["log_prob"].shape == (3,)
    assert torch.allclose(tr.nodes["y"]["log_prob"].double(), exp_y, atol=1e-5)
    assert torch.allclose(tr.nodes["y"]["log_prob_sum"].double(), exp_y.sum(), atol=1e-5)
    total = tr.log_prob_sum()
    assert torch.allclose(total.double(), exp_a + exp_b + exp_y.sum(), atol=1e-5)


def test_condition_makes_sites_observed_and_changes_density():
    cond = poutine.condition(chain, data={"a": torch.tensor(0.5), "b": torch.tensor(-1.0)})
    tr = poutine.trace(cond).get_trace()
    assert tr.nodes["a"]["is_observed"] and tr.nodes["b"]["is_observed"]
    assert tr.nodes["a"]["value"].item() == 0.5
    assert tr.nodes["b"]["fn"].loc.item() == 0.5
    data = torch.tensor([0.3, -0.2, 1.1])
    expected = (
        normal_logpdf(0.5, 0, 1)
        + normal_logpdf(-1.0, 0.5, 2)
        + normal_logpdf(data, -1.0, 0.5).sum()
    )
    assert torch.allclose(tr.log_prob_sum().double(), expected, atol=1e-5)
    # pyro.condition is the same handler at top level
    tr2 = poutine.trace(pyro.condition(chain, data={"a": torch.tensor(0.5)})).get_trace()
    assert tr2.nodes["a"]["is_observed"]


def test_do_intervenes_without_observing():
    intervened = poutine.do(chain, data={"a": torch.tensor(3.0)})
    pyro.set_rng_seed(0)
    tr = poutine.trace(intervened).get_trace()
    # downstream code sees the intervention
    assert tr.nodes["b"]["fn"].loc.item() == 3.0
    a_ret, _ = tr.nodes["_RETURN"]["value"]
    assert a_ret.item() == 3.0
    # the intervened site does not contribute an observation of 3.0
    for name, site in tr.nodes.items():
        if site["type"] == "sample" and site["is_observed"]:
            assert name == "y"
    # pyro.do exists at top level too
    tr2 = poutine.trace(pyro.do(chain, data={"a": torch.tensor(3.0)})).get_trace()
    assert tr2.nodes["b"]["fn"].loc.item() == 3.0


def test_block_hide_and_expose():
    tr = poutine.trace(poutine.block(chain, hide=["a"])).get_trace()
    assert "a" not in tr.nodes and "b" in tr.nodes
    tr = poutine.trace(poutine.block(chain, expose=["b"])).get_trace()
    assert sample_names(tr) == ["b"]
    tr = poutine.trace(poutine.block(chain)).get_trace()
    assert not [n for n in tr.nodes if tr.nodes[n]["type"] == "sample"]
    tr = poutine.trace(poutine.block(chain, hide_types=["observe"])).get_trace()
    assert "y" not in tr.nodes and "a" in tr.nodes
    # block as a context manager, nested inside a trace
    with poutine.trace() as tracer:
        with poutine.block(hide_fn=lambda msg: msg["name"] == "b"):
            chain()
    assert "a" in tracer.trace.nodes and "b" not in tracer.trace.nodes


def test_replay_reuses_guide_values():
    def guide(data=None):
        pyro.sample("a", dist.Normal(1.0, 0.1))
        pyro.sample("b", dist.Normal(2.0, 0.1))

    guide_tr = poutine.trace(guide).get_trace()
    model_tr = poutine.trace(poutine.replay(chain, trace=guide_tr)).get_trace()
    for name in ("a", "b"):
        assert model_tr.nodes[name]["value"] is guide_tr.nodes[name]["value"]
    # densities are the model's, evaluated at the guide's values
    model_tr.compute_log_prob()
    a = guide_tr.nodes["a"]["value"]
    assert torch.allclose(
        model_tr.nodes["a"]["log_prob"].double(), normal_logpdf(a, 0, 1), atol=1e-5
    )
    # replay with a params dict
    model_tr2 = poutine.trace(poutine.replay(chain, params={})).get_trace()
    assert "a" in model_tr2.nodes


def test_nesting_condition_inside_block_inside_trace():
    fn = poutine.block(poutine.condition(chain, data={"a": torch.tensor(0.0)}), hide=["b"])
    tr = poutine.trace(fn).get_trace()
    assert set(sample_names(tr)) == {"a", "y"}
    assert tr.nodes["a"]["is_observed"]
    # trace of a trace: both record the same sites
    inner = poutine.trace(chain)
    outer_tr = poutine.trace(inner).get_trace()
    assert inner.trace.nodes["a"]["value"] is outer_tr.nodes["a"]["value"]


def test_format_shapes_lists_sites_and_shapes():
    def model():
        pyro.param("p", torch.ones(4))
        z = pyro.sample("z", dist.Normal(torch.zeros(2), 1.0).to_event(1))
        with pyro.plate("rows", 5):
            pyro.sample("x", dist.Normal(z.sum(), 1.0), obs=torch.zeros(5))

    tr = poutine.trace(model).get_trace()
    tr.compute_log_prob()
    text = tr.format_shapes()
    # ember's table: one row per site with its type, batch/event shapes, value
    # and log_prob shapes and the plates in scope (name(size)@dim)
    rows = [line.split() for line in text.splitlines()]
    assert rows[0] == ["Trace", "Shapes:"]
    assert rows[1] == ["site", "type", "batch", "event", "value", "log_prob", "plates"]
    by_name = {r[0]: r[1:] for r in rows[2:]}
    assert by_name["p"] == ["param", "-", "-", "(4,)", "-", "-"]
    assert by_name["z"] == ["sample", "()", "(2,)", "(2,)", "()", "-"]
    assert by_name["x"] == ["sample", "(5,)", "()", "(5,)", "(5,)", "rows(5)@-1"]
    assert [r[0] for r in rows[2:]] == ["p", "z", "x"]


# --------------------------------------------------------------------------
# 7. masks, scales, subsampling, deprecated plate names
# --------------------------------------------------------------------------


def test_distribution_mask_zeroes_log_prob():
    d = dist.Normal(torch.zeros(4), 1.0)
    m = torch.tensor([True, False, True, False])
    x = torch.tensor([0.1, 0.2, 0.3, 0.4])
    lp = d.mask(m).log_prob(x)
    expected = torch.where(m, d.log_prob(x), torch.zeros(4))
    assert torch.allclose(lp, expected)

    def model():
        with pyro.plate("n", 4):
            pyro.sample("x", dist.Normal(0.0, 1.0).mask(m), obs=x)

    tr = poutine.trace(model).get_trace()
    assert torch.allclose(tr.log_prob_sum(), expected.sum())


def test_poutine_mask_and_scale():
    x = torch.tensor([0.1, 0.2, 0.3, 0.4])
    m = torch.tensor([True, True, False, True])

    def model():
        with pyro.plate("n", 4):
            pyro.sample("x", dist.Normal(0.0, 1.0), obs=x)

    base = dist.Normal(0.0, 1.0).log_prob(x)
    tr = poutine.trace(poutine.mask(model, mask=m)).get_trace()
    assert torch.allclose(tr.log_prob_sum(), base[m].sum())
    tr = poutine.trace(poutine.scale(model, scale=2.5)).get_trace()
    assert torch.allclose(tr.log_prob_sum(), 2.5 * base.sum())
    # scale and mask compose; nested scales multiply
    fn = poutine.scale(poutine.scale(poutine.mask(model, mask=m), scale=2.0), scale=3.0)
    tr = poutine.trace(fn).get_trace()
    assert tr.nodes["x"]["scale"] == 6.0
    assert torch.allclose(tr.log_prob_sum(), 6.0 * base[m].sum())
    # a tensor scale broadcasts over the plate
    w = torch.tensor([1.0, 0.25, 2.0, 0.5])
    tr = poutine.trace(poutine.scale(model, scale=w)).get_trace()
    assert torch.allclose(tr.log_prob_sum(), (w * base).sum())


def test_scale_affects_elbo_gradient():
    # d/dmu of -scale * log N(x | mu, 1) at mu = 0 is -scale * sum(x)
    x = torch.tensor([1.0, 2.0])

    def model():
        mu = pyro.param("mu", torch.tensor(0.0))
        with pyro.plate("n", 2):
            pyro.sample("x", dist.Normal(mu, 1.0), obs=x)

    def guide():
        pass

    loss = Trace_ELBO().differentiable_loss(poutine.scale(model, scale=3.0), guide)
    (grad,) = torch.autograd.grad(loss, [pyro.param("mu").unconstrained()])
    assert torch.allclose(grad, torch.tensor(-3.0 * 3.0))


def test_obs_mask_splits_observed_and_latent():
    pyro.set_rng_seed(0)
    data = torch.tensor([0.5, -1.0, 2.0, 0.0])
    obs_mask = torch.tensor([True, False, True, False])

    def model():
        with pyro.plate("n", 4):
            return pyro.sample("x", dist.Normal(1.0, 2.0), obs=data, obs_mask=obs_mask)

    tr = poutine.trace(model).get_trace()
    value = tr.nodes["_RETURN"]["value"]
    assert value.shape == (4,)
    # observed entries keep the data; unobserved ones are imputed
    assert torch.equal(value[obs_mask], data[obs_mask])
    assert not torch.equal(value[~obs_mask], data[~obs_mask])
    pruned = prune_subsample_sites(tr)
    observed = [n for n, s in pruned.nodes.items() if s["type"] == "sample" and s["is_observed"]]
    latent = [n for n, s in pruned.nodes.items() if s["type"] == "sample" and not s["is_observed"]]
    # the combined value is recorded as a deterministic site "x", as in Pyro
    assert observed == ["x_observed", "x"]
    assert latent == ["x_unobserved"]
    assert torch.equal(tr.nodes["x"]["value"], value)
    tr.compute_log_prob()
    assert torch.all(tr.nodes["x"]["log_prob"] == 0)
    unobs_lp = tr.nodes["x_unobserved"]["log_prob_sum"]
    x_un = tr.nodes["x_unobserved"]["value"]
    assert torch.allclose(
        unobs_lp.double(), normal_logpdf(x_un, 1.0, 2.0)[~obs_mask].sum(), atol=1e-5
    )
    obs_lp = tr.nodes["x_observed"]["log_prob_sum"]
    expected = normal_logpdf(data, 1.0, 2.0)[obs_mask].sum()
    assert torch.allclose(obs_lp.double(), expected, atol=1e-5)


def test_subsampled_plate_scales_log_prob():
    pyro.set_rng_seed(1)
    full = torch.arange(100.0) / 50.0

    def model():
        with pyro.plate("data", 100, subsample_size=10) as idx:
            pyro.sample("x", dist.Normal(0.0, 1.0), obs=full[idx])
        return idx

    tr = poutine.trace(model).get_trace()
    idx = tr.nodes["_RETURN"]["value"]
    assert idx.shape == (10,) and len(set(idx.tolist())) == 10
    assert tr.nodes["x"]["scale"] == pytest.approx(10.0)
    expected = 10.0 * dist.Normal(0.0, 1.0).log_prob(full[idx]).sum()
    assert torch.allclose(tr.log_prob_sum(), expected)

    # explicit subsample indices, and pyro.subsample for data
    def model2():
        with pyro.plate("data", 100, subsample=torch.tensor([3, 7])) as ind:
            batch = pyro.subsample(full, event_dim=0)
            assert torch.equal(batch, full[ind])
            pyro.sample("x", dist.Normal(0.0, 1.0), obs=batch)

    tr = poutine.trace(model2).get_trace()
    assert tr.nodes["x"]["scale"] == pytest.approx(50.0)
    expected = 50.0 * dist.Normal(0.0, 1.0).log_prob(full[[3, 7]]).sum()
    assert torch.allclose(tr.log_prob_sum(), expected)


def test_subsampled_svi_gradient_is_unbiased_for_full_data():
    # with subsample_size == size the gradient equals the full-data gradient
    full = torch.tensor([1.0, 2.0, 3.0, 4.0])

    def model(sub):
        mu = pyro.param("mu", torch.tensor(0.0))
        with pyro.plate("data", 4, subsample_size=sub) as idx:
            pyro.sample("x", dist.Normal(mu, 1.0), obs=full[idx])

    def guide(sub):
        pass

    pyro.set_rng_seed(2)
    grads = []
    for _ in range(200):
        loss = Trace_ELBO().differentiable_loss(model, guide, 2)
        (g,) = torch.autograd.grad(loss, [pyro.param("mu").unconstrained()])
        grads.append(g)
    # exact full-data gradient at mu=0 is -sum(full) = -10; each estimate is
    # 2 * (-(x_i + x_j)), sd over pairs ~ 2.6
    mean_grad = torch.stack(grads).mean()
    assert abs(mean_grad.item() + 10.0) < 4 * 2.6 / math.sqrt(200)

    svi = SVI(model, guide, SGD({"lr": 0.05}), loss=Trace_ELBO())
    for _ in range(100):
        svi.step(4)
    assert pyro.param("mu").item() == pytest.approx(2.5, abs=1e-3)


def test_deprecated_iarange_and_irange_warn_but_work():
    from ember.util import _WARNED

    _WARNED.difference_update({"iarange", "irange"})  # warn once per process: forget earlier tests
    x = torch.tensor([0.0, 1.0, 2.0])

    def vectorized():
        with pyro.iarange("data", 3):
            pyro.sample("x", dist.Normal(0.0, 1.0), obs=x)

    def sequential():
        for i in pyro.irange("data", 3):
            pyro.sample(f"x_{i}", dist.Normal(0.0, 1.0), obs=x[i])

    with pytest.warns((DeprecationWarning, FutureWarning)):
        tr = poutine.trace(vectorized).get_trace()
    assert tr.nodes["x"]["cond_indep_stack"][0].name == "data"
    expected = dist.Normal(0.0, 1.0).log_prob(x).sum()
    assert torch.allclose(tr.log_prob_sum(), expected)

    with pytest.warns((DeprecationWarning, FutureWarning)):
        tr = poutine.trace(sequential).get_trace()
    assert [n for n in tr.nodes if n.startswith("x_")] == ["x_0", "x_1", "x_2"]
    assert torch.allclose(tr.log_prob_sum(), expected)


def test_sequential_plate_and_nested_vectorized_plates():
    def model():
        with pyro.plate("outer", 2, dim=-2):
            with pyro.plate("inner", 3):
                z = pyro.sample("z", dist.Normal(0.0, 1.0))
        for i in pyro.plate("seq", 2):
            pyro.sample(f"w_{i}", dist.Normal(z[i].sum(), 1.0))
        return z

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tr = poutine.trace(model).get_trace()
    assert tr.nodes["z"]["value"].shape == (2, 3)
    assert {f.name for f in tr.nodes["w_1"]["cond_indep_stack"]} == {"seq"}
    assert tr.nodes["w_1"]["cond_indep_stack"][0].vectorized is False


# --------------------------------------------------------------------------
# 9. user errors
# --------------------------------------------------------------------------


def test_shape_mismatch_inside_plate_names_site():
    def model():
        with pyro.plate("data", 3):
            pyro.sample("bad_site", dist.Normal(torch.zeros(4), 1.0))

    with pytest.raises(ValueError, match="bad_site"):
        poutine.trace(model).get_trace()


def test_observed_shape_mismatch_names_site():
    def model():
        with pyro.plate("data", 3):
            pyro.sample("obs_site", dist.Normal(0.0, 1.0), obs=torch.zeros(5))

    def guide():
        pass

    with pytest.raises(ValueError, match="obs_site"):
        Trace_ELBO().loss(model, guide)


def test_guide_missing_model_latent_is_reported():
    def model():
        pyro.sample("z_missing", dist.Normal(0.0, 1.0))
        pyro.sample("x", dist.Normal(0.0, 1.0), obs=torch.tensor(0.0))

    def guide():
        pass

    # Pyro warns and samples the site from the prior; raising a ValueError
    # that names the site is also accepted
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            Trace_ELBO().loss(model, guide)
            messages = []
        except ValueError as e:
            messages = [str(e)]
    messages += [str(w.message) for w in caught]
    assert any("z_missing" in m for m in messages), messages


def test_guide_extra_site_is_reported():
    def model():
        pyro.sample("x", dist.Normal(0.0, 1.0), obs=torch.tensor(0.0))

    def guide():
        pyro.sample("stray", dist.Normal(0.0, 1.0))

    with pytest.warns(UserWarning, match="stray"):
        Trace_ELBO().loss(model, guide)


def test_duplicate_site_names_raise():
    def model():
        pyro.sample("dup", dist.Normal(0.0, 1.0))
        pyro.sample("dup", dist.Normal(0.0, 1.0))

    with pytest.raises((RuntimeError, ValueError), match="dup"):
        poutine.trace(model).get_trace()


def test_invalid_distribution_parameter_raises():
    with pytest.raises(ValueError, match="scale"):
        dist.Normal(0.0, -1.0)
