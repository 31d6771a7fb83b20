"""The runtime's fast paths behave exactly like the general code they shortcut."""

import math

import pytest
import torch

import ember
import ember.distributions as dist
from ember import poutine
from ember.poutine.messenger import Messenger
from ember.poutine.replay_messenger import ReplayMessenger
from ember.poutine.runtime import DIM_ALLOCATOR
from ember.poutine.trace_messenger import TraceMessenger, trace_run


@pytest.fixture(autouse=True)
def _validation_on():
    ember.enable_validation(True)
    yield
    ember.enable_validation(True)


def test_observed_value_checked_when_distribution_already_has_plate_shape():
    def model(obs):
        with ember.plate("data", 5):
            ember.sample("y", dist.Normal(torch.zeros(5), 1.0), obs=obs)

    poutine.trace(model).get_trace(torch.zeros(5))  # exact shape: fine
    poutine.trace(model).get_trace(torch.zeros(1))  # size 1 broadcasts: fine
    with pytest.raises(ValueError) as info:
        poutine.trace(model).get_trace(torch.zeros(4))
    msg = str(info.value)
    assert "'y'" in msg and "(4,)" in msg and "plate('data', size=5, dim=-1)" in msg
    ember.enable_validation(False)
    poutine.trace(model).get_trace(torch.zeros(4))  # unchecked with validation off


def test_trace_run_equals_trace_of_replay():
    def guide(x, unused=None):
        ember.sample("z", dist.Normal(0.0, 1.0))

    def model(x, unused=None):
        z = ember.sample("z", dist.Normal(0.0, 1.0))
        ember.sample("x", dist.Normal(z, 1.0), obs=x)
        return z

    x = torch.tensor(0.5)
    guide_trace = trace_run(guide, (x,), {})
    assert list(guide_trace.nodes) == ["_INPUT", "z", "_RETURN"]
    fast = trace_run(model, (x,), {"unused": None}, None, ReplayMessenger(trace=guide_trace))
    slow = poutine.trace(poutine.replay(model, trace=guide_trace)).get_trace(x, unused=None)
    assert list(fast.nodes) == list(slow.nodes)
    assert fast.nodes["_INPUT"]["args"] == (x,)
    assert fast.nodes["_INPUT"]["kwargs"] == {"unused": None}
    assert fast.nodes["z"]["value"] is guide_trace.nodes["z"]["value"]
    assert fast.nodes["_RETURN"]["value"] is guide_trace.nodes["z"]["value"]


def test_trace_messenger_gives_a_new_trace_per_run():
    tracer = TraceMessenger()
    with tracer:
        ember.sample("a", dist.Normal(0.0, 1.0))
    first = tracer.trace
    with tracer:
        ember.sample("b", dist.Normal(0.0, 1.0))
    assert list(first.nodes) == ["a"]
    assert list(tracer.trace.nodes) == ["b"]
    traced = poutine.trace(lambda: ember.sample("c", dist.Normal(0.0, 1.0)))
    assert traced.get_trace() is not traced.get_trace()


def test_scaled_reparameterized_site_scales_log_prob_once():
    def guide():
        with ember.plate("data", 10, subsample_size=2):
            ember.sample("z", dist.Normal(torch.zeros(2), 1.0))
        ember.sample("g", dist.Normal(0.0, 1.0))

    tr = poutine.trace(guide).get_trace()
    tr.compute_score_parts()
    site = tr.nodes["z"]
    lp, sf, ent = site["score_parts"]
    assert ent is lp and sf == 0
    expected = -0.5 * site["value"] ** 2 - 0.5 * math.log(2 * math.pi)
    torch.testing.assert_close(site["unscaled_log_prob"], expected)
    torch.testing.assert_close(lp, 5.0 * expected)
    torch.testing.assert_close(site["log_prob_sum"], 5.0 * expected.sum())
    # a scalar site is its own sum
    g = tr.nodes["g"]
    assert g["log_prob_sum"] is g["log_prob"]
    torch.testing.assert_close(tr.log_prob_sum(), lp.sum() + g["log_prob"])


def test_log_prob_sum_with_a_filter_and_tensor_scale():
    def model():
        with poutine.scale(scale=torch.tensor(3.0)):
            ember.sample("a", dist.Normal(0.0, 1.0), obs=torch.tensor(0.0))
        ember.sample("b", dist.Normal(0.0, 1.0), obs=torch.tensor(0.0))

    tr = poutine.trace(model).get_trace()
    half_log_2pi = 0.5 * math.log(2 * math.pi)
    only_a = tr.log_prob_sum(lambda name, site: name == "a")
    torch.testing.assert_close(only_a, torch.tensor(-3.0 * half_log_2pi))
    torch.testing.assert_close(tr.log_prob_sum(), torch.tensor(-4.0 * half_log_2pi))


def test_dim_allocator_fills_the_lowest_free_dim():
    assert DIM_ALLOCATOR.names() == {}
    with ember.plate("b", 2, dim=-2):
        with ember.plate("a", 3) as a_idx:
            with ember.plate("c", 4):
                assert DIM_ALLOCATOR.names() == {-1: "a", -2: "b", -3: "c"}
                x = ember.sample("x", dist.Normal(0.0, 1.0))
        assert DIM_ALLOCATOR.names() == {-2: "b"}
        assert a_idx.tolist() == [0, 1, 2]
    assert DIM_ALLOCATOR.names() == {}
    assert x.shape == (4, 2, 3)


def test_message_arriving_stopped_is_seen_by_the_innermost_handler_only():
    from ember.poutine.runtime import apply_stack, new_message

    seen = []

    class Spy(Messenger):
        def __init__(self, label):
            self.label = label

        def _pyro_sample(self, msg):
            seen.append(self.label)

    msg = new_message("sample", "s", lambda: torch.tensor(2.0))
    msg["stop"] = True
    with Spy("outer"), Spy("inner"):
        apply_stack(msg)
    assert seen == ["inner"]
    assert msg["value"] == 2.0
