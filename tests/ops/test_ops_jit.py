import warnings

import torch

from ember.ops import jit


def test_trace_runs_eagerly_and_caches_by_signature():
    calls = []

    def fn(*args, scale=1.0):
        calls.append(len(args))
        return sum(args) * scale

    f = jit.trace(fn)
    assert isinstance(f, jit.CompiledFunction)
    assert torch.equal(f(torch.tensor(1.0)), torch.tensor(1.0))
    assert torch.equal(f(torch.tensor(1.0), torch.tensor(2.0)), torch.tensor(3.0))
    assert torch.equal(f(torch.tensor(2.0), scale=-2.0), torch.tensor(-4.0))
    assert torch.equal(f(torch.tensor(2.0), scale={"a": 1}.get("a")), torch.tensor(2.0))
    # every call runs the Python function (no stale trace)
    assert calls == [1, 2, 1, 1]
    assert sorted(f.compiled) == [(1, ()), (1, ("scale",)), (2, ())]


def test_random_and_control_flow_are_not_frozen():
    @jit.trace(ignore_warnings=True, jit_options={"time_compilation": True})
    def f(x):
        return x + 1 if x > 0 else x - 1

    assert float(f(torch.tensor(1.0))) == 2.0
    assert float(f(torch.tensor(-1.0))) == -2.0
    assert f.compile_time is not None and f.compile_time >= 0
    assert f.jit_options["check_trace"] is False


def test_no_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        jit.trace(lambda x, config={}: x * config.get("s", 1.0))(torch.ones(1), config={"s": 2})
