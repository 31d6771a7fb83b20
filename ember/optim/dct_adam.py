"""DCTAdam: clipped Adam that also adapts step sizes in the frequency domain of time series.

A torch optimizer of its own. Each step first multiplies the group's learning
rate by ``lrd``, then, for every parameter ``p`` with gradient ``g``:

1. ``g`` is clipped elementwise to ``[-clip_norm, clip_norm]``;
2. if ``p`` has an attribute ``_pyro_dct_dim`` (a negative dim: the time
   axis of a time-series parameter, of length ``T``), ``g`` is augmented
   along that axis with its orthonormal DCT-II (of ``g`` zero-padded to
   ``next_fast_len(T)``): Adam's moments live on ``[g, dct(g)]``;
3. the moments are updated, ``m <- beta1 m + (1 - beta1) g`` and
   ``v <- beta2 v + (1 - beta2) g**2``;
4. the update ``u = m / (sqrt(v) + eps)`` (mapped back to the time domain as
   ``u_time + idct(u_freq)[:T]`` when augmented) is applied as
   ``p <- p - lr * sqrt(1 - beta2**t) / (1 - beta1**t) * u``.

With ``subsample_aware=True``, a parameter carrying ``_pyro_subsample`` (a
dict ``{dim: indices}`` recorded by a subsampled ``plate`` for a local
parameter) updates only the entries in the current subsample, with a step
count per entry; the other entries and their moments stay as they are.
"""

from __future__ import annotations

import math
from typing import Callable, Dict, Iterable, Tuple

import torch
from torch.nn.functional import pad
from torch.optim import Optimizer

from ember.ops.tensor_utils import dct, idct, next_fast_len
from ember.optim.step_util import check_adam_args, dense_grads, evaluate_closure

__all__ = ["DCTAdam", "moment_shape"]


def moment_shape(p: torch.Tensor) -> torch.Size:
    """The shape of the Adam moments of parameter ``p``: its own shape, with the time dim
    ``p._pyro_dct_dim`` (when set) extended by ``next_fast_len`` of its length.

    Example::

        >>> import torch
        >>> from ember.optim.dct_adam import moment_shape
        >>> p = torch.zeros(2, 7)
        >>> moment_shape(p)
        torch.Size([2, 7])
        >>> p._pyro_dct_dim = -1
        >>> moment_shape(p)
        torch.Size([2, 15])
    """
    dim = getattr(p, "_pyro_dct_dim", None)
    if dim is None or not -p.dim() <= dim < 0:
        return p.shape
    shape = list(p.shape)
    shape[dim] += next_fast_len(shape[dim])
    return torch.Size(shape)


def _augment(x: torch.Tensor, dim: int) -> torch.Tensor:
    """``[x, dct(x zero-padded to next_fast_len)]`` along ``dim``."""
    duration = x.size(dim)
    size = next_fast_len(duration)
    padded = x if size == duration else pad(x, (0, 0) * (-1 - dim) + (0, size - duration))
    return torch.cat([x, dct(padded, dim)], dim=dim)


def _reduce(u: torch.Tensor, dim: int, duration: int) -> torch.Tensor:
    """The adjoint of :func:`_augment`: ``u_time + idct(u_freq)[:duration]``."""
    time_part = u.narrow(dim, 0, duration)
    freq_part = u.narrow(dim, duration, u.size(dim) - duration)
    return time_part + idct(freq_part, dim).narrow(dim, 0, duration)


def _subsample_mask(shape: torch.Size, subsample: Dict[int, torch.Tensor], device) -> torch.Tensor:
    """Boolean mask of the entries whose index along every subsampled dim is selected."""
    mask = torch.ones(shape, dtype=torch.bool, device=device)
    for dim, indices in subsample.items():
        keep = torch.zeros(shape[dim], dtype=torch.bool, device=device)
        keep[indices.to(device)] = True
        view = [1] * len(shape)
        view[dim] = shape[dim]
        mask = mask & keep.reshape(view)
    return mask


class DCTAdam(Optimizer):
    """Clipped Adam with an optional frequency-domain copy of time-series parameters.

    See the module docstring for the update. Parameters without
    ``_pyro_dct_dim`` (or ``_pyro_subsample``) get plain clipped Adam.

    :param params: iterable of parameters, or dicts defining parameter groups.
    :param lr: learning rate (default 1e-3).
    :param betas: decay rates of the moment estimates (default ``(0.9, 0.999)``).
    :param eps: added to ``sqrt(v)`` (default 1e-8).
    :param clip_norm: gradients are clamped elementwise to ``[-clip_norm, clip_norm]``
        (default 10.0).
    :param lrd: the learning rate is multiplied by ``lrd`` at the start of every step
        (default 1.0).
    :param subsample_aware: update only the subsampled entries of local parameters
        (default False).

    Example::

        >>> import torch
        >>> from ember.optim.dct_adam import DCTAdam
        >>> x = torch.tensor([1.0, -2.0], requires_grad=True)
        >>> opt = DCTAdam([x], lr=0.1, clip_norm=1.0)
        >>> (100 * x).sum().backward()  # gradient 100, clipped to 1
        >>> opt.step()  # the first Adam step moves each entry by about lr
        >>> x.detach()
        tensor([ 0.9000, -2.1000])
    """

    def __init__(
        self,
        params: Iterable,
        lr: float = 1e-3,
        betas: Tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        clip_norm: float = 10.0,
        lrd: float = 1.0,
        subsample_aware: bool = False,
    ) -> None:
        check_adam_args("DCTAdam", lr, betas, eps, clip_norm, lrd)
        defaults = dict(
            lr=lr,
            betas=tuple(betas),
            eps=eps,
            clip_norm=clip_norm,
            lrd=lrd,
            subsample_aware=bool(subsample_aware),
        )
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:
        """Take one optimization step (parameters without a gradient are skipped).

        :param closure: optional callable that re-evaluates the model and returns the loss.
        :return: the closure's loss, or ``None``.
        """
        loss = evaluate_closure(closure)
        for group in self.param_groups:
            group["lr"] = group["lr"] * group["lrd"]
            for p, _ in dense_grads(group, "DCTAdam"):
                subsample = getattr(p, "_pyro_subsample", None)
                if subsample and group["subsample_aware"]:
                    self._step_subsample(group, p, subsample)
                else:
                    self._step_dense(group, p)
        return loss

    def _time_dim(self, p: torch.Tensor):
        time_dim = getattr(p, "_pyro_dct_dim", None)
        if time_dim is not None and not -p.dim() <= time_dim < 0:
            raise ValueError(
                f"DCTAdam: a parameter of shape {tuple(p.shape)} has _pyro_dct_dim={time_dim}; "
                "it must be a negative dim of the parameter"
            )
        return time_dim

    def _state(self, p: torch.Tensor, like: torch.Tensor) -> dict:
        state = self.state[p]
        if len(state) == 0:
            state["step"] = 0
            state["exp_avg"] = torch.zeros_like(like)
            state["exp_avg_sq"] = torch.zeros_like(like)
        return state

    def _step_dense(self, group: dict, p: torch.Tensor) -> None:
        clip = group["clip_norm"]
        g = p.grad.clamp(-clip, clip)
        time_dim = self._time_dim(p)
        if time_dim is not None:
            g = _augment(g, time_dim)
        state = self._state(p, g)
        beta1, beta2 = group["betas"]
        step = state["step"] + 1  # an int, or a tensor of per-entry counts (subsample steps)
        state["step"] = step
        exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
        exp_avg.mul_(beta1).add_(g, alpha=1 - beta1)
        exp_avg_sq.mul_(beta2).addcmul_(g, g, value=1 - beta2)
        update = exp_avg / exp_avg_sq.sqrt().add_(group["eps"])
        if isinstance(step, torch.Tensor):
            size = (1 - beta2**step).sqrt_().div_(1 - beta1**step).mul_(group["lr"])
            update = update.mul_(size)
            size = 1.0
        else:
            size = group["lr"] * math.sqrt(1 - beta2**step) / (1 - beta1**step)
        if time_dim is not None:
            update = _reduce(update, time_dim, p.size(time_dim))
        p.add_(update, alpha=-size)

    def _step_subsample(self, group: dict, p: torch.Tensor, subsample: dict) -> None:
        time_dim = self._time_dim(p)
        subsample = {d - p.dim() if d >= 0 else d: idx for d, idx in subsample.items()}
        if time_dim is not None and time_dim in subsample:
            raise ValueError(
                f"DCTAdam: the time dim {time_dim} of a parameter is subsampled; the DCT needs "
                "the whole time axis (do not subsample it, or set subsample_aware=False)"
            )
        clip = group["clip_norm"]
        mask = _subsample_mask(p.shape, subsample, p.device)
        sub_shape = list(p.shape)
        for d, indices in subsample.items():
            sub_shape[d] = len(torch.unique(indices))
        g = p.grad.masked_select(mask).reshape(sub_shape).clamp_(-clip, clip)
        if time_dim is not None:
            g = _augment(g, time_dim)
        full_like = p if time_dim is None else _augment(torch.zeros_like(p), time_dim)
        state = self._state(p, full_like)
        if not isinstance(state["step"], torch.Tensor):  # per-entry counts from now on
            state["step"] = torch.full_like(full_like, float(state["step"]))
        state_mask = mask
        if time_dim is not None:
            state_mask = _subsample_mask(full_like.shape, subsample, p.device)
        beta1, beta2 = group["betas"]
        step = state["step"].masked_select(state_mask).reshape(g.shape).add_(1)
        exp_avg = state["exp_avg"].masked_select(state_mask).reshape(g.shape)
        exp_avg_sq = state["exp_avg_sq"].masked_select(state_mask).reshape(g.shape)
        exp_avg.mul_(beta1).add_(g, alpha=1 - beta1)
        exp_avg_sq.mul_(beta2).addcmul_(g, g, value=1 - beta2)
        for key, value in (("step", step), ("exp_avg", exp_avg), ("exp_avg_sq", exp_avg_sq)):
            state[key].masked_scatter_(state_mask, value)
        size = (1 - beta2**step).sqrt_().div_(1 - beta1**step).mul_(group["lr"])
        update = exp_avg.div(exp_avg_sq.sqrt().add_(group["eps"])).mul_(size)
        if time_dim is not None:
            update = _reduce(update, time_dim, p.size(time_dim))
        new = p.masked_select(mask).reshape(update.shape).sub_(update)
        p.masked_scatter_(mask, new)
