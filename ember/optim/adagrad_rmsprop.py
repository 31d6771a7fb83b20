"""AdagradRMSProp: the step-size sequence of ADVI (Kucukelbir et al. 2017, Eqs. 10 and 11).

A torch optimizer of its own. For every parameter ``p`` with gradient ``g``,
at its ``t``-th step (counting from 1):

1. the running average of the squared gradient is ``s = g**2`` at ``t = 1``
   and ``s <- (1 - t_mom) * s + t_mom * g**2`` afterwards (``t_mom`` is the
   optimizer's ``t`` argument, a weight between 0 and 1);
2. the step size is ``rho = eta * t**(-1/2 + delta)``;
3. ``p <- p - rho * g / (1 + sqrt(s))``.
"""

from __future__ import annotations

from typing import Callable, Iterable

import torch
from torch.optim import Optimizer

from ember.optim.step_util import dense_grads, evaluate_closure

__all__ = ["AdagradRMSProp"]


class AdagradRMSProp(Optimizer):
    """A mash-up of Adagrad and RMSProp: the adaptive step size of ADVI.

    :param params: iterable of parameters, or dicts defining parameter groups.
    :param eta: scale of the step size (default 1.0).
    :param delta: the step size decays as ``t**(-1/2 + delta)`` (default 1e-16).
    :param t: weight of the newest squared gradient in the running average
        (default 0.1), in ``(0, 1]``.

    Example::

        >>> import torch
        >>> from ember.optim.adagrad_rmsprop import AdagradRMSProp
        >>> x = torch.tensor([1.0], requires_grad=True)
        >>> opt = AdagradRMSProp([x], eta=1.0, delta=0.0, t=0.5)
        >>> (3 * x).sum().backward()  # g = 3, s = 9
        >>> opt.step()
        >>> x.detach()  # 1 - 1 * 3 / (1 + 3)
        tensor([0.2500])
    """

    def __init__(
        self, params: Iterable, eta: float = 1.0, delta: float = 1.0e-16, t: float = 0.1
    ) -> None:
        if not eta >= 0.0:
            raise ValueError(f"AdagradRMSProp: invalid eta={eta}; expected eta >= 0")
        if not 0.0 < t <= 1.0:
            raise ValueError(f"AdagradRMSProp: invalid t={t}; expected 0 < t <= 1")
        if not delta < 0.5:
            raise ValueError(
                f"AdagradRMSProp: invalid delta={delta}; expected delta < 0.5 (the step size "
                "decays as step**(-1/2 + delta))"
            )
        super().__init__(params, dict(eta=eta, delta=delta, t=t))

    def share_memory(self) -> None:
        """Move the running averages to shared memory (for multi-process training)."""
        for state in self.state.values():
            if "sum" in state:
                state["sum"].share_memory_()

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:
        """Take one optimization step (parameters without a gradient are skipped).

        :param closure: optional callable that re-evaluates the model and returns the loss.
        :return: the closure's loss, or ``None``.
        """
        loss = evaluate_closure(closure)
        for group in self.param_groups:
            weight = group["t"]
            for p, g in dense_grads(group, "AdagradRMSProp"):
                state = self.state[p]
                step = int(state.get("step", 0)) + 1
                state["step"] = step
                if step == 1:
                    state["sum"] = g * g
                else:
                    state["sum"].mul_(1.0 - weight).addcmul_(g, g, value=weight)
                rho = group["eta"] * step ** (-0.5 + group["delta"])
                p.addcdiv_(g, state["sum"].sqrt().add_(1.0), value=-rho)
        return loss
