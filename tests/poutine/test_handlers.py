"""Behaviour of each handler and of their nesting."""

import math
import queue as pyqueue

import pytest
import torch

import ember
import ember.distributions as dist
from ember import poutine
from ember.distributions import constraints
from ember.poutine.runtime import NonlocalExit


@pytest.fixture(autouse=True)
def _clean_store():
    ember.clear_param_store()
    yield
    ember.clear_param_store()


def two_site_model():
    a = ember.sample("a", dist.Normal(0.0, 1.0))
    b = ember.sample("b", dist.Normal(a, 1.0))
    return a, b


def normal_lp(x, loc=0.0, scale=1.0):
    return -0.5 * ((x - loc) / scale) ** 2 - math.log(scale) - 0.5 * math.log(2 * math.pi)


# ----------------------------------------------------------------- trace
def test_trace_records_sites_in_order_with_message_keys():
    tr = poutine.trace(two_site_model).get_trace()
    assert list(tr.nodes) == ["_INPUT", "a", "b", "_RETURN"]
    site = tr.nodes["a"]
    for key in (
        "type",
        "name",
        "fn",
        "is_observed",
        "args",
        "kwargs",
        "value",
        "infer",
        "scale",
        "mask",
        "cond_indep_stack",
        "done",
        "stop",
        "continuation",
    ):
        assert key in site
    a, b = tr.nodes["_RETURN"]["value"]
    assert a is site["value"] and b is tr.nodes["b"]["value"]


def test_trace_log_prob_matches_closed_form():
    tr = poutine.trace(two_site_model).get_trace()
    a = float(tr.nodes["a"]["value"])
    b = float(tr.nodes["b"]["value"])
    expected = normal_lp(a) + normal_lp(b, a)
    assert float(tr.log_prob_sum()) == pytest.approx(expected, abs=1e-5)


def test_trace_param_only():
    def model():
        ember.param("p", torch.ones(2))
        ember.sample("x", dist.Normal(0.0, 1.0))

    tr = poutine.trace(model, param_only=True).get_trace()
    assert list(tr.nodes) == ["p"]  # as in Pyro: no sample sites, no _INPUT/_RETURN


def test_trace_adds_shapes_to_errors():
    def model():
        ember.sample("x", dist.Normal(torch.zeros(2), 1.0))
        raise ValueError("bad thing")

    with pytest.raises(ValueError, match=r"(?s)bad thing.*Trace Shapes.*x\s+sample\s+\(2,\)"):
        poutine.trace(model).get_trace()


# ----------------------------------------------------------------- block
def test_block_hides_a_but_not_b_seed_example():
    trace_inner = poutine.trace(two_site_model).get_trace()
    trace_outer = poutine.trace(
        poutine.block(poutine.trace(two_site_model), hide=["a"])
    ).get_trace()
    assert "a" in trace_inner and "a" not in trace_outer
    assert "b" in trace_inner and "b" in trace_outer


@pytest.mark.parametrize(
    "kwargs, visible",
    [
        ({}, []),
        ({"expose": ["a"]}, ["a"]),
        ({"hide": ["a"]}, ["b", "p"]),
        ({"expose_all": True}, ["a", "b", "p"]),
        ({"hide_types": ["param"]}, ["a", "b"]),
        ({"expose_types": ["param"]}, ["p"]),
        ({"hide_fn": lambda msg: msg["name"] == "b"}, ["a", "p"]),
        ({"expose_fn": lambda msg: msg["name"] == "b"}, ["b"]),
    ],
)
def test_block_selectors(kwargs, visible):
    def model():
        a = ember.sample("a", dist.Normal(0.0, 1.0))
        ember.sample("b", dist.Normal(a, 1.0))
        ember.param("p", torch.zeros(1))

    tr = poutine.trace(poutine.block(model, **kwargs)).get_trace()
    assert sorted(n for n in tr.nodes if not n.startswith("_")) == visible


def test_block_rejects_conflicting_arguments():
    with pytest.raises(ValueError, match="both hidden and exposed"):
        poutine.block(hide=["a"], expose=["a"])
    with pytest.raises(ValueError, match="only one"):
        poutine.block(hide_fn=lambda m: True, expose_fn=lambda m: True)
    with pytest.raises(TypeError, match="list of site names"):
        poutine.block(hide="a")


# ---------------------------------------------------- condition & friends
def test_condition_observes_and_scores_the_value():
    data = {"a": torch.tensor(0.5)}
    tr = poutine.trace(poutine.condition(two_site_model, data=data)).get_trace()
    assert tr.nodes["a"]["is_observed"] and tr.nodes["a"]["value"] is data["a"]
    assert tr.observation_nodes == ["a"] and tr.stochastic_nodes == ["b"]
    b = float(tr.nodes["b"]["value"])
    assert float(tr.log_prob_sum()) == pytest.approx(normal_lp(0.5) + normal_lp(b, 0.5), abs=1e-5)


def test_condition_on_a_trace():
    old = poutine.trace(two_site_model).get_trace()
    tr = poutine.trace(poutine.condition(two_site_model, data=old)).get_trace()
    assert tr.observation_nodes == ["a", "b"]
    assert tr.nodes["b"]["value"] is old.nodes["b"]["value"]


def test_uncondition_samples_observed_sites():
    ember.set_rng_seed(0)

    def model():
        return ember.sample("x", dist.Normal(0.0, 1.0), obs=torch.tensor(100.0))

    tr = poutine.trace(poutine.uncondition(model)).get_trace()
    site = tr.nodes["x"]
    assert not site["is_observed"] and float(site["value"]) < 10
    assert site["infer"]["was_observed"] and float(site["infer"]["obs"]) == 100.0


def test_do_intervenes_and_keeps_the_sampled_site():
    ember.set_rng_seed(0)

    def model():
        z = ember.sample("z", dist.Normal(0.0, 1.0))
        return ember.sample("y", dist.Normal(z, 0.01))

    tr = poutine.trace(poutine.do(model, data={"z": torch.tensor(50.0)})).get_trace()
    assert abs(float(tr.nodes["y"]["value"]) - 50.0) < 0.1
    assert abs(float(tr.nodes["z"]["value"])) < 10  # z itself is still sampled
    assert "z__CF" not in tr.nodes
    with pytest.raises(TypeError):
        poutine.do(model, data={"z": "no"})()


# ----------------------------------------------------------------- replay
def test_replay_from_trace_and_params():
    guide_tr = poutine.trace(two_site_model).get_trace()
    tr = poutine.trace(poutine.replay(two_site_model, trace=guide_tr)).get_trace()
    for name in ("a", "b"):
        assert tr.nodes[name]["value"] is guide_tr.nodes[name]["value"]

    def pmodel():
        return ember.param("w", torch.zeros(2))

    fixed = torch.ones(2)
    assert poutine.replay(pmodel, params={"w": fixed})() is fixed


def test_replay_partial_trace_samples_missing_sites():
    partial = poutine.trace(lambda: ember.sample("a", dist.Normal(0.0, 1.0))).get_trace()
    tr = poutine.trace(poutine.replay(two_site_model, trace=partial)).get_trace()
    assert tr.nodes["a"]["value"] is partial.nodes["a"]["value"]
    assert "b" in tr.nodes


def test_replay_rejects_observed_site_in_trace():
    observed = poutine.trace(
        poutine.condition(two_site_model, data={"a": torch.tensor(0.0)})
    ).get_trace()
    with pytest.raises(RuntimeError, match="'a'"):
        poutine.replay(two_site_model, trace=observed)()
    with pytest.raises(ValueError):
        poutine.replay(two_site_model, trace=observed)()


# ----------------------------------------------------------- substitute, lift
def test_substitute_params_only():
    def model():
        w = ember.param("w", torch.zeros(2))
        v = ember.param("v", torch.zeros(2))
        return w, v, ember.sample("x", dist.Normal(0.0, 1.0))

    w, v, _ = poutine.substitute(model, data={"w": torch.ones(2)})()
    assert torch.equal(w, torch.ones(2)) and torch.equal(v, torch.zeros(2))
    w, v, _ = poutine.substitute(model, substitute_fn=lambda msg: torch.full((2,), 3.0))()
    assert torch.equal(v, torch.full((2,), 3.0))


def test_lift_with_distribution_dict_and_callable():
    def model():
        a = ember.param("a", torch.tensor(0.0))
        b = ember.param("b", torch.tensor(0.0))
        return a, b, ember.param("a")

    ember.set_rng_seed(0)
    tr = poutine.trace(poutine.lift(model, prior={"a": dist.Normal(10.0, 0.1)})).get_trace()
    assert tr.nodes["a"]["type"] == "sample" and tr.nodes["b"]["type"] == "param"
    a1, b, a2 = tr.nodes["_RETURN"]["value"]
    assert a1 is a2 and abs(float(a1) - 10.0) < 1.0
    assert float(tr.log_prob_sum()) == pytest.approx(normal_lp(float(a1), 10.0, 0.1), abs=1e-4)
    # a stochastic function as prior
    lifted = poutine.lift(
        lambda: ember.param("c", torch.zeros(())), prior=lambda *args, **kwargs: torch.tensor(7.0)
    )
    assert float(lifted()) == 7.0


# ------------------------------------------------------------ scale, mask
def test_scale_multiplies_log_prob_and_nests():
    def model():
        ember.sample("x", dist.Normal(0.0, 1.0), obs=torch.tensor(1.0))

    tr = poutine.trace(poutine.scale(poutine.scale(model, scale=2.0), scale=3.0)).get_trace()
    assert tr.nodes["x"]["scale"] == 6.0
    assert float(tr.log_prob_sum()) == pytest.approx(6.0 * normal_lp(1.0), abs=1e-5)
    with pytest.raises(ValueError, match="> 0"):
        poutine.scale(model, scale=-1.0)
    with pytest.raises(ValueError, match="mask"):
        poutine.scale(model, scale=torch.tensor([1.0, 0.0]))


def test_mask_combines_and_zeroes_log_prob():
    def model():
        with ember.plate("d", 3):
            ember.sample("x", dist.Normal(0.0, 1.0), obs=torch.tensor([0.0, 1.0, 2.0]))

    m1 = torch.tensor([True, True, False])
    m2 = torch.tensor([False, True, True])
    tr = poutine.trace(poutine.mask(poutine.mask(model, mask=m1), mask=m2)).get_trace()
    tr.compute_log_prob()
    lp = tr.nodes["x"]["log_prob"]
    assert lp[0] == 0 and lp[2] == 0 and float(lp[1]) == pytest.approx(normal_lp(1.0), abs=1e-6)
    with pytest.raises(ValueError, match="bool"):
        poutine.mask(model, mask=torch.ones(3))
    with pytest.raises(TypeError):
        poutine.mask(model, mask=1)


# ------------------------------------------------------ seed, infer_config
def test_seed_reproduces_and_restores_rng():
    torch.manual_seed(123)
    expected_next = torch.rand(1)
    torch.manual_seed(123)
    a = poutine.seed(two_site_model, rng_seed=7)()
    b = poutine.seed(two_site_model, rng_seed=7)()
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert torch.equal(torch.rand(1), expected_next)  # outer RNG stream untouched


def test_infer_config():
    def model():
        ember.sample("x", dist.Bernoulli(0.5))
        ember.sample("y", dist.Normal(0.0, 1.0))

    def cfg(msg):
        return {"enumerate": "parallel"} if msg["name"] == "x" else {}

    tr = poutine.trace(poutine.infer_config(model, config_fn=cfg)).get_trace()
    assert tr.nodes["x"]["infer"] == {"enumerate": "parallel"}
    assert tr.nodes["y"]["infer"] == {}


def test_infer_dict_of_caller_is_not_mutated():
    infer = {"foo": 1}

    def model():
        ember.sample("x", dist.Normal(0.0, 1.0), infer=infer)

    poutine.trace(poutine.infer_config(model, config_fn=lambda m: {"bar": 2})).get_trace()
    assert infer == {"foo": 1}


# ---------------------------------------------------------- escape, queue
def test_escape_raises_nonlocal_exit_with_site():
    with pytest.raises(NonlocalExit) as info:
        poutine.escape(two_site_model, escape_fn=lambda msg: msg["name"] == "b")()
    assert info.value.site["name"] == "b"
    assert ember.poutine.runtime.get_stack() == ()


def test_queue_enumerates_every_execution():
    def model():
        a = ember.sample("a", dist.Bernoulli(0.3))
        b = ember.sample("b", dist.Bernoulli(0.6))
        return int(a), int(b)

    q = pyqueue.Queue()
    q.put(poutine.Trace())
    runner = poutine.trace(poutine.queue(model, queue=q))
    results = {}
    while not q.empty():
        tr = runner.get_trace()
        results[tr.nodes["_RETURN"]["value"]] = math.exp(float(tr.log_prob_sum()))
    expected = {(a, b): (0.3 if a else 0.7) * (0.6 if b else 0.4) for a in (0, 1) for b in (0, 1)}
    assert results.keys() == expected.keys()
    for key, p in expected.items():
        assert results[key] == pytest.approx(p, rel=1e-6)


def test_queue_empty_and_max_tries():
    q = pyqueue.Queue()
    with pytest.raises(ValueError, match="empty"):
        poutine.queue(two_site_model, queue=q)()

    def model():
        return ember.sample("a", dist.Bernoulli(0.5))

    q.put(poutine.Trace())
    with pytest.raises(ValueError, match="max tries"):
        poutine.queue(model, queue=q, max_tries=1)()


# -------------------------------------------------------------- nesting
def test_nested_trace_replay_block_condition():
    ember.set_rng_seed(1)

    def model():
        a = ember.sample("a", dist.Normal(0.0, 1.0))
        b = ember.sample("b", dist.Normal(a, 1.0))
        c = ember.sample("c", dist.Normal(b, 1.0))
        return a, b, c

    guide_tr = poutine.trace(model).get_trace()
    conditioned = poutine.condition(model, data={"c": torch.tensor(2.0)})
    blocked = poutine.block(conditioned, hide=["b"])
    replayed = poutine.replay(blocked, trace=guide_tr)
    tr = poutine.trace(replayed).get_trace()
    assert "b" not in tr.nodes
    assert tr.nodes["c"]["is_observed"] and float(tr.nodes["c"]["value"]) == 2.0
    # a is replayed from the guide trace; b is hidden from replay too (blocked inside)
    assert tr.nodes["a"]["value"] is guide_tr.nodes["a"]["value"]
    a, b, c = tr.nodes["_RETURN"]["value"]
    assert b is not guide_tr.nodes["b"]["value"]


def test_replay_outside_block_still_replays_hidden_site_order():
    guide_tr = poutine.trace(two_site_model).get_trace()
    # replay inside block: hidden from the outer trace, but its value still replayed
    tr = poutine.trace(
        poutine.block(poutine.replay(two_site_model, trace=guide_tr), hide=["a"])
    ).get_trace()
    assert "a" not in tr.nodes
    assert float(tr.nodes["_RETURN"]["value"][0]) == float(guide_tr.nodes["a"]["value"])


def test_scale_and_plate_and_mask_compose_in_log_prob():
    data = torch.tensor([0.0, 1.0, 2.0, 3.0])

    def model():
        loc = ember.param("loc", torch.tensor(0.5))
        with ember.plate("data", 4):
            ember.sample("x", dist.Normal(loc, 2.0), obs=data)

    m = torch.tensor([True, False, True, True])
    tr = poutine.trace(poutine.scale(poutine.mask(model, mask=m), scale=0.5)).get_trace()
    expected = 0.5 * sum(normal_lp(float(x), 0.5, 2.0) for x, k in zip(data, m) if k)
    assert tr.log_prob_sum().item() == pytest.approx(expected, abs=1e-5)


def test_constrained_param_through_handlers():
    def model():
        return ember.param("s", torch.tensor(2.0), constraint=constraints.positive)

    tr = poutine.trace(model).get_trace()
    s = tr.nodes["s"]["value"]
    assert s.item() == pytest.approx(2.0)
    assert s.unconstrained() is ember.get_param_store()._params["s"]


def test_trace_param_only_records_params_only():
    def model():
        ember.param("p", torch.ones(2))
        ember.sample("x", dist.Normal(0.0, 1.0))
        return 3

    traced = poutine.trace(model, param_only=True)
    assert traced() == 3
    assert list(traced.trace.nodes) == ["p"]
    with poutine.trace(param_only=True) as tracer:
        model()
    assert list(tracer.trace.nodes) == ["p"]


def test_an_escape_keeps_the_inputs_of_the_outer_trace():
    def model(k):
        ember.sample("a", dist.Bernoulli(0.5))
        ember.sample("b", dist.Bernoulli(0.5))
        return k

    q = pyqueue.Queue()
    q.put(poutine.Trace())
    traced = poutine.trace(poutine.queue(model, queue=q))
    assert traced(7) == 7
    tr = traced.trace
    assert list(tr.nodes) == ["_INPUT", "a", "b", "_RETURN"]
    assert tr.nodes["_INPUT"]["args"] == (7,)


def test_block_with_empty_lists_follows_pyro():
    def model():
        ember.sample("a", dist.Normal(0.0, 1.0))
        ember.param("p", torch.zeros(1))

    def visible(**kwargs):
        tr = poutine.trace(poutine.block(model, **kwargs)).get_trace()
        return sorted(n for n in tr.nodes if not n.startswith("_"))

    assert visible(hide=[]) == ["a", "p"]
    assert visible(hide_types=[]) == ["a", "p"]
    assert visible(expose=[]) == []
    assert visible(expose_all=True) == ["a", "p"]
    with pytest.raises(AssertionError, match="cannot hide and expose"):  # Pyro's error type
        poutine.block(hide=["a"], expose=["a"])
    with pytest.raises(TypeError, match="list of site types"):
        poutine.block(hide_types="param")
