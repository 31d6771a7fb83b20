"""SubsampleMessenger: a plate that subsamples, and the distribution of its indices.

Example::

    >>> from ember.poutine.subsample_messenger import SubsampleMessenger
    >>> SubsampleMessenger.__name__
    'SubsampleMessenger'
"""

from __future__ import annotations

import numbers

import torch

from ember.distributions.distribution import Distribution
from ember.poutine.indep_messenger import IndepMessenger
from ember.poutine.runtime import HANDLER_STACK, apply_stack, new_message
from ember.util import is_poutine_validation_enabled

__all__ = ["SubsampleIndices", "SubsampleMessenger", "site_is_subsample"]

_EMPTY_SHAPE = torch.Size()


class _Subsample(Distribution):
    """Draws ``subsample_size`` distinct indices from ``range(size)`` (all when equal).

    The distribution of the index site a subsampled plate adds to a trace; its
    log-density is zero. Public as :data:`SubsampleIndices`; the class keeps
    Pyro's name because code written for Pyro recognises these sites by it.

    Example::

        >>> SubsampleIndices(10, 3).sample().shape
        torch.Size([3])
    """

    def __init__(self, size: int, subsample_size: int, device=None):
        self.size = size
        self.subsample_size = subsample_size
        self.device = device

    def sample(self, sample_shape=_EMPTY_SHAPE):
        if sample_shape:
            raise ValueError("a plate's subsample site cannot draw a sample_shape")
        if self.subsample_size >= self.size:
            return torch.arange(self.size, device=self.device)
        return torch.randperm(self.size, device=self.device)[: self.subsample_size]

    def log_prob(self, x):
        return torch.zeros((), device=x.device if isinstance(x, torch.Tensor) else None)


#: The distribution of a plate's subsample-index site (see :func:`site_is_subsample`).
SubsampleIndices = _Subsample


def site_is_subsample(site) -> bool:
    """Whether ``site`` (a message or trace site) is the index-drawing site a
    subsampled plate adds to a trace.

    Example::

        >>> import ember
        >>> def model():
        ...     with ember.plate("p", 5, subsample_size=2):
        ...         pass
        >>> tr = ember.poutine.trace(model).get_trace()
        >>> site_is_subsample(tr.nodes["p"])
        True
    """
    # (an exact type test: isinstance against a Distribution subclass goes through
    # ABCMeta, and this runs for every site of every trace an ELBO prunes)
    return site["type"] == "sample" and type(site["fn"]) is _Subsample


def _subsample_site(name, size, subsample_size, subsample, device):
    """Draw (or record) the subsample indices of a plate through the handler stack;
    returns ``(size, subsample_size, indices or None)``."""
    if size == -1:
        if subsample_size is not None or subsample is not None:
            raise ValueError(f"plate {name!r}: give size= when subsampling")
        return -1, -1, None
    if subsample_size is not None:
        if not isinstance(subsample_size, numbers.Integral) or subsample_size <= 0:
            raise ValueError(
                f"plate {name!r}: subsample_size must be a positive int, got {subsample_size!r}"
            )
        if isinstance(size, numbers.Integral) and subsample_size > size:
            raise ValueError(
                f"plate {name!r}: subsample_size={subsample_size} exceeds size={size}; "
                "use a subsample_size between 1 and size"
            )
    if subsample is not None:
        subsample = _checked_subsample(name, size, subsample, device)
    stack = HANDLER_STACK.get()
    if stack:
        fn = _Subsample(size, size if subsample_size is None else subsample_size, device)
        msg = new_message("sample", name, fn, (), None, subsample)
        apply_stack(msg, stack)
        subsample = msg["value"]
    elif subsample is None:
        if subsample_size is None or subsample_size == size:
            return size, size, None  # the indices are made only if asked for
        subsample = _Subsample(size, subsample_size, device).sample()
    n = subsample.shape[0] if isinstance(subsample, torch.Tensor) else len(subsample)
    if subsample_size is None:
        subsample_size = n
    elif subsample_size != n:
        raise ValueError(
            f"plate {name!r}: subsample_size does not match len(subsample), {subsample_size} vs "
            f"{n}. Did you use a different subsample_size in the model and the guide?"
        )
    return size, subsample_size, subsample


def _checked_subsample(name, size, subsample, device):
    """Check the subsample indices a user gave a plate; returns them as a tensor.

    The dtype and shape checks are free; the range check (``0 <= i < size``) reads
    the indices' minimum and maximum, a host sync, so it runs only with poutine
    validation on.
    """
    if not isinstance(subsample, torch.Tensor):
        if isinstance(subsample, (str, bytes)) or not hasattr(subsample, "__len__"):
            raise TypeError(
                f"plate {name!r}: subsample must be a 1-dim integer tensor of indices, got "
                f"{type(subsample).__name__} {subsample!r}"
            )
        try:
            subsample = torch.as_tensor(subsample, device=device)
        except (TypeError, ValueError, RuntimeError) as err:
            raise TypeError(
                f"plate {name!r}: subsample must be a 1-dim integer tensor of indices, could "
                f"not read {subsample!r} as one ({err})"
            ) from None
        if subsample.numel() == 0:
            subsample = subsample.long()
    if subsample.dtype == torch.bool or subsample.is_floating_point() or subsample.is_complex():
        raise TypeError(
            f"plate {name!r}: subsample indices must have an integer dtype, got "
            f"{subsample.dtype}. Hint: pass indices (e.g. torch.tensor([0, 5]) or "
            "mask.nonzero().squeeze(-1)), not a mask or float values"
        )
    if subsample.dim() != 1:
        raise ValueError(
            f"plate {name!r}: subsample must be a 1-dim tensor of indices, got shape "
            f"{tuple(subsample.shape)}. Hint: flatten it, e.g. subsample.reshape(-1)"
        )
    if not subsample.shape[0]:
        raise ValueError(
            f"plate {name!r}: subsample is empty; a subsampled plate needs at least one index "
            "(its log-densities are scaled by size / len(subsample)). Hint: skip the plate "
            "when there is no data"
        )
    if (
        is_poutine_validation_enabled()
        and isinstance(size, numbers.Integral)
        and not torch.jit.is_tracing()
    ):
        lo, hi = torch.aminmax(subsample)
        lo, hi = int(lo), int(hi)
        if lo < 0 or hi >= size:
            bad = lo if lo < 0 else hi
            raise ValueError(
                f"plate {name!r} of size {size}: subsample index {bad} is out of range; "
                f"indices must lie in [0, {size - 1}]. Hint: check the plate's size and the "
                "indices you pass as subsample="
            )
    return subsample


class SubsampleMessenger(IndepMessenger):
    """An :class:`IndepMessenger` that subsamples and scales log-densities by size/subsample_size.

    Example::

        >>> import ember
        >>> with SubsampleMessenger("data", 100, subsample_size=10) as idx:
        ...     idx.shape
        torch.Size([10])
    """

    def __init__(
        self,
        name: str,
        size: int | None = None,
        subsample_size: int | None = None,
        subsample=None,
        dim: int | None = None,
        use_cuda=None,
        device=None,
    ):
        if size is None and subsample is not None:
            size = len(subsample)
        if device is None and use_cuda:
            device = "cuda"
        super().__init__(name, size, dim, device)
        self.size, self.subsample_size, self._indices = _subsample_site(
            name, self.size, subsample_size, subsample, device
        )
        self._scaled = self.size != self.subsample_size
        self._scale_factor = self.size / self.subsample_size if self._scaled else 1.0

    @property
    def indices(self) -> torch.Tensor | None:
        if self._indices is None:
            if self.size == -1:
                return None  # a plate without a size only declares independence
            self._indices = torch.arange(int(self.size), device=self.device)
        return self._indices

    def _frame_size(self):
        return self.subsample_size

    def _process_message(self, msg) -> None:
        msg["cond_indep_stack"] = (self._frame,) + msg["cond_indep_stack"]
        if self._scaled:
            msg["scale"] = msg["scale"] * self._scale_factor

    def _subsample_value(self, msg) -> None:
        if self.dim is None:
            return
        event_dim = msg["kwargs"].get("event_dim")
        if event_dim is None:
            return
        value = msg["value"]
        dim = self.dim - event_dim
        shape = value.shape
        if len(shape) < -dim or shape[dim] == 1:
            return
        if shape[dim] != self.size:
            if is_poutine_validation_enabled():
                what = (
                    f"pyro.param (ember.param) {msg['name']!r} with event_dim={event_dim}"
                    if msg["type"] == "param"
                    else f"ember.subsample(..., event_dim={event_dim})"
                )
                raise ValueError(
                    f"Inside plate({self.name!r}, size={self.size}, dim={self.dim}) invalid shape "
                    f"of {what}: {tuple(shape)}; dim {dim} must have size 1 or the full plate "
                    f"size {self.size}. Hint: check event_dim and the plate's dim."
                )
            return
        if self.subsample_size < self.size:
            new_value = value.index_select(dim, self.indices)
            if msg["type"] == "param":
                unconstrained = getattr(value, "unconstrained", None)
                if unconstrained is not None:
                    new_value.unconstrained = unconstrained
                    # the subsample of this local parameter, for subsample-aware
                    # optimizers (ember.optim.DCTAdam): {dim: indices}
                    leaf = unconstrained()
                    if leaf is not None:
                        if "_pyro_subsample" not in leaf.__dict__:
                            leaf._pyro_subsample = {}
                        leaf._pyro_subsample[dim] = self.indices
            msg["value"] = new_value

    def _pyro_post_param(self, msg) -> None:
        self._subsample_value(msg)

    def _pyro_post_subsample(self, msg) -> None:
        self._subsample_value(msg)
