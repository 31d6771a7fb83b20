"""The handler stack, messages, hook resolution, effectful primitives, thread isolation."""

import contextvars
import threading

import pytest
import torch

import ember
import ember.distributions as dist
from ember import poutine
from ember.poutine.messenger import Messenger
from ember.poutine.runtime import (
    NonlocalExit,
    am_i_wrapped,
    apply_stack,
    effectful,
    get_stack,
    new_message,
)


class Recorder(Messenger):
    """Logs (tag, phase, name) for every message it sees."""

    def __init__(self, tag, log):
        super().__init__()
        self.tag = tag
        self.log = log

    def _process_message(self, msg):
        self.log.append((self.tag, "process", msg["name"]))

    def _postprocess_message(self, msg):
        self.log.append((self.tag, "post", msg["name"]))


def test_no_handler_fast_path_draws_from_distribution():
    ember.set_rng_seed(0)
    a = ember.sample("x", dist.Normal(torch.zeros(3), 1.0))
    ember.set_rng_seed(0)
    b = dist.Normal(torch.zeros(3), 1.0).rsample()
    assert torch.equal(a, b)
    assert not am_i_wrapped()
    assert get_stack() == ()


def test_process_order_inner_first_and_postprocess_outer_first():
    log = []
    with Recorder("outer", log), Recorder("inner", log):
        ember.sample("x", dist.Normal(0.0, 1.0))
    assert log == [
        ("inner", "process", "x"),
        ("outer", "process", "x"),
        ("outer", "post", "x"),
        ("inner", "post", "x"),
    ]


def test_stop_hides_message_from_outer_handlers():
    log = []

    class Stopper(Messenger):
        def _pyro_sample(self, msg):
            msg["stop"] = True

    with Recorder("outer", log), Stopper(), Recorder("inner", log):
        ember.sample("x", dist.Normal(0.0, 1.0))
    assert ("outer", "process", "x") not in log
    assert ("outer", "post", "x") not in log
    assert ("inner", "post", "x") in log


def test_hooks_resolved_per_class_and_by_message_type():
    seen = []

    class OnlyParams(Messenger):
        def _pyro_param(self, msg):
            seen.append(msg["name"])

    with OnlyParams():
        ember.sample("x", dist.Normal(0.0, 1.0))
        ember.param("p", torch.zeros(1))
    assert seen == ["p"]
    # resolved hooks are cached on the class, one entry per message type
    assert OnlyParams._process_hooks["sample"] is None
    assert OnlyParams._process_hooks["param"] is OnlyParams._pyro_param
    # a sibling class has its own table
    assert "param" not in Recorder._process_hooks or Recorder._process_hooks["param"] is (
        Recorder._process_message
    )


def test_register_adds_hook_after_resolution():
    class Late(Messenger):
        pass

    with Late():
        ember.sample("x", dist.Normal(0.0, 1.0))
    calls = []
    Late.register(lambda self, msg: calls.append(msg["name"]), type="sample")
    with Late():
        ember.sample("y", dist.Normal(0.0, 1.0))
    assert calls == ["y"]
    Late.unregister(type="sample")
    with Late():
        ember.sample("z", dist.Normal(0.0, 1.0))
    assert calls == ["y"]


def test_messenger_as_decorator_and_context_manager():
    log = []
    rec = Recorder("r", log)

    @rec
    def model():
        return ember.sample("x", dist.Normal(0.0, 1.0))

    model()
    assert [e[1] for e in log] == ["process", "post"]
    assert get_stack() == ()
    with pytest.raises(ValueError, match="callable"):
        rec(3)


def test_exception_unwinds_the_stack():
    def bad():
        ember.sample("x", dist.Normal(0.0, 1.0))
        raise KeyError("boom")

    with pytest.raises(KeyError):
        poutine.trace(poutine.block(bad)).get_trace()
    assert get_stack() == ()


def test_effectful_message_passes_through_stack():
    add = effectful(lambda a, b: a + b, type="add")
    assert add(1, 2, name="s") == 3
    with poutine.trace() as tr:
        assert add(1, 2, name="s") == 3
        assert add(1, 2, name="t", obs=10) == 10
    assert tr.trace.nodes["s"]["type"] == "add"
    assert tr.trace.nodes["t"]["is_observed"]
    with pytest.raises(TypeError):
        effectful(lambda: None)


def test_apply_stack_continuation_and_done():
    msg = new_message("sample", "x", lambda: torch.tensor(5.0))
    calls = []
    msg["continuation"] = lambda m: calls.append(m["value"])
    apply_stack(msg)
    assert msg["done"] and calls == [torch.tensor(5.0)]
    msg = new_message("sample", "x", lambda: 1 / 0, value=torch.tensor(2.0))
    apply_stack(msg)  # a value is set: fn is not called
    assert msg["value"] == 2.0


def test_nonlocal_exit_reset_stack_stops_at_hiding_block():
    resets = []

    class Resettable(Messenger):
        def __init__(self, tag):
            super().__init__()
            self.tag = tag

        def _reset(self):
            resets.append(self.tag)

    with Resettable("outside"), poutine.block(hide=["z"]), Resettable("inside"):
        NonlocalExit({"name": "z", "type": "sample"}).reset_stack()
    assert resets == ["inside"]


def test_reset_stack_stops_at_any_handler_that_hides_the_site():
    resets = []

    class Hider(Messenger):
        """Hides sites named "z" without being a BlockMessenger."""

        def hides(self, msg):
            return msg["name"] == "z"

        def _process_message(self, msg):
            msg["stop"] = self.hides(msg)

        def _reset(self):
            resets.append("hider")

    class Resettable(Messenger):
        def __init__(self, tag):
            super().__init__()
            self.tag = tag

        def _reset(self):
            resets.append(self.tag)

    with Resettable("outside"), Hider(), Resettable("inside"):
        NonlocalExit({"name": "z", "type": "sample"}).reset_stack()
        assert resets == ["inside", "hider"]
        resets.clear()
        NonlocalExit({"name": "w", "type": "sample"}).reset_stack()
        assert resets == ["inside", "hider", "outside"]


def test_hides_reports_what_a_block_hides():
    msg_a = {"name": "a", "type": "sample", "is_observed": False}
    msg_b = {"name": "b", "type": "sample", "is_observed": True}
    assert not Messenger().hides(msg_a)
    block = poutine.block(hide=["a"])
    assert block.hides(msg_a) and not block.hides(msg_b)
    assert poutine.block(hide_types=["observe"]).hides(msg_b)
    assert poutine.block(expose_fn=lambda m: m["name"] == "a").hides(msg_b)
    assert not poutine.block(hide=[]).hides(msg_a)  # an empty list hides nothing, as in Pyro


def test_push_and_pop_handler():
    from ember.poutine.runtime import pop_handler, push_handler

    a, b, c = Messenger(), Messenger(), Messenger()
    for h in (a, b, c):
        push_handler(h)
    assert get_stack() == (a, b, c)
    pop_handler(b)  # removes b and every handler entered after it
    assert get_stack() == (a,)
    pop_handler(c)  # absent: nothing happens
    assert get_stack() == (a,)
    pop_handler(a)
    assert get_stack() == ()


def test_pyro_stack_name_reads_this_contexts_stack():
    import ember.poutine.runtime as runtime

    with poutine.trace() as tracer:
        assert runtime._PYRO_STACK == (tracer,)
    assert runtime._PYRO_STACK == ()
    with pytest.raises(AttributeError, match="no attribute '_NO_SUCH'"):
        _ = runtime._NO_SUCH


def _trace_in_thread(model, results, key, barrier):
    barrier.wait()
    for _ in range(30):
        tr = poutine.trace(model).get_trace()
    results[key] = (tr, len(get_stack()))


def test_threads_get_separate_stacks_and_traces():
    def model_a():
        with ember.plate("a_plate", 3):
            for i in range(5):
                ember.sample(f"a{i}", dist.Normal(0.0, 1.0))

    def model_b():
        with ember.plate("b_plate", 4, dim=-2):
            for i in range(5):
                ember.sample(f"b{i}", dist.Normal(0.0, 1.0))

    results = {}
    barrier = threading.Barrier(2)
    threads = [
        threading.Thread(target=_trace_in_thread, args=(model_a, results, "a", barrier)),
        threading.Thread(target=_trace_in_thread, args=(model_b, results, "b", barrier)),
    ]
    with poutine.block():  # the main thread's stack must not leak into the workers
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    tr_a, depth_a = results["a"]
    tr_b, depth_b = results["b"]
    assert depth_a == depth_b == 0
    assert tr_a.stochastic_nodes[1:] == [f"a{i}" for i in range(5)]
    assert tr_b.stochastic_nodes[1:] == [f"b{i}" for i in range(5)]
    assert all(tr_a.nodes[f"a{i}"]["value"].shape == (3,) for i in range(5))
    assert all(tr_b.nodes[f"b{i}"]["value"].shape == (4, 1) for i in range(5))


def test_stack_is_per_contextvars_context():
    ctx = contextvars.copy_context()
    with poutine.trace():
        inner = ctx.run(lambda: len(get_stack()))
        assert len(get_stack()) == 1
    assert inner == 0


def test_sample_outside_inference_with_obs_warns_and_returns_obs():
    obs = torch.tensor(1.0)
    with pytest.warns(RuntimeWarning, match="outside of inference"):
        assert ember.sample("y", dist.Normal(0.0, 1.0), obs=obs) is obs


def test_nested_traces_both_record_and_inner_hidden_by_block():
    def model():
        ember.sample("x", dist.Normal(0.0, 1.0))

    inner = poutine.trace(model)
    outer = poutine.trace(poutine.block(inner, hide=["x"]))
    tr_outer = outer.get_trace()
    assert "x" in inner.trace and "x" not in tr_outer
    both = poutine.trace(poutine.trace(model)).get_trace()
    assert "x" in both


def test_same_messenger_reentered_recursively():
    log = []
    rec = Recorder("r", log)

    def outer():
        with rec:
            ember.sample("a", dist.Normal(0.0, 1.0))
            with rec:
                ember.sample("b", dist.Normal(0.0, 1.0))
            assert get_stack() == (rec,)
        assert get_stack() == ()

    outer()
    assert [e for e in log if e[2] == "b"].count(("r", "process", "b")) == 2


def test_handler_hook_error_leaves_stack_clean():
    class Boom(Messenger):
        def _pyro_sample(self, msg):
            raise ValueError("hook failed at " + msg["name"])

    with pytest.raises(ValueError, match="hook failed at x"):
        with Boom():
            ember.sample("x", dist.Normal(0.0, 1.0))
    assert get_stack() == ()
