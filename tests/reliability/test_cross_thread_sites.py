"""Handler stacks are per thread / per contextvars context: a worker thread that samples
while its starter is inside a trace gets one clear warning, and a worker run in a copy
of the starter's context is recorded."""

import asyncio
import contextvars
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch

import ember
import ember.distributions as dist
from ember import poutine
from ember.poutine.runtime import ACTIVE_HANDLER_THREADS, CrossContextWarning, get_stack


def _draw(name, out):
    out[name] = ember.sample(name, dist.Normal(0.0, 1.0))


def _run_in_thread(target, *args):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        worker = threading.Thread(target=target, args=args, name="ember-worker")
        worker.start()
        worker.join()
    return [w for w in caught if issubclass(w.category, CrossContextWarning)]


def test_a_worker_sampling_outside_the_trace_gets_one_warning():
    out = {}

    def work():
        for i in range(3):
            _draw(f"w{i}", out)

    with poutine.trace() as tr:
        caught = _run_in_thread(work)
    assert len(caught) == 1
    msg = str(caught[0].message)
    assert "'w0'" in msg and "'ember-worker'" in msg and "copy_context" in msg
    # the per-thread stack is a feature: the worker's sites are not in the trace
    assert not any(name.startswith("w") for name in tr.trace.nodes)
    assert set(out) == {"w0", "w1", "w2"}


def test_the_warning_comes_again_for_a_later_trace():
    out = {}
    for _ in range(2):
        with poutine.trace():
            caught = _run_in_thread(_draw, "w", out)
        assert len(caught) == 1


def test_copy_context_carries_the_trace_into_the_worker():
    out = {}
    with poutine.trace() as tr, ember.plate("d", 4):
        ctx = contextvars.copy_context()
        caught = _run_in_thread(ctx.run, _draw, "w", out)
    assert caught == []
    site = tr.trace.nodes["w"]
    assert site["value"] is out["w"]
    assert site["value"].shape == (4,)  # the plate came along too
    assert site["cond_indep_stack"][0].name == "d"


def test_copy_context_with_an_executor_records_every_site():
    with poutine.trace() as tr:
        with ThreadPoolExecutor(2) as pool:
            futures = [
                pool.submit(
                    contextvars.copy_context().run, ember.sample, f"s{i}", dist.Normal(i, 1.0)
                )
                for i in range(4)
            ]
            values = [f.result() for f in futures]
    for i in range(4):
        assert tr.trace.nodes[f"s{i}"]["value"] is values[i]


def test_no_warning_when_nobody_is_inside_a_handler():
    out = {}
    assert get_stack() == ()
    assert _run_in_thread(_draw, "w", out) == []
    assert ACTIVE_HANDLER_THREADS == {}


def test_no_warning_for_the_thread_that_holds_the_handler():
    # the same thread with its handlers blocked (an empty stack) is not another context
    with poutine.trace():
        with warnings.catch_warnings():
            warnings.simplefilter("error", CrossContextWarning)
            with poutine.messenger.block_messengers(lambda m: True):
                assert get_stack() == ()
                ember.sample("x", dist.Normal(0.0, 1.0))


def test_asyncio_tasks_keep_their_own_stacks_without_warnings():
    async def traced(name):
        with poutine.trace() as tr:
            await asyncio.sleep(0)
            ember.sample(name, dist.Normal(0.0, 1.0))
            await asyncio.sleep(0)
        return tr.trace

    async def main():
        return await asyncio.gather(traced("a"), traced("b"))

    with warnings.catch_warnings():
        warnings.simplefilter("error", CrossContextWarning)
        ta, tb = asyncio.run(main())
    assert "a" in ta.nodes and "b" not in ta.nodes
    assert "b" in tb.nodes and "a" not in tb.nodes
    assert ACTIVE_HANDLER_THREADS == {}


def test_the_registry_empties_after_handlers_exit_in_threads():
    def work():
        with poutine.trace(), ember.plate("d", 2):
            ember.sample("x", dist.Normal(torch.zeros(2), 1.0))

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert ACTIVE_HANDLER_THREADS == {}


def test_a_dead_thread_with_a_leaked_handler_does_not_cause_warnings():
    def leak():
        poutine.trace().__enter__()  # never exited: the thread ends inside it

    worker = threading.Thread(target=leak)
    worker.start()
    worker.join()
    with warnings.catch_warnings():
        warnings.simplefilter("error", CrossContextWarning)
        ember.sample("x", dist.Normal(0.0, 1.0))
    assert ACTIVE_HANDLER_THREADS == {}  # the dead thread is forgotten


@pytest.fixture(autouse=True)
def _clean_stack():
    yield
    assert get_stack() == ()
