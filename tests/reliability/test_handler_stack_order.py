"""Handler stack semantics: exiting handlers out of order is an error that leaves a
consistent stack, and a generator suspended inside a plate does not leak the plate into
the next trace."""

import contextlib
import gc

import pytest
import torch

import ember
import ember.distributions as dist
from ember import poutine
from ember.poutine.runtime import DIM_ALLOCATOR, HandlerOrderError, get_stack


@pytest.fixture(autouse=True)
def _clean_stack():
    assert get_stack() == ()
    yield
    assert get_stack() == ()
    assert DIM_ALLOCATOR.names() == {}


def test_exiting_handlers_out_of_order_raises_and_names_both():
    a = poutine.trace()
    b = poutine.block()
    a.__enter__()
    b.__enter__()
    with pytest.raises(HandlerOrderError, match="TraceMessenger exited while BlockMessenger"):
        a.__exit__(None, None, None)
    # the stack is as it was before `a` was entered, and `b` is gone with it
    assert get_stack() == ()
    # exiting `b` now finds nothing to do; a new handler works normally
    b.__exit__(None, None, None)
    with poutine.trace() as tr:
        ember.sample("x", dist.Normal(0.0, 1.0))
    assert list(tr.trace.nodes) == ["x"]


def test_out_of_order_exit_keeps_the_handlers_entered_before():
    outer = poutine.trace()
    a = poutine.scale(scale=2.0)
    b = ember.plate("p", 3)
    c = poutine.block()
    with outer:
        a.__enter__()
        b.__enter__()
        c.__enter__()
        with pytest.raises(HandlerOrderError, match=r"plate 'p', BlockMessenger \(entered"):
            a.__exit__(None, None, None)
        assert get_stack() == (outer,)
        assert DIM_ALLOCATOR.names() == {}  # the plate gave back its dim
        ember.sample("y", dist.Normal(0.0, 1.0))
    site = outer.trace.nodes["y"]
    assert site["scale"] == 1.0 and site["cond_indep_stack"] == ()


def test_handler_order_error_is_a_value_error():
    a, b = poutine.trace(), poutine.trace()
    a.__enter__()
    b.__enter__()
    with pytest.raises(ValueError):
        a.__exit__(None, None, None)


def test_with_an_exception_in_flight_the_inner_handlers_are_unwound_silently():
    a, b = poutine.trace(), poutine.block()
    a.__enter__()
    b.__enter__()
    err = KeyError("boom")
    assert a.__exit__(KeyError, err, None) is False  # the original error propagates
    assert get_stack() == ()


def test_in_order_exits_are_unchanged():
    with poutine.trace() as tr, ember.plate("d", 2), poutine.scale(scale=3.0):
        ember.sample("x", dist.Normal(0.0, 1.0))
    assert tr.trace.nodes["x"]["scale"] == 3.0
    assert tr.trace.nodes["x"]["value"].shape == (2,)


# --- generators suspended inside a plate ----------------------------------------------


def _gen_model():
    with ember.plate("d", 3):
        yield ember.sample("x", dist.Normal(0.0, 1.0))
        yield ember.sample("x2", dist.Normal(0.0, 1.0))


def _other_model():
    return ember.sample("y", dist.Normal(0.0, 1.0))


def test_a_generator_suspended_in_a_plate_inside_a_trace_does_not_leak():
    kept = []

    def model():
        g = _gen_model()
        kept.append(g)  # the generator outlives the model, suspended inside its plate
        return next(g)

    with pytest.raises(HandlerOrderError, match="TraceMessenger exited while plate 'd'.*close"):
        poutine.trace(model).get_trace()
    assert get_stack() == ()
    # the next trace does not see the plate
    tr = poutine.trace(_other_model).get_trace()
    assert tr.nodes["y"]["cond_indep_stack"] == ()
    assert tr.nodes["y"]["value"].shape == ()
    # closing the generator later changes nothing
    kept.pop().close()
    assert get_stack() == ()


def test_a_generator_suspended_in_a_plate_outside_any_handler_does_not_leak():
    g = _gen_model()
    x = next(g)  # no handler around: the plate is entered at the bottom of the stack
    assert x.shape == (3,)
    # the next trace would have its sites put in the plate: refused, naming both
    with pytest.raises(HandlerOrderError, match=r"plate 'd'.*generator '_gen_model'.*close\(\)"):
        poutine.trace(_other_model).get_trace()
    g.close()
    assert get_stack() == ()
    tr = poutine.trace(_other_model).get_trace()
    assert tr.nodes["y"]["cond_indep_stack"] == ()
    assert tr.nodes["y"]["value"].shape == ()


def test_a_refused_trace_leaves_the_generator_and_its_plate_intact():
    g = _gen_model()
    next(g)
    with pytest.raises(HandlerOrderError):
        with poutine.trace():
            pass
    # the generator itself may run on: its plate is intact
    g_value = next(g)
    assert g_value.shape == (3,)
    with pytest.raises(StopIteration):
        next(g)
    assert get_stack() == ()


def test_closing_a_generator_does_not_pop_the_handlers_entered_before_it():
    with poutine.trace() as tr:
        g = _gen_model()
        next(g)  # the plate is entered above the trace
        g.close()  # GeneratorExit inside the plate: only the plate leaves the stack
        assert get_stack() == (tr,)
        ember.sample("z", dist.Normal(0.0, 1.0))
    assert tr.trace.nodes["z"]["cond_indep_stack"] == ()
    assert tr.trace.nodes["z"]["value"].shape == ()


def test_a_collected_generator_leaves_the_stack_consistent():
    g = _gen_model()
    next(g)
    del g
    gc.collect()
    assert get_stack() == ()
    with poutine.trace() as tr:
        ember.sample("z", dist.Normal(0.0, 1.0))
    assert tr.trace.nodes["z"]["cond_indep_stack"] == ()


def test_plates_in_a_contextmanager_still_apply_to_a_trace_inside():
    @contextlib.contextmanager
    def data_plates():
        with ember.plate("a", 3), ember.plate("b", 2):
            yield

    with data_plates():
        tr = poutine.trace(_other_model).get_trace()
    assert tr.nodes["y"]["value"].shape == (2, 3)
    assert [f.name for f in tr.nodes["y"]["cond_indep_stack"]] == ["a", "b"]


def test_sequential_plates_still_allow_handlers_in_their_loop():
    sizes = []
    for i in ember.plate("s", 3):
        tr = poutine.trace(_other_model).get_trace()
        sizes.append((i, tr.nodes["y"]["cond_indep_stack"][0].counter))
    assert sizes == [(0, 1), (1, 2), (2, 3)]


def test_a_generator_run_to_the_end_inside_a_trace_records_its_sites():
    def model():
        return list(_gen_model())

    tr = poutine.trace(model).get_trace()
    assert [n for n, site in tr.nodes.items() if site["type"] == "sample"] == ["d", "x", "x2"]
    for name in ("x", "x2"):
        assert tr.nodes[name]["cond_indep_stack"][0].name == "d"
        assert tr.nodes[name]["value"].shape == (3,)
    assert torch.is_tensor(tr.nodes["_RETURN"]["value"][0])
