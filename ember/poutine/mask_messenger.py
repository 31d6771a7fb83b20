"""MaskMessenger: zero the log-densities of sites where a mask is False."""

from __future__ import annotations

import torch

from ember.poutine.messenger import Messenger


class MaskMessenger(Messenger):
    """Mask the log-density of every site inside with ``mask`` (a bool or bool tensor).

    Nested masks combine with ``&``.

    Example::

        >>> import torch, ember, ember.distributions as dist
        >>> def model():
        ...     with ember.plate("d", 3):
        ...         ember.sample("x", dist.Normal(0.0, 1.0), obs=torch.zeros(3))
        >>> masked = ember.poutine.mask(model, mask=torch.tensor([True, False, True]))
        >>> tr = ember.poutine.trace(masked).get_trace(); tr.compute_log_prob()
        >>> tr.nodes["x"]["log_prob"]
        tensor([-0.9189,  0.0000, -0.9189])
    """

    def __init__(self, mask):
        super().__init__()
        if isinstance(mask, torch.Tensor):
            if mask.dtype != torch.bool:
                raise ValueError(
                    f"mask must be a bool tensor, got dtype {mask.dtype}; use mask.bool() or a "
                    "comparison such as x > 0"
                )
        elif not isinstance(mask, bool):
            raise TypeError(f"mask must be a bool or a bool tensor, got {type(mask).__name__}")
        self.mask = mask

    def _process_message(self, msg) -> None:
        old = msg["mask"]
        if old is None:
            msg["mask"] = self.mask
        elif self.mask is True:
            return
        elif old is True:
            msg["mask"] = self.mask
        elif self.mask is False or old is False:
            msg["mask"] = False
        else:
            msg["mask"] = self.mask & old
