"""InferConfigMessenger: add inference options to sites."""

from __future__ import annotations

from typing import Callable

from ember.poutine.messenger import Messenger


class InferConfigMessenger(Messenger):
    """Update each sample/param site's ``infer`` dict with ``config_fn(msg)``.

    Example::

        >>> import ember, ember.distributions as dist
        >>> model = lambda: ember.sample("x", dist.Bernoulli(0.5))
        >>> cfg = lambda msg: {"enumerate": "parallel"}
        >>> tr = ember.poutine.trace(ember.poutine.infer_config(model, cfg)).get_trace()
        >>> tr.nodes["x"]["infer"]
        {'enumerate': 'parallel'}
    """

    def __init__(self, config_fn: Callable):
        super().__init__()
        if not callable(config_fn):
            raise TypeError("infer_config: config_fn must be a callable taking a message")
        self.config_fn = config_fn

    def _pyro_sample(self, msg) -> None:
        msg["infer"].update(self.config_fn(msg))

    def _pyro_param(self, msg) -> None:
        msg["infer"].update(self.config_fn(msg))
