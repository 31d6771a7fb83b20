"""BlockMessenger: hide sites from the handlers outside it."""

from __future__ import annotations

from typing import Callable, Iterable

from ember.poutine.messenger import Messenger


def _make_default_hide_fn(hide_all, expose_all, hide, expose, hide_types, expose_types):
    hide = set() if hide is None else set(hide)
    expose = set() if expose is None else set(expose)
    hide_types = set() if hide_types is None else set(hide_types)
    expose_types = set() if expose_types is None else set(expose_types)
    if hide or hide_types:
        hide_all = False
    if expose or expose_types:
        hide_all = True
    if expose_all:
        hide_all = False
    both = hide & expose
    if both:
        raise ValueError(f"block: sites {sorted(both)} are both hidden and exposed")
    both = hide_types & expose_types
    if both:
        raise ValueError(f"block: site types {sorted(both)} are both hidden and exposed")

    def hide_fn(msg):
        name = msg["name"]
        mtype = "observe" if msg["type"] == "sample" and msg.get("is_observed") else msg["type"]
        if name in hide or mtype in hide_types:
            return True
        return hide_all and name not in expose and mtype not in expose_types

    return hide_fn


class BlockMessenger(Messenger):
    """Hide some sites from every handler outside this one.

    By default everything is hidden. Choose sites with ``hide``/``expose``
    (names), ``hide_types``/``expose_types`` (message types, e.g. "param"),
    ``hide_all``/``expose_all``, or a predicate ``hide_fn``/``expose_fn`` on
    the message.

    Example::

        >>> import torch, ember, ember.distributions as dist
        >>> def fn():
        ...     a = ember.sample("a", dist.Normal(0.0, 1.0))
        ...     return ember.sample("b", dist.Normal(a, 1.0))
        >>> tr = ember.poutine.trace(ember.poutine.block(fn, hide=["a"])).get_trace()
        >>> "a" in tr, "b" in tr
        (False, True)
    """

    def __init__(
        self,
        hide_fn: Callable | None = None,
        expose_fn: Callable | None = None,
        hide_all: bool = True,
        expose_all: bool = False,
        hide: Iterable[str] | None = None,
        expose: Iterable[str] | None = None,
        hide_types: Iterable[str] | None = None,
        expose_types: Iterable[str] | None = None,
    ):
        super().__init__()
        if hide_fn is not None and expose_fn is not None:
            raise ValueError("block: give only one of hide_fn or expose_fn")
        for arg, val in (("hide", hide), ("expose", expose)):
            if isinstance(val, str):
                raise TypeError(f"block: {arg} must be a list of site names, got the str {val!r}")
        if hide_fn is not None:
            self.hide_fn = hide_fn
        elif expose_fn is not None:
            self.hide_fn = lambda msg: not expose_fn(msg)
        else:
            self.hide_fn = _make_default_hide_fn(
                hide_all, expose_all, hide, expose, hide_types, expose_types
            )

    def _process_message(self, msg) -> None:
        msg["stop"] = bool(self.hide_fn(msg))
