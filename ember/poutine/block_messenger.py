"""BlockMessenger: hide sites from the handlers outside it."""

from __future__ import annotations

from typing import Callable, Iterable

from ember.poutine.messenger import Messenger

__all__ = ["BlockArgumentError", "BlockMessenger", "SiteSelector"]


class BlockArgumentError(ValueError, AssertionError):
    """Contradictory arguments to ``block`` (a site both hidden and exposed).

    A ``ValueError``, and an ``AssertionError`` as Pyro raises there.
    """


class SiteSelector:
    """The predicate ``block`` builds from its site lists: whether a message is hidden.

    A site is hidden when its name is in ``hide`` or its type in ``hide_types``
    (an observed sample site has the type ``"observe"``), else when ``hide_all``
    holds and neither its name is in ``expose`` nor its type in ``expose_types``.
    Giving ``hide``/``hide_types`` turns ``hide_all`` off, giving
    ``expose``/``expose_types`` turns it on, and ``expose_all`` turns it off.
    An object rather than a closure, so blocked functions pickle.

    Example::

        >>> from ember.poutine.runtime import new_message
        >>> hides = SiteSelector(hide=["a"])
        >>> hides(new_message("sample", "a", None)), hides(new_message("sample", "b", None))
        (True, False)
    """

    def __init__(
        self,
        hide_all: bool = True,
        expose_all: bool = False,
        hide: Iterable[str] | None = None,
        expose: Iterable[str] | None = None,
        hide_types: Iterable[str] | None = None,
        expose_types: Iterable[str] | None = None,
    ):
        for arg, val in (("hide", hide), ("expose", expose)):
            if isinstance(val, str):
                raise TypeError(f"block: {arg} must be a list of site names, got the str {val!r}")
        for arg, val in (("hide_types", hide_types), ("expose_types", expose_types)):
            if isinstance(val, str):
                raise TypeError(f"block: {arg} must be a list of site types, got the str {val!r}")
        if hide is not None or hide_types is not None:
            hide_all = False
        if expose is not None or expose_types is not None:
            hide_all = True
        if expose_all:
            hide_all = False
        self.hide_all = hide_all
        self.hide = frozenset(() if hide is None else hide)
        self.expose = frozenset(() if expose is None else expose)
        self.hide_types = frozenset(() if hide_types is None else hide_types)
        self.expose_types = frozenset(() if expose_types is None else expose_types)
        both = self.hide & self.expose
        if both:
            raise BlockArgumentError(
                f"block: cannot hide and expose a site: sites {sorted(both)} are both hidden "
                "and exposed (given in hide= and in expose=)"
            )
        both = self.hide_types & self.expose_types
        if both:
            raise BlockArgumentError(
                f"block: cannot hide and expose a site type: types {sorted(both)} are both "
                "hidden and exposed (given in hide_types= and in expose_types=)"
            )

    def __call__(self, msg) -> bool:
        name = msg["name"]
        mtype = msg["type"]
        if mtype == "sample" and msg.get("is_observed"):
            mtype = "observe"
        if name in self.hide or mtype in self.hide_types:
            return True
        return self.hide_all and name not in self.expose and mtype not in self.expose_types


class _Negation:
    """``not fn(msg)``: the hide predicate made from an ``expose_fn`` (picklable)."""

    def __init__(self, fn: Callable):
        self.fn = fn

    def __call__(self, msg) -> bool:
        return not self.fn(msg)


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
        if hide_fn is not None:
            self.hide_fn = hide_fn
        elif expose_fn is not None:
            self.hide_fn = _Negation(expose_fn)
        else:
            self.hide_fn = SiteSelector(
                hide_all, expose_all, hide, expose, hide_types, expose_types
            )

    def hides(self, msg) -> bool:
        """Whether ``msg`` is hidden from the handlers outside this block."""
        return bool(self.hide_fn(msg))

    def _process_message(self, msg) -> None:
        msg["stop"] = bool(self.hide_fn(msg))  # (self.hides(msg), inlined)
