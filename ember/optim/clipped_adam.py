"""ClippedAdam: Adam with elementwise gradient clipping and learning-rate decay.

A torch optimizer of its own (not a wrapper of ``torch.optim.Adam``). Each
step first multiplies the group's learning rate by ``lrd`` (as Pyro does, so
the ``t``-th step, counting from 1, uses ``lr * lrd**t``), then, for every
parameter ``p`` with a gradient ``g``:

1. ``g`` is clipped elementwise to ``[-clip_norm, clip_norm]``;
2. ``weight_decay * p`` is added to ``g`` (an L2 penalty);
3. the Adam moments are updated,
   ``m <- beta1 * m + (1 - beta1) * g`` and ``v <- beta2 * v + (1 - beta2) * g**2``;
4. ``p <- p - lr * m_hat / (sqrt(v_hat) + eps)`` with the bias-corrected moments
   ``m_hat = m / (1 - beta1**t)`` and ``v_hat = v / (1 - beta2**t)``
   (Kingma & Ba 2015, Algorithm 1).
"""

from __future__ import annotations

import math
from typing import Callable, Iterable, Tuple

import torch
from torch.optim import Optimizer

from ember.optim.step_util import check_adam_args, dense_grads, evaluate_closure

__all__ = ["ClippedAdam"]


class ClippedAdam(Optimizer):
    """Adam with gradients clipped elementwise and a learning rate that decays.

    :param params: iterable of parameters, or dicts defining parameter groups.
    :param lr: learning rate of the first step (default 1e-3).
    :param betas: decay rates of the running averages of the gradient and of its
        square (default ``(0.9, 0.999)``).
    :param eps: added to the denominator for numerical stability (default 1e-8).
    :param weight_decay: L2 penalty, added to the clipped gradient (default 0).
    :param clip_norm: gradients are clamped elementwise to ``[-clip_norm, clip_norm]``
        (default 10.0).
    :param lrd: the learning rate is multiplied by ``lrd`` at the start of every step
        (default 1.0: no decay).
    :param foreach: update all tensors of a group with torch's multi-tensor
        kernels (default ``None``: when every tensor of the group is on one
        device and is dense).

    Example::

        >>> import torch
        >>> from ember.optim.clipped_adam import ClippedAdam
        >>> x = torch.tensor([1.0, -2.0], requires_grad=True)
        >>> opt = ClippedAdam([x], lr=0.1, clip_norm=1.0, lrd=0.5)
        >>> (100 * x).sum().backward()  # gradient 100, clipped to 1
        >>> opt.step()  # lr decays to 0.05 first, then the step
        >>> x.detach()
        tensor([ 0.9500, -2.0500])
        >>> opt.param_groups[0]["lr"]
        0.05
    """

    def __init__(
        self,
        params: Iterable,
        lr: float = 1e-3,
        betas: Tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        clip_norm: float = 10.0,
        lrd: float = 1.0,
        foreach: bool | None = None,
    ):
        check_adam_args("ClippedAdam", lr, betas, eps, clip_norm, lrd)
        if not 0.0 <= weight_decay:
            raise ValueError(
                f"ClippedAdam: invalid weight_decay={weight_decay}; expected weight_decay >= 0"
            )
        defaults = dict(
            lr=lr,
            betas=tuple(betas),
            eps=eps,
            weight_decay=weight_decay,
            clip_norm=clip_norm,
            lrd=lrd,
            foreach=foreach,
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
            params, grads, exp_avgs, exp_avg_sqs, steps = [], [], [], [], []
            for p, grad in dense_grads(group, "ClippedAdam"):
                state = self.state[p]
                if len(state) == 0:
                    state["step"] = 0
                    state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                state["step"] = int(state["step"]) + 1
                params.append(p)
                grads.append(grad)
                exp_avgs.append(state["exp_avg"])
                exp_avg_sqs.append(state["exp_avg_sq"])
                steps.append(state["step"])
            if params:
                foreach = group.get("foreach")
                if foreach is None:
                    foreach = _can_use_foreach(params)
                update = _update_foreach if foreach else _update_loop
                update(params, grads, exp_avgs, exp_avg_sqs, steps, group)
        return loss


def _can_use_foreach(params) -> bool:
    device = params[0].device
    return all(p.device == device and not p.is_sparse for p in params)


def _step_sizes(steps, group):
    beta1, beta2 = group["betas"]
    lr = group["lr"]
    sizes, denom_scales = [], []
    for t in steps:
        bc1 = 1.0 - beta1**t
        bc2 = 1.0 - beta2**t
        sizes.append(lr / bc1)
        denom_scales.append(1.0 / math.sqrt(bc2))
    return sizes, denom_scales


def _update_loop(params, grads, exp_avgs, exp_avg_sqs, steps, group):
    beta1, beta2 = group["betas"]
    clip, wd, eps = group["clip_norm"], group["weight_decay"], group["eps"]
    sizes, denom_scales = _step_sizes(steps, group)
    for i, p in enumerate(params):
        g = grads[i].clamp(-clip, clip)
        if wd != 0:
            g = g.add(p, alpha=wd)
        exp_avgs[i].mul_(beta1).add_(g, alpha=1.0 - beta1)
        exp_avg_sqs[i].mul_(beta2).addcmul_(g, g, value=1.0 - beta2)
        denom = exp_avg_sqs[i].sqrt().mul_(denom_scales[i]).add_(eps)
        p.addcdiv_(exp_avgs[i], denom, value=-sizes[i])


def _update_foreach(params, grads, exp_avgs, exp_avg_sqs, steps, group):
    beta1, beta2 = group["betas"]
    clip, wd, eps = group["clip_norm"], group["weight_decay"], group["eps"]
    sizes, denom_scales = _step_sizes(steps, group)
    g = torch._foreach_clamp_min(grads, -clip)
    torch._foreach_clamp_max_(g, clip)
    if wd != 0:
        torch._foreach_add_(g, params, alpha=wd)
    torch._foreach_lerp_(exp_avgs, g, 1.0 - beta1)
    torch._foreach_mul_(exp_avg_sqs, beta2)
    torch._foreach_addcmul_(exp_avg_sqs, g, g, value=1.0 - beta2)
    denom = torch._foreach_sqrt(exp_avg_sqs)
    torch._foreach_mul_(denom, denom_scales)
    torch._foreach_add_(denom, eps)
    torch._foreach_addcdiv_(params, exp_avgs, denom, [-s for s in sizes])
