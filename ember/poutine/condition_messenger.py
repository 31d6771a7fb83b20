"""ConditionMessenger and UnconditionMessenger: observe or un-observe sample sites."""

from __future__ import annotations

from ember.poutine.messenger import Messenger
from ember.poutine.trace_struct import Trace


class ConditionMessenger(Messenger):
    """Observe the sample sites named in ``data`` (a dict or a :class:`Trace`) at its values.

    Example::

        >>> import torch, ember, ember.distributions as dist
        >>> model = lambda: ember.sample("x", dist.Normal(0.0, 1.0))
        >>> tr = ember.poutine.trace(
        ...     ember.poutine.condition(model, data={"x": torch.tensor(2.0)})).get_trace()
        >>> tr.nodes["x"]["value"], tr.nodes["x"]["is_observed"]
        (tensor(2.), True)
    """

    def __init__(self, data):
        super().__init__()
        if not isinstance(data, (dict, Trace)) and not hasattr(data, "__getitem__"):
            raise TypeError(f"condition: data must be a dict or a Trace, got {type(data)}")
        self.data = data

    def _pyro_sample(self, msg) -> None:
        name = msg["name"]
        data = self.data
        if name in data:
            value = data.nodes[name]["value"] if isinstance(data, Trace) else data[name]
            msg["value"] = value
            msg["is_observed"] = value is not None


class UnconditionMessenger(Messenger):
    """Turn observed sample sites back into latent ones (sampled from their distribution).

    The observed value is kept in ``msg["infer"]["obs"]``.

    Example::

        >>> import torch, ember, ember.distributions as dist
        >>> model = lambda: ember.sample("x", dist.Normal(0.0, 1.0), obs=torch.tensor(9.0))
        >>> tr = ember.poutine.trace(ember.poutine.uncondition(model)).get_trace()
        >>> tr.nodes["x"]["is_observed"], tr.nodes["x"]["infer"]["was_observed"]
        (False, True)
    """

    def _pyro_sample(self, msg) -> None:
        if msg["is_observed"]:
            msg["is_observed"] = False
            msg["infer"]["was_observed"] = True
            msg["infer"]["obs"] = msg["value"]
            msg["value"] = None
            msg["done"] = False
