"""The functional handlers are generated from their Messenger classes: one place checks the
arguments, the docstring is the class's, and the wrapped functions behave like functions
(names, pickling, methods)."""

import inspect
import pickle

import pytest
import torch

import ember
import ember.distributions as dist
from ember import poutine
from ember.poutine import handlers
from ember.poutine.handlers import NotCallableError, make_handler
from ember.poutine.messenger import HandledFunction, Messenger

GENERATED = {
    "block": poutine.BlockMessenger,
    "broadcast": poutine.BroadcastMessenger,
    "condition": poutine.ConditionMessenger,
    "do": poutine.DoMessenger,
    "enum": poutine.EnumMessenger,
    "equalize": poutine.EqualizeMessenger,
    "escape": poutine.EscapeMessenger,
    "infer_config": poutine.InferConfigMessenger,
    "lift": poutine.LiftMessenger,
    "markov": poutine.MarkovMessenger,
    "mask": poutine.MaskMessenger,
    "replay": poutine.ReplayMessenger,
    "scale": poutine.ScaleMessenger,
    "seed": poutine.SeedMessenger,
    "substitute": poutine.SubstituteMessenger,
    "trace": poutine.TraceMessenger,
    "uncondition": poutine.UnconditionMessenger,
}


def model(a=1.0):
    """A model with one latent site."""
    return ember.sample("latent", dist.Normal(a, 1.0))


@pytest.mark.parametrize("name, cls", sorted(GENERATED.items()))
def test_each_handler_reuses_its_class_docstring_and_signature(name, cls):
    handler = getattr(poutine, name)
    assert handler.__name__ == name and handler.__module__ == "ember.poutine.handlers"
    assert inspect.cleandoc(cls.__doc__) in handler.__doc__
    assert cls.__name__ in handler.__doc__.splitlines()[0]
    params = list(inspect.signature(handler).parameters)
    assert params[0] == "fn"
    assert params[1:] == list(inspect.signature(cls).parameters)


def test_without_fn_a_handler_is_its_messenger():
    assert type(poutine.block(hide=["x"])) is poutine.BlockMessenger
    msngr = poutine.trace(graph_type="dense")
    assert type(msngr) is poutine.TraceMessenger and msngr.graph_type == "dense"
    assert type(poutine.scale(None, 2.0)) is poutine.ScaleMessenger


def test_with_fn_a_handler_wraps_it_keeping_name_and_doc():
    wrapped = poutine.condition(model, {"latent": torch.tensor(0.5)})
    assert wrapped.__name__ == "model" and wrapped.__doc__ == model.__doc__
    assert wrapped.__wrapped__ is model
    assert wrapped() == torch.tensor(0.5)
    traced = poutine.trace(model, graph_type="dense")
    assert traced.__name__ == "model" and traced.msngr.graph_type == "dense"
    assert list(traced.get_trace().nodes) == ["_INPUT", "latent", "_RETURN"]


def test_decorator_factory_form():
    @poutine.block(hide=["latent"])
    def blocked():
        return model()

    @poutine.scale(scale=3.0)
    def scaled():
        return model()

    assert "latent" not in poutine.trace(blocked).get_trace()
    assert poutine.trace(scaled).get_trace().nodes["latent"]["scale"] == 3.0


def test_a_bad_argument_is_reported_by_the_messenger_once(monkeypatch):
    calls = []
    original = poutine.ScaleMessenger.__init__

    def counting_init(self, *args, **kwargs):
        calls.append((args, kwargs))
        original(self, *args, **kwargs)

    monkeypatch.setattr(poutine.ScaleMessenger, "__init__", counting_init)
    with pytest.raises(ValueError, match="scale must be > 0") as from_handler:
        poutine.scale(model, scale=-2.0)
    with pytest.raises(ValueError) as from_class:
        poutine.ScaleMessenger(-2.0)
    assert str(from_handler.value) == str(from_class.value)
    assert len(calls) == 2  # one construction each: the handler has no check of its own


def test_missing_or_unknown_arguments_name_the_handler_and_its_usage():
    with pytest.raises(TypeError, match=r"condition: .*Usage: condition\(fn, data\)"):
        poutine.condition(model)
    with pytest.raises(TypeError, match=r"scale: .*unexpected keyword.*Usage: scale\("):
        poutine.scale(model, scale=2.0, factor=3)


@pytest.mark.parametrize("bad", [False, 3, "name", torch.tensor(1.0)])
def test_a_non_callable_first_argument_is_refused(bad):
    with pytest.raises(NotCallableError, match="not callable.*keyword argument") as info:
        poutine.mask(bad)
    assert isinstance(info.value, ValueError) and isinstance(info.value, TypeError)


def test_markov_also_takes_an_iterable():
    assert list(poutine.markov(range(3))) == [0, 1, 2]
    with pytest.raises(NotCallableError, match="a callable, an iterable or None"):
        poutine.markov(3.5)


def test_make_handler_for_a_new_messenger():
    class Tag(Messenger):
        """Tags every sample site with ``value``."""

        def __init__(self, value):
            super().__init__()
            if not isinstance(value, str):
                raise TypeError("tag: value must be a str")
            self.value = value

        def _pyro_sample(self, msg):
            msg["infer"]["tag"] = self.value

    tag = make_handler(Tag, "tag")
    tr = poutine.trace(tag(model, "t1")).get_trace()
    assert tr.nodes["latent"]["infer"] == {"tag": "t1"}
    with tag(value="t2"):
        with poutine.trace() as tracer:
            model()
    assert tracer.trace.nodes["latent"]["infer"] == {"tag": "t2"}
    with pytest.raises(TypeError, match="value must be a str"):
        tag(model, 1)
    assert "Tags every sample site" in tag.__doc__


@pytest.mark.parametrize(
    "wrap",
    [
        lambda fn: poutine.block(fn),
        lambda fn: poutine.block(fn, hide=["latent"]),
        lambda fn: poutine.block(fn, expose_fn=_is_latent),
        lambda fn: poutine.condition(fn, {"latent": torch.tensor(0.25)}),
        lambda fn: poutine.scale(poutine.mask(fn, mask=True), scale=2.0),
        lambda fn: poutine.enum(fn, first_available_dim=-1),
        lambda fn: poutine.replay(fn, trace=poutine.trace(fn).get_trace()),
    ],
)
def test_wrapped_functions_pickle(wrap):
    wrapped = wrap(model)
    restored = pickle.loads(pickle.dumps(wrapped))
    assert isinstance(restored, HandledFunction)
    ember.set_rng_seed(1)
    expected = poutine.trace(wrapped).get_trace()
    ember.set_rng_seed(1)
    actual = poutine.trace(restored).get_trace()
    assert list(actual.nodes) == list(expected.nodes)
    for name in actual.stochastic_nodes:
        assert torch.equal(actual.nodes[name]["value"], expected.nodes[name]["value"])


def _is_latent(msg):
    return msg["name"] == "latent"


def test_wrapped_method_binds_to_its_instance():
    class Model:
        def __init__(self, loc):
            self.loc = loc

        @poutine.condition(data={"latent": torch.tensor(7.0)})
        def run(self):
            return model(self.loc)

    m = Model(torch.tensor(2.0))
    assert m.run() == torch.tensor(7.0)
    assert poutine.unwrap(Model.run).__name__ == "run"
    assert poutine.unwrap(m.run) is poutine.unwrap(Model.run)


def test_unwrap_removes_every_handler():
    wrapped = poutine.block(poutine.scale(poutine.condition(model, {}), scale=2.0))
    assert poutine.unwrap(wrapped) is model
    assert poutine.unwrap(model) is model


def test_handlers_module_exports_every_generated_handler():
    for name in GENERATED:
        assert name in handlers.__all__ and name in poutine.__all__
    assert poutine.markov is ember.markov and ember.condition is poutine.condition
