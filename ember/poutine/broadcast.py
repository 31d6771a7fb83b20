"""Broadcasting a sample site's distribution to the plates around it.

A leaf of the runtime: it knows messages and plate frames (``cond_indep_stack``)
but no handler, so both the runtime (:func:`~ember.poutine.runtime.apply_stack`,
for a site hidden from the outer plates) and the plate handlers can use it.
"""

from __future__ import annotations

import torch

from ember.distributions.util import broadcast_shape
from ember.util import is_poutine_validation_enabled

__all__ = ["broadcast_to_plates", "describe_plates"]


def describe_plates(frames) -> str:
    """The vectorized plates among ``frames``, as they appear in error messages.

    Example::

        >>> from ember.poutine.runtime import CondIndepStackFrame
        >>> describe_plates([CondIndepStackFrame("data", -1, 10, 0)])
        "plate('data', size=10, dim=-1)"
    """
    if not frames:
        return "(no plates)"
    return ", ".join(
        f"plate({f.name!r}, size={f.size}, dim={f.dim})" for f in frames if f.dim is not None
    )


def broadcast_to_plates(msg) -> None:
    """Expand ``msg["fn"]``'s batch shape to the vectorized plates of the message.

    Raises a ``ValueError`` naming the site, shapes and plates when the
    distribution (or, with validation on, an observed value) has a size at a
    plate's dim that is neither 1 nor the plate size.

    Example::

        >>> import ember.distributions as dist
        >>> from ember.poutine.runtime import CondIndepStackFrame, new_message
        >>> msg = new_message("sample", "x", dist.Normal(0.0, 1.0))
        >>> msg["cond_indep_stack"] = (CondIndepStackFrame("p", -2, 3, 0),)
        >>> broadcast_to_plates(msg); msg["fn"].batch_shape
        torch.Size([3, 1])
    """
    fn = msg["fn"]
    batch_shape = getattr(fn, "batch_shape", None)
    if batch_shape is None:
        return
    n = len(batch_shape)
    value = msg["value"]
    for f in msg["cond_indep_stack"]:
        dim = f.dim
        if dim is not None and f.size != -1 and (-dim > n or batch_shape[dim] != f.size):
            break
    else:
        # Fast path: the distribution already has every plate's size at its dim, so it
        # needs no expanding; an observed value whose batch shape is exactly that passes
        # the checks below too.
        if (
            value is None
            or not is_poutine_validation_enabled()
            or not isinstance(value, torch.Tensor)
        ):
            return
        event_dim = len(getattr(fn, "event_shape", ()))
        if value.shape[: value.dim() - event_dim] == batch_shape:
            return
    frames = [f for f in msg["cond_indep_stack"] if f.dim is not None and f.size != -1]
    if not frames:
        return
    width = n
    for f in frames:
        if -f.dim > width:
            width = -f.dim
    target = [1] * (width - len(batch_shape)) + list(batch_shape)
    for f in frames:
        actual = target[f.dim]
        if actual != 1 and actual != f.size:
            raise ValueError(
                f"Shape mismatch inside plate({f.name!r}) at site {msg['name']!r} dim {f.dim}: "
                f"the distribution has batch_shape {tuple(batch_shape)}, size {actual} at dim "
                f"{f.dim}, but the plate has size {f.size}. Plates in scope: "
                f"{describe_plates(frames)}. Hint: make that dim of the parameters size 1 or "
                f"{f.size}, or move the plate to another dim (dim=...)."
            )
        target[f.dim] = f.size
    target = torch.Size(target)
    if is_poutine_validation_enabled() and isinstance(value, torch.Tensor):
        _check_value_shape(msg, fn, value, target, frames)
    if target != batch_shape:
        expanded = fn.expand(target)
        if expanded.has_rsample != fn.has_rsample:  # keep a has_rsample_() override
            expanded.has_rsample = fn.has_rsample
        msg["fn"] = expanded


def _check_value_shape(msg, fn, value, target, frames) -> None:
    """Raise when an observed ``value`` cannot broadcast with the plates' batch shape."""
    event_dim = len(getattr(fn, "event_shape", ()))
    vshape = value.shape[: value.dim() - event_dim]
    bad = None
    for f in frames:
        if -f.dim <= len(vshape) and vshape[f.dim] not in (1, f.size):
            bad = f
            break
    if bad is None:
        try:
            broadcast_shape(vshape, target)
        except ValueError:
            bad = frames[0]
    if bad is not None:
        raise ValueError(
            f"Shape mismatch at site {msg['name']!r}: value of shape "
            f"{tuple(value.shape)} (batch part {tuple(vshape)}, event_dim {event_dim}) "
            f"does not broadcast with the batch_shape {tuple(target)} required by the "
            f"plates in scope: {describe_plates(frames)}. Hint: the value's size at each "
            "plate dim must be 1 or the plate size (after subsampling); index the data "
            "with the plate's indices, or reshape it so the plate dims line up."
        )
