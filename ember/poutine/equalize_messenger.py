"""EqualizeMessenger: give several sites one shared value."""

from __future__ import annotations

import re
from typing import Iterable, Union

from ember.distributions.delta import Delta
from ember.poutine.messenger import Messenger

__all__ = ["EqualizeMessenger"]


class EqualizeMessenger(Messenger):
    """Make every site whose name matches ``sites`` take the value of the first one.

    ``sites`` is a regular expression or a list of them, each matched against
    the whole site name; ``type`` is the kind of site (``"sample"`` or
    ``"param"``). The first matching site of a run is computed as usual; each
    later one gets its value. A later sample site becomes observed at that
    value: with ``keep_dist=False`` (default) its distribution is replaced by a
    zero-density point mass (the site is a deterministic copy); with
    ``keep_dist=True`` it keeps its distribution, which conditions the model on
    the sites being equal.

    Example::

        >>> import ember, ember.distributions as dist
        >>> def model():
        ...     a = ember.sample("scale_a", dist.LogNormal(0.0, 1.0))
        ...     b = ember.sample("scale_b", dist.LogNormal(0.0, 1.0))
        ...     return a, b
        >>> tr = ember.poutine.trace(ember.poutine.equalize(model, "scale_.")).get_trace()
        >>> a, b = tr.nodes["_RETURN"]["value"]
        >>> bool(a == b), tr.nodes["scale_b"]["is_observed"]
        (True, True)
        >>> tr.log_prob_sum() == tr.nodes["scale_a"]["fn"].log_prob(a)
        tensor(True)
    """

    def __init__(
        self, sites: Union[str, Iterable[str]], type: str = "sample", keep_dist: bool = False
    ):
        super().__init__()
        patterns = [sites] if isinstance(sites, str) else sites
        patterns = list(patterns) if isinstance(patterns, Iterable) else None
        if not patterns or not all(isinstance(p, str) for p in patterns):
            raise TypeError(
                f"equalize: sites must be a regular expression or a non-empty list of them, "
                f"got {sites!r}"
            )
        if type not in ("sample", "param"):
            raise ValueError(f"equalize: type must be 'sample' or 'param', got {type!r}")
        if not isinstance(keep_dist, bool):
            raise TypeError(f"equalize: keep_dist must be True or False, got {keep_dist!r}")
        self.sites = patterns
        self.type = type
        self.keep_dist = keep_dist
        self._patterns = [re.compile(p) for p in patterns]
        self.value = None

    def __enter__(self):
        self.value = None
        return super().__enter__()

    def _reset(self) -> None:
        self.value = None

    def _matches(self, msg) -> bool:
        if msg["type"] != self.type or msg["name"] is None:
            return False
        return any(p.fullmatch(msg["name"]) for p in self._patterns)

    def _process_message(self, msg) -> None:
        value = self.value
        if value is None or not self._matches(msg):
            return
        msg["value"] = value
        if msg["type"] == "sample":
            msg["is_observed"] = True
            if not self.keep_dist:
                event_dim = len(getattr(msg["fn"], "event_shape", ()))
                msg["fn"] = Delta(value, event_dim=event_dim).mask(False)
                msg["infer"] = {"_deterministic": True}

    def _postprocess_message(self, msg) -> None:
        if self.value is None and self._matches(msg):
            self.value = msg["value"]
