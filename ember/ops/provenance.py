"""Provenance tracking: tensors that remember which named inputs they were computed
from.

A :class:`ProvenanceTensor` carries a frozenset of names. Every torch operation on
provenance tensors runs on the plain tensors and marks its results with the union of
its inputs' provenance, so the provenance of a model's log-density names the sample
sites it was computed from. Unlike autograd this sees through integer arithmetic,
indexing, ``detach()`` and code run under ``torch.no_grad()``; it is how
:func:`ember.infer.inspect.get_dependencies` finds a model's graph.

Containers (list, tuple, dict, set, frozenset) are walked recursively by
:func:`track_provenance`, :func:`get_provenance` and :func:`detach_provenance`.
"""

from __future__ import annotations

from typing import Any, Tuple

import torch

__all__ = [
    "ProvenanceTensor",
    "detach_provenance",
    "extract_provenance",
    "get_provenance",
    "track_provenance",
]


class ProvenanceTensor(torch.Tensor):
    """A tensor marked with the provenance ``provenance`` (a frozenset of names).

    Constructing one from a plain tensor with empty provenance returns the plain tensor.
    The underlying plain tensor is kept, so :func:`detach_provenance` returns the same
    object each time (it can serve as a dict key, e.g. in the param store).

    Example::

        >>> x = ProvenanceTensor(torch.tensor([1.0, 2.0]), frozenset({"x"}))
        >>> y = ProvenanceTensor(torch.tensor(3), frozenset({"y"}))
        >>> sorted(get_provenance(x.sum() * y))
        ['x', 'y']
        >>> sorted(get_provenance(x[y.clamp(max=1)].detach()))
        ['x', 'y']
    """

    _t: torch.Tensor
    _provenance: frozenset

    def __new__(cls, data: torch.Tensor, provenance: frozenset = frozenset(), **kwargs):
        if isinstance(data, ProvenanceTensor):
            raise TypeError(
                "ProvenanceTensor wraps a plain tensor; use track_provenance(x, provenance) "
                "to add provenance to a tensor that already has some"
            )
        if not isinstance(data, torch.Tensor):
            raise TypeError(f"ProvenanceTensor wraps a torch.Tensor, got {type(data).__name__}")
        if not provenance:
            return data
        out = data.as_subclass(cls)
        out._t = data
        out._provenance = frozenset(provenance)
        return out

    def __repr__(self) -> str:
        return f"ProvenanceTensor({self._t!r}, provenance={set(self._provenance)!r})"

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        kwargs = {} if kwargs is None else kwargs
        (plain_args, plain_kwargs), provenance = extract_provenance((args, kwargs))
        result = func(*plain_args, **plain_kwargs)
        return track_provenance(result, provenance)


def _map_container(fn, x):
    """Apply ``fn`` to every element of a container, keeping the container's type."""
    if isinstance(x, dict):
        return type(x)((k, fn(v)) for k, v in x.items())
    if isinstance(x, tuple) and hasattr(x, "_fields"):  # namedtuple
        return type(x)(*(fn(v) for v in x))
    return type(x)(fn(v) for v in x)


_CONTAINERS = (list, tuple, dict, set, frozenset)


def track_provenance(x: Any, provenance: frozenset) -> Any:
    """Add ``provenance`` to every tensor in ``x`` (a tensor or a nested list, tuple,
    dict, set or frozenset of them); other objects are returned unchanged.

    Example::

        >>> out = track_provenance([torch.zeros(2), {"a": torch.ones(())}], frozenset("p"))
        >>> get_provenance(out["a"] if isinstance(out, dict) else out[1]["a"])
        frozenset({'p'})
    """
    if isinstance(x, ProvenanceTensor):
        return ProvenanceTensor(x._t, x._provenance | provenance)
    if isinstance(x, torch.Tensor):
        return ProvenanceTensor(x, provenance)
    if isinstance(x, _CONTAINERS):
        return _map_container(lambda v: track_provenance(v, provenance), x)
    return x


def extract_provenance(x: Any) -> Tuple[Any, frozenset]:
    """Split ``x`` into its plain value (every provenance tensor replaced by its plain
    tensor, containers walked recursively) and the union of its provenance."""
    if isinstance(x, ProvenanceTensor):
        return x._t, x._provenance
    if isinstance(x, _CONTAINERS):
        found = []

        def strip(v):
            value, prov = extract_provenance(v)
            found.append(prov)
            return value

        value = _map_container(strip, x)
        return value, frozenset().union(*found)
    return x, frozenset()


def get_provenance(x: Any) -> frozenset:
    """The union of the provenance of every tensor in ``x`` (empty for plain values)."""
    return extract_provenance(x)[1]


def detach_provenance(x: Any) -> Any:
    """``x`` with every provenance tensor replaced by its plain tensor."""
    return extract_provenance(x)[0]
