"""ember.infer.util: plate-aware cost sums, plate depth, and the model/guide checks."""

import math
import warnings

import pytest
import torch

import ember
import ember.distributions as dist
from ember import poutine
from ember.infer import SVI, Trace_ELBO, TraceGraph_ELBO, TraceMeanField_ELBO
from ember.infer.util import (
    MultiFrameTensor,
    check_site_shape,
    get_plate_stacks,
    guess_max_plate_nesting,
    log_mean_exp,
    plate_depth,
    torch_backward,
    torch_exp,
)
from ember.optim import Adam


def grid_model():
    cols = ember.plate("cols", 4, dim=-1)
    with ember.plate("rows", 3, dim=-2):
        ember.sample("r", dist.Normal(torch.zeros(3, 1), 1.0))
        with cols:
            ember.sample("rc", dist.Normal(0.0, 1.0))
    with cols:
        ember.sample("c", dist.Normal(0.0, 1.0))
    ember.sample("g", dist.Normal(0.0, 1.0))


def test_multi_frame_tensor_sums_to_each_plate_set():
    ember.set_rng_seed(0)
    tr = poutine.trace(grid_model).get_trace()
    tr.compute_log_prob()
    costs = MultiFrameTensor()
    for name in ("r", "rc", "c", "g"):
        site = tr.nodes[name]
        costs.add((site["cond_indep_stack"], site["log_prob"]))
    lp = {name: tr.nodes[name]["log_prob"] for name in ("r", "rc", "c", "g")}
    total = sum(v.sum() for v in lp.values())
    torch.testing.assert_close(costs.sum_to(tr.nodes["g"]["cond_indep_stack"]), total)
    # one value per row: the row's own terms plus every term outside "rows"
    per_row = lp["r"] + lp["rc"].sum(-1, keepdim=True) + lp["c"].sum() + lp["g"]
    torch.testing.assert_close(costs.sum_to(tr.nodes["r"]["cond_indep_stack"]), per_row)
    per_col = lp["c"] + lp["rc"].sum(-2) + lp["r"].sum() + lp["g"]
    torch.testing.assert_close(costs.sum_to(tr.nodes["c"]["cond_indep_stack"]), per_col)
    per_cell = lp["rc"] + lp["r"] + lp["c"] + lp["g"]
    torch.testing.assert_close(costs.sum_to(tr.nodes["rc"]["cond_indep_stack"]), per_cell)
    assert MultiFrameTensor().sum_to(()) == 0.0


def test_plate_depth_stacks_and_guess():
    tr = poutine.trace(grid_model).get_trace()
    assert plate_depth(tr.nodes.values()) == 2
    assert plate_depth(tr.nodes.values(), exclude="rows") == 1
    assert plate_depth([tr.nodes["g"]]) == 0
    stacks = get_plate_stacks(tr)
    assert sorted(f.name for f in stacks["rc"]) == ["cols", "rows"]
    assert stacks["g"] == []
    assert guess_max_plate_nesting(grid_model, None, (), {}) == 2

    def guide():
        with ember.plate("deep", 2, dim=-4):
            ember.sample("g", dist.Normal(torch.zeros(2, 1, 1, 1), 1.0))

    assert guess_max_plate_nesting(grid_model, guide, (), {}) == 4


def _site(log_prob, *frames):
    from ember.poutine.runtime import CondIndepStackFrame

    stack = tuple(CondIndepStackFrame(name, d, size, 0, size) for name, d, size in frames)
    return {"name": "x", "log_prob": log_prob, "cond_indep_stack": stack}


def test_check_site_shape():
    # a dim a plate owns must have its size (or 1)
    check_site_shape(_site(torch.zeros(5), ("p", -1, 5)), 1)
    check_site_shape(_site(torch.zeros(1), ("p", -1, 5)), 1)
    with pytest.raises(ValueError, match="invalid log_prob shape.*plate there has size 5"):
        check_site_shape(_site(torch.zeros(4), ("p", -1, 5)), 1)
    # a dim right of the deepest plate that no plate owns is the user's business
    check_site_shape(_site(torch.zeros(5, 2), ("p", -2, 5)), 2)
    # a dim left of every plate is not
    with pytest.raises(ValueError, match="'x', invalid log_prob shape.*no plate in scope owns"):
        check_site_shape(_site(torch.zeros(3, 5), ("p", -1, 5)), math.inf)
    # ... unless it lies left of max_plate_nesting (particles, enumeration)
    check_site_shape(_site(torch.zeros(3, 5), ("p", -1, 5)), 1)
    # a plate of unknown size (-1) accepts any size
    check_site_shape(_site(torch.zeros(7), ("p", -1, -1)), 1)
    with pytest.raises(ValueError, match="plate stack overflow.*max_plate_nesting=1"):
        check_site_shape(_site(torch.zeros(2, 5), ("q", -2, 2), ("p", -1, 5)), 1)
    with pytest.raises(ValueError, match="collide at dim=-1"):
        check_site_shape(_site(torch.zeros(5), ("q", -1, 5), ("p", -1, 5)), 1)


def test_model_and_guide_event_dims_and_shapes_must_agree():
    def model():
        ember.sample("x", dist.Normal(torch.zeros(2), 1.0).to_event(1))

    def wrong_event_dim():
        ember.sample("x", dist.Normal(torch.zeros(2, 1), 1.0).to_event(2))

    def wrong_shape():
        ember.sample("x", dist.Normal(torch.zeros(3), 1.0).to_event(1))

    with pytest.raises(ValueError, match="Model and guide event_dims disagree at site 'x'"):
        Trace_ELBO().loss(model, wrong_event_dim)
    with pytest.raises(ValueError, match=r"Model and guide shapes disagree at site 'x'"):
        Trace_ELBO().loss(model, wrong_shape)


def test_shapes_may_broadcast_left_of_max_plate_nesting():
    def model():
        ember.sample("z", dist.Normal(0.0, 1.0))

    def guide():  # a batch dim left of max_plate_nesting=0: broadcasts
        ember.sample("z", dist.Normal(torch.zeros(3), 1.0))

    Trace_ELBO(max_plate_nesting=0).loss(model, guide)
    with pytest.raises(ValueError, match="Model and guide shapes disagree"):
        Trace_ELBO(max_plate_nesting=1).loss(model, guide)


def test_plate_in_guide_but_not_model_warns_only_with_validation():
    def model():
        ember.sample("x", dist.Bernoulli(0.5))

    def guide():
        for _ in ember.plate("extra", 4, subsample_size=2):
            pass
        ember.sample("x", dist.Bernoulli(0.5))

    with pytest.warns(UserWarning, match="Found plate statements in guide but not model"):
        Trace_ELBO().loss(model, guide)
    with ember.validation_enabled(False), warnings.catch_warnings():
        warnings.simplefilter("error")
        Trace_ELBO().loss(model, guide)


@pytest.mark.parametrize("elbo_cls", [Trace_ELBO, TraceGraph_ELBO, TraceMeanField_ELBO])
def test_a_factor_in_a_guide_must_say_whether_it_is_reparameterized(elbo_cls):
    def guide(has_rsample):
        ember.factor("f", torch.tensor(-1.0), has_rsample=has_rsample)

    elbo = elbo_cls()
    with pytest.raises(ValueError, match="'f'.*missing specification of has_rsample"):
        elbo.loss(lambda has_rsample: None, guide, None)
    for has_rsample in (False, True):  # the guide factor enters the loss with its sign
        assert elbo.loss(lambda has_rsample: None, guide, has_rsample) == -1.0


def test_auxiliary_guide_site_the_model_samples_warns():
    def model():
        ember.sample("x", dist.Normal(0.0, 1.0))

    def guide():
        ember.sample("x", dist.Normal(0.0, 1.0), infer={"is_auxiliary": True})

    with pytest.warns(UserWarning, match="Found auxiliary vars in the model"):
        Trace_ELBO().loss(model, guide)


@pytest.mark.parametrize("elbo_cls", [Trace_ELBO, TraceGraph_ELBO])
@pytest.mark.parametrize("enumerate_", ["sequential", "parallel"])
def test_sites_configured_for_enumeration_warn_outside_traceenum(elbo_cls, enumerate_):
    def model():
        ember.sample("x", dist.Bernoulli(0.5))

    def guide():
        p = ember.param("p_enum_warn", torch.tensor(0.5))
        ember.sample("x", dist.Bernoulli(p), infer={"enumerate": enumerate_})

    ember.clear_param_store()
    svi = SVI(model, guide, Adam({"lr": 1e-6}), elbo_cls(max_plate_nesting=0))
    with pytest.warns(UserWarning, match="configured for enumeration: x"):
        svi.step()


def test_mean_field_order_warning():
    def model():
        x = ember.sample("x", dist.Normal(0.0, 1.0))
        ember.sample("y", dist.Normal(x, 1.0))

    def guide():
        y = ember.sample("y", dist.Normal(0.0, 1.0))
        ember.sample("x", dist.Normal(y, 1.0))

    with pytest.warns(UserWarning, match="Failed to verify mean field restriction"):
        TraceMeanField_ELBO().loss(model, guide)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        TraceMeanField_ELBO().loss(model, lambda: guide_in_order())


def guide_in_order():
    x = ember.sample("x", dist.Normal(0.0, 1.0))
    ember.sample("y", dist.Normal(x, 1.0))


def test_small_tensor_helpers():
    assert torch_exp(0.0) == 1.0
    torch.testing.assert_close(torch_exp(torch.tensor([0.0, 1.0])), torch.tensor([1.0, math.e]))
    p = torch.tensor(3.0, requires_grad=True)
    torch_backward(p**2)
    assert p.grad.item() == 6.0
    torch_backward(2.0)  # a number: nothing to do
    torch.testing.assert_close(
        log_mean_exp(torch.tensor([math.log(1.0), math.log(2.0), math.log(6.0)])),
        torch.tensor(math.log(3.0)),
    )
