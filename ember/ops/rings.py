"""Tensor rings: the sum and product operations of sum-product contraction,
acting on packed tensors (see :mod:`ember.ops.packed`).

A ring contracts *sum dims* (enumerated variables) with its sum operation and
*plate dims* (named by an ``ordinal``, a frozenset of dim symbols) with its
product operation. :class:`LinearRing` works on probabilities (sum / product),
:class:`LogRing` on log-probabilities (logsumexp / sum). Intermediate results are
cached by tensor identity in ``ring._cache``.
"""

from abc import ABCMeta, abstractmethod

import torch

from ember.ops.einsum import log_einsum
from ember.util import ignore_jit_warnings

__all__ = ["LinearRing", "LogRing", "Ring"]


def _named(tensor, dims):
    tensor._pyro_dims = dims
    return tensor


class Ring(metaclass=ABCMeta):
    """Abstract tensor ring over packed tensors.

    Subclasses define :meth:`sumproduct`, :meth:`product` and :meth:`inv`;
    :meth:`broadcast` and :meth:`global_local` are shared.

    :param dict cache: optional dict shared between rings to reuse intermediates.
    :param dict dim_to_size: sizes of plate dims, needed by :meth:`broadcast`.
    """

    def __init__(self, cache=None, dim_to_size=None):
        self._cache = {} if cache is None else cache
        self._dim_to_size = {} if dim_to_size is None else dim_to_size

    def _hash_by_id(self, tensor):
        # The tensor is kept alive in the cache so that its id is not recycled.
        key = id(tensor)
        self._cache.setdefault(("tensor", key), tensor)
        return key

    @abstractmethod
    def sumproduct(self, terms, dims):
        """Multiply ``terms`` and sum out ``dims`` (an iterable of dim symbols)."""

    @abstractmethod
    def product(self, term, ordinal):
        """Product-contract the plate dims of ``term`` that are in ``ordinal``."""

    @abstractmethod
    def inv(self, term):
        """The multiplicative inverse of ``term`` in this ring."""

    def broadcast(self, term, ordinal):
        """Expand ``term`` along the plate dims of ``ordinal`` it lacks (sizes from
        ``dim_to_size``), prepending them."""
        dims = term._pyro_dims
        missing = "".join(sorted(set(ordinal) - set(dims)))
        if not missing:
            return term
        key = ("broadcast", self._hash_by_id(term), missing)
        if key not in self._cache:
            unknown = [d for d in missing if d not in self._dim_to_size]
            if unknown:
                raise ValueError(
                    f"cannot broadcast over plate dims {unknown}: pass their sizes in dim_to_size"
                )
            shape = tuple(self._dim_to_size[d] for d in missing)
            self._cache[key] = _named(term.expand(shape + term.shape), missing + dims)
        return self._cache[key]

    def global_local(self, term, dims, ordinal):
        """Split ``term`` for message passing by inclusion-exclusion into
        ``(global, local)`` with ``global = product(sum(term, dims), ordinal)`` and
        ``local = term / sum(term, dims)`` (ring operations)."""
        if not dims:
            raise ValueError("global_local needs at least one sum dim; use product() instead")
        key = ("global_local", self._hash_by_id(term), frozenset(dims), ordinal)
        if key not in self._cache:
            summed = self.sumproduct([term], dims)
            global_part = self.product(summed, ordinal)
            with ignore_jit_warnings():
                local_part = self.sumproduct([term, self.inv(summed)], set())
            self._cache[key] = (global_part, local_part)
        return self._cache[key]

    def _product(self, term, ordinal, reduce):
        dims = term._pyro_dims
        for dim in sorted(ordinal, reverse=True):
            pos = dims.find(dim)
            if pos == -1:
                continue
            key = ("product", self._hash_by_id(term), dim)
            dims = dims.replace(dim, "")
            if key not in self._cache:
                self._cache[key] = _named(reduce(term, pos), dims)
            term = self._cache[key]
        return term

    @staticmethod
    def _equation(terms, dims):
        inputs = [t._pyro_dims for t in terms]
        output = "".join(sorted(set("".join(inputs)) - set(dims)))
        return ",".join(inputs) + "->" + output, output


class LinearRing(Ring):
    """Sum-product in linear space: sum dims are summed, plate dims multiplied.

    Example::

        >>> import torch
        >>> from ember.ops.packed import pack
        >>> ring = LinearRing()
        >>> x = pack(torch.tensor([[1.0, 2.0], [3.0, 4.0]]), {-2: "a", -1: "i"})
        >>> ring.sumproduct([x], "i").tolist(), ring.product(x, frozenset("a")).tolist()
        ([3.0, 7.0], [3.0, 8.0])
    """

    def sumproduct(self, terms, dims):
        equation, output = self._equation(terms, dims)
        return _named(torch.einsum(equation, *terms), output)

    def product(self, term, ordinal):
        return self._product(term, ordinal, lambda t, pos: t.prod(pos))

    def inv(self, term):
        key = ("inv", self._hash_by_id(term))
        if key not in self._cache:
            # clamp so that 1/0 = inf does not turn into nan after inf * 0
            result = term.reciprocal().clamp(max=torch.finfo(term.dtype).max)
            self._cache[key] = _named(result, term._pyro_dims)
        return self._cache[key]


class LogRing(Ring):
    """Sum-product in log space: sum dims are log-sum-exp'ed, plate dims summed.

    Example::

        >>> import torch
        >>> from ember.ops.packed import pack
        >>> ring = LogRing()
        >>> x = pack(torch.tensor([[1.0, 2.0], [3.0, 4.0]]).log(), {-2: "a", -1: "i"})
        >>> [round(v, 4) for v in ring.sumproduct([x], "i").exp().tolist()]
        [3.0, 7.0]
        >>> [round(v, 4) for v in ring.product(x, frozenset("a")).exp().tolist()]
        [3.0, 8.0]
    """

    def sumproduct(self, terms, dims):
        equation, output = self._equation(terms, dims)
        return _named(log_einsum(equation, *terms), output)

    def product(self, term, ordinal):
        return self._product(term, ordinal, lambda t, pos: t.sum(pos))

    def inv(self, term):
        key = ("inv", self._hash_by_id(term))
        if key not in self._cache:
            # clamp so that -(-inf) = inf does not turn into nan after inf - inf
            result = (-term).clamp(max=torch.finfo(term.dtype).max)
            self._cache[key] = _named(result, term._pyro_dims)
        return self._cache[key]
