"""Tensor rings: the sum and product operations of sum-product contraction,
acting on packed tensors (see :mod:`ember.ops.packed`).

A ring contracts *sum dims* (enumerated variables) with its sum operation and
*plate dims* (named by an ``ordinal``, a frozenset of dim symbols) with its
product operation. :class:`LinearRing` works on probabilities (sum / product),
:class:`LogRing` on log-probabilities (logsumexp / sum). :class:`MapRing`,
:class:`SampleRing` and :class:`MarginalRing` compute the log-space forward pass
with the adjoint einsum backends (:mod:`ember.ops.einsum.adjoint`) and extend
the adjoint graph through plate products, so that a backward pass started at a
contraction's result reaches every marked input (argmax values, posterior
samples, or log-marginals). :data:`BACKEND_TO_RING` maps backend names (Pyro's
spelling and ember's) to ring classes. Intermediate results are cached by tensor
identity in ``ring._cache``.
"""

import weakref
from abc import ABCMeta, abstractmethod

import torch

from ember.ops.einsum import contract, log_einsum
from ember.ops.einsum.adjoint import SAMPLE_SYMBOL, Backward
from ember.util import ignore_jit_warnings

__all__ = [
    "BACKEND_TO_RING",
    "LinearRing",
    "LogRing",
    "MapRing",
    "MarginalRing",
    "Ring",
    "SampleRing",
]


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

    #: the einsum backend of :meth:`sumproduct` (a module path, see :mod:`ember.ops.einsum`)
    backend = "torch"

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

    backend = "ember.ops.einsum.torch_log"

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


def _adjoint_sumproduct(ring, terms, dims):
    """``sumproduct`` with the ring's adjoint backend: the result carries a backward
    step when one of ``terms`` does."""
    equation, output = Ring._equation(terms, dims)
    result = contract(equation, *terms, backend=ring.backend)
    if any(result is t for t in terms):
        result = result.clone()
    return _named(result, output)


class _SampleProductBackward(Backward):
    """Backward of a plate product for the map and sample rings: the values chosen
    for the product's result hold for every element of the product's plates."""

    def __init__(self, ring, term, ordinal):
        self.ring = ring
        self.term = term
        self.ordinal = ordinal

    def process(self, message):
        if message is not None:
            sample_dims = message._pyro_sample_dims
            message = self.ring.broadcast(message, self.ordinal)
            dims = message._pyro_dims
            if dims[0] != SAMPLE_SYMBOL:  # broadcasting prepended plate dims: move them back
                order = SAMPLE_SYMBOL + dims.replace(SAMPLE_SYMBOL, "")
                message = message.permute(tuple(dims.index(d) for d in order))
                message._pyro_dims = order
            message._pyro_sample_dims = sample_dims
        yield self.term._pyro_backward, message


class _ChoiceRing(LogRing):
    """A log-space ring whose backward pass chooses a value for every sum dim (the
    argmax, or a posterior draw): sums and plate products record how to go back."""

    def sumproduct(self, terms, dims):
        return _adjoint_sumproduct(self, terms, dims)

    def product(self, term, ordinal):
        result = super().product(term, ordinal)
        if hasattr(term, "_pyro_backward") and result is not term:
            plates = frozenset(ordinal).intersection(term._pyro_dims)
            result._pyro_backward = _SampleProductBackward(self, term, plates)
        return result


class MapRing(_ChoiceRing):
    """Max-sum ring: forward maximizes over sum dims (log space); a backward pass
    from a result gives every marked input the maximizing values of its sum dims.

    Example::

        >>> import torch
        >>> from ember.ops.einsum.adjoint import require_backward
        >>> from ember.ops.packed import pack
        >>> x = pack(torch.tensor([[0.0, 2.0], [1.0, 0.0]]), {-2: "a", -1: "i"})
        >>> require_backward(x)
        >>> ring = MapRing()
        >>> best = ring.product(ring.sumproduct([x], {"a"}), frozenset("i"))
        >>> float(best), best._pyro_backward()
        (3.0, None)
        >>> x._pyro_backward_result.tolist()  # the best a for each i
        [[1, 0]]
    """

    backend = "ember.ops.einsum.torch_map"


class SampleRing(_ChoiceRing):
    """Sum-product ring in log space whose backward pass draws every sum dim from its
    posterior given the values drawn downstream (forward-filter backward-sample).

    Example::

        >>> import torch
        >>> from ember.ops.einsum.adjoint import require_backward
        >>> from ember.ops.packed import pack
        >>> x = pack(torch.tensor([[0.0, -1e9], [-1e9, 0.0]]), {-2: "a", -1: "i"})
        >>> require_backward(x)
        >>> ring = SampleRing()
        >>> z = ring.product(ring.sumproduct([x], {"a"}), frozenset("i"))
        >>> z._pyro_backward(); x._pyro_backward_result.tolist()
        [[0, 1]]
    """

    backend = "ember.ops.einsum.torch_sample"


class _MarginalProductBackward(Backward):
    """Backward of a plate product for the marginal ring. The product's result times
    the message is the whole model as seen from the result; a marked input takes it
    broadcast over the plates, an intermediate term gets it divided by itself (each
    plate element's term adds itself back further on)."""

    def __init__(self, ring, term, ordinal, result):
        self.ring = ring
        self.term = term
        self.ordinal = ordinal
        self.result = weakref.ref(result)  # the result owns this object

    def process(self, message):
        ring, term = self.ring, self.term
        result = self.result()
        if result is None:
            return
        factors = [result]
        if message is not None:
            message._pyro_dims = result._pyro_dims
            factors.append(message)
        if term._pyro_backward.is_leaf:
            message = ring.broadcast(ring.sumproduct(factors, set()), self.ordinal)
        else:
            factors.append(ring.inv(term))
            message = ring.sumproduct(factors, set())
        dims, target = message._pyro_dims, term._pyro_dims
        if dims != target:  # messages are positional: lay it out like the term
            message = _named(message.permute(tuple(dims.index(d) for d in target)), target)
        yield term._pyro_backward, message


class MarginalRing(LogRing):
    """Sum-product ring in log space whose backward pass gives every marked input the
    unnormalized log-marginal of the whole contraction over that input's dims.

    Example::

        >>> import torch
        >>> from ember.ops.einsum.adjoint import require_backward
        >>> from ember.ops.packed import pack
        >>> x = pack(torch.zeros(2, 3), {-2: "a", -1: "i"})
        >>> require_backward(x)
        >>> ring = MarginalRing()
        >>> z = ring.product(ring.sumproduct([x], {"a"}), frozenset("i"))
        >>> z._pyro_backward()  # every (a, i) entry lies in half of 2**3 joint values
        >>> torch.allclose(x._pyro_backward_result.exp(), torch.full((2, 3), 4.0))
        True
    """

    backend = "ember.ops.einsum.torch_marginal"

    def sumproduct(self, terms, dims):
        return _adjoint_sumproduct(self, terms, dims)

    def product(self, term, ordinal):
        result = super().product(term, ordinal)
        if hasattr(term, "_pyro_backward") and result is not term:
            plates = frozenset(ordinal).intersection(term._pyro_dims)
            result._pyro_backward = _MarginalProductBackward(self, term, plates, result)
        return result


#: Ring class of each einsum backend, under Pyro's module paths and ember's.
BACKEND_TO_RING = {"torch": LinearRing}
for _name, _ring in [
    ("torch_log", LogRing),
    ("torch_map", MapRing),
    ("torch_sample", SampleRing),
    ("torch_marginal", MarginalRing),
]:
    BACKEND_TO_RING["pyro.ops.einsum." + _name] = _ring
    BACKEND_TO_RING["ember.ops.einsum." + _name] = _ring
del _name, _ring
