"""SplitReparam: split a site along one event dim into several sites."""

from __future__ import annotations

import torch

import ember.distributions as dist
from ember.distributions import constraints
from ember.infer.reparam.reparam import Reparam
from ember.ops.tensor_utils import broadcast_tensors_without_dim
from ember.poutine.runtime import get_mask
from ember.primitives import sample

__all__ = ["SplitReparam", "default_support", "real_support", "same_support"]


def same_support(fn, *args):
    """The support of each piece is ``fn``'s support (a :class:`SplitReparam` ``support_fn``)."""
    return fn.support


def real_support(fn, *args):
    """Each piece is real with ``fn``'s event dim (a :class:`SplitReparam` ``support_fn``)."""
    return constraints.independent(constraints.real, fn.event_dim)


def default_support(fn, piece: slice, dim: int):
    """``fn``'s support, cut to ``piece`` along ``dim`` when it is a ``stack`` or ``cat``
    of constraints along that dim (the default :class:`SplitReparam` ``support_fn``)."""
    support = fn.support
    wrappers = []
    while isinstance(support, constraints.independent):
        wrappers.append(support.reinterpreted_batch_ndims)
        support = support.base_constraint
    if isinstance(support, constraints.stack) and support.dim == dim:
        support = constraints.stack(support.cseq[piece], dim)
    elif isinstance(support, constraints.cat) and support.dim == dim:
        support = constraints.cat(support.cseq[piece], dim, support.lengths[piece])
    for n in reversed(wrappers):
        support = constraints.independent(support, n)
    return support


class SplitReparam(Reparam):
    """Split a site along event dim ``dim`` (negative) into pieces of sizes
    ``sections``: sites ``"<x>_split_0"``, ``"<x>_split_1"``, ... with improper
    uniform priors (support from ``support_fn``), concatenated into ``x``, whose
    site carries the original log density. Lets different pieces get different
    reparameterizers, guides or mass matrices.

    Example::

        >>> import torch, ember, ember.distributions as dist
        >>> d = dist.Normal(torch.zeros(5), 1.0).to_event(1)
        >>> from ember.infer.autoguide.initialization import InitMessenger, init_to_sample
        >>> model = lambda: ember.sample("x", d)
        >>> rep = ember.poutine.reparam(model, {"x": SplitReparam([2, 3], -1)})
        >>> tr = ember.poutine.trace(InitMessenger(init_to_sample)(rep)).get_trace()
        >>> tr.nodes["x_split_0"]["value"].shape, tr.nodes["x_split_1"]["value"].shape
        (torch.Size([2]), torch.Size([3]))
    """

    def __init__(self, sections, dim, support_fn=default_support):
        if not isinstance(dim, int) or dim >= 0:
            raise ValueError(f"SplitReparam: dim must be a negative int, got {dim!r}")
        if not isinstance(sections, list) or not all(isinstance(s, int) for s in sections):
            raise TypeError(f"SplitReparam: sections must be a list of ints, got {sections!r}")
        self.event_dim = -dim
        self.sections = sections
        self.support_fn = support_fn

    def apply(self, msg):
        name, fn, value = msg["name"], msg["fn"], msg["value"]
        if fn.event_dim < self.event_dim:
            raise ValueError(
                f"SplitReparam at site {name!r}: cannot split along dim {-self.event_dim} of "
                f"a distribution with event_dim {fn.event_dim}; split an event dim "
                "(use .to_event())"
            )
        if sum(self.sections) != fn.event_shape[-self.event_dim]:
            raise ValueError(
                f"SplitReparam at site {name!r}: sections {self.sections} do not add up to "
                f"the size {fn.event_shape[-self.event_dim]} of dim {-self.event_dim}"
            )
        pieces = [None] * len(self.sections)
        if value is not None:
            pieces = list(value.split(self.sections, -self.event_dim))
        d = fn.event_dim - self.event_dim
        left, right = fn.event_shape[:d], fn.event_shape[d + 1 :]
        start = 0
        for i, size in enumerate(self.sections):
            support = self.support_fn(fn, slice(start, start + size), -self.event_dim)
            pieces[i] = sample(
                f"{name}_split_{i}",
                dist.ImproperUniform(support, fn.batch_shape, left + (size,) + right),
                obs=pieces[i],
                infer={"is_observed": msg["is_observed"]},
            )
            start += size
        if value is None:
            pieces = broadcast_tensors_without_dim(pieces, -self.event_dim)
            value = torch.cat(pieces, dim=-self.event_dim)
        log_density = 0.0 if get_mask() is False else fn.log_prob(value)
        new_fn = dist.Delta(value, event_dim=fn.event_dim, log_density=log_density)
        return {"fn": new_fn, "value": value, "is_observed": True}
