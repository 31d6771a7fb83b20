"""Nesterov's dual averaging, as used by Hoffman and Gelman to adapt an HMC step size."""

from __future__ import annotations

import math
from typing import Tuple

__all__ = ["DualAveraging"]


class DualAveraging:
    """Dual averaging (Nesterov 2009) for driving a statistic's mean to zero.

    Each :meth:`step` takes ``g``, the current value of the statistic (for step-size
    adaptation: target acceptance probability minus the observed one) and updates

    ``x_t = prox_center - sqrt(t) / gamma * mean(g)`` and the weighted average
    ``x_avg`` of the iterates with weights ``t ** -kappa``.

    :param float prox_center: the point iterates are shrunk towards.
    :param float t0: stabilizes the early iterations.
    :param float kappa: decay of the averaging weights, in (0.5, 1].
    :param float gamma: how strongly iterates are shrunk towards ``prox_center``.

    Example::

        >>> da = DualAveraging(prox_center=0.0)
        >>> da.step(0.5)
        >>> x_t, x_avg = da.get_state()
        >>> round(x_t, 4)
        -0.9091
    """

    def __init__(
        self, prox_center: float = 0.0, t0: float = 10, kappa: float = 0.75, gamma: float = 0.05
    ):
        self.prox_center = prox_center
        self.t0 = t0
        self.kappa = kappa
        self.gamma = gamma
        self.reset()

    def reset(self) -> None:
        """Restart the averaging from the proximal center."""
        self._x_avg = 0.0
        self._g_avg = 0.0
        self._t = 0
        self._x_t = self.prox_center

    def step(self, g) -> None:
        """Take one step given the statistic's current value ``g``."""
        self._t += 1
        t = self._t
        self._g_avg = (1 - 1 / (t + self.t0)) * self._g_avg + g / (t + self.t0)
        self._x_t = self.prox_center - math.sqrt(t) / self.gamma * self._g_avg
        weight = t ** (-self.kappa)
        self._x_avg = (1 - weight) * self._x_avg + weight * self._x_t

    def get_state(self) -> Tuple[float, float]:
        """``(x_t, x_avg)``: the latest iterate and the weighted average of iterates."""
        return self._x_t, self._x_avg
