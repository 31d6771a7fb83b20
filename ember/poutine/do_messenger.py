"""DoMessenger: causal interventions (set a site's value, cut its dependence on the past)."""

from __future__ import annotations

import numbers
import warnings

import torch

from ember.poutine.messenger import Messenger
from ember.poutine.runtime import apply_stack


class DoMessenger(Messenger):
    """Intervene on the sample sites in ``data``: downstream code sees ``data[name]``.

    The site itself is still sampled (and traced) under its own name; the
    intervened value is recorded as ``name__CF`` only inside the handler.

    Example::

        >>> import torch, ember, ember.distributions as dist
        >>> def model():
        ...     z = ember.sample("z", dist.Normal(0.0, 1.0))
        ...     return ember.sample("y", dist.Normal(z, 1e-4))
        >>> y = ember.poutine.do(model, data={"z": torch.tensor(5.0)})()
        >>> abs(float(y) - 5.0) < 0.01
        True
    """

    def __init__(self, data: dict):
        super().__init__()
        if not isinstance(data, dict):
            raise TypeError(f"do: data must be a dict of site values, got {type(data)}")
        self.data = data
        self._intervener_id = str(id(self))

    def _pyro_sample(self, msg) -> None:
        name = msg["name"]
        if msg.get("_intervener_id") == self._intervener_id or self.data.get(name) is None:
            return
        if msg.get("_intervener_id") is not None:
            warnings.warn(
                f"intervening on site {name!r} more than once; this is almost certainly wrong",
                RuntimeWarning,
                stacklevel=2,
            )
        msg["_intervener_id"] = self._intervener_id
        new_msg = msg.copy()
        new_msg["infer"] = dict(msg["infer"])
        new_msg["cond_indep_stack"] = ()
        new_msg["scale"] = 1.0
        new_msg["mask"] = None
        apply_stack(new_msg)
        intervention = self.data[name]
        if not isinstance(intervention, (numbers.Number, torch.Tensor)):
            raise TypeError(
                f"do: the intervention for site {name!r} must be a number or tensor, got "
                f"{type(intervention).__name__}"
            )
        msg["name"] = name + "__CF"
        msg["value"] = intervention
        msg["is_observed"] = True
        msg["stop"] = True
