"""Special functions for the goodness-of-fit tests: the chi-squared survival function.

Example::

    >>> round(chi2sf(3.841458820694124, 1), 6)  # the 95% quantile of chi2(1)
    0.05
"""

import math

import torch

__all__ = ["chi2sf", "gammaincc"]


def gammaincc(a: float, x: float) -> float:
    """The regularized upper incomplete gamma function ``Q(a, x) = Gamma(a, x) / Gamma(a)``.

    Computed in double precision; ``Q(a, x) = 1`` for ``x <= 0``.

    Example::

        >>> round(gammaincc(1.0, 2.0), 12) == round(math.exp(-2.0), 12)  # Q(1, x) = exp(-x)
        True
    """
    a = float(a)
    x = float(x)
    if not a > 0:
        raise ValueError(f"gammaincc needs a shape a > 0, got a={a}")
    if math.isnan(x):
        return math.nan
    if x <= 0:
        return 1.0
    if math.isinf(x):
        return 0.0
    a_ = torch.tensor(a, dtype=torch.float64)
    x_ = torch.tensor(x, dtype=torch.float64)
    return float(torch.special.gammaincc(a_, x_))


def chi2sf(x: float, s: float) -> float:
    """Survival function ``P(X > x)`` of the chi-squared distribution with ``s`` degrees of freedom.

    ``P(X > x) = Q(s / 2, x / 2)`` with :func:`gammaincc`; 1 for ``x <= 0``.

    :param float x: the value of the statistic.
    :param float s: degrees of freedom (positive).
    :returns: the p-value, a float in [0, 1].

    Example::

        >>> round(chi2sf(2.0, 2), 12) == round(math.exp(-1.0), 12)  # chi2(2) is Exponential(1/2)
        True
    """
    if not s > 0:
        raise ValueError(f"chi2sf needs positive degrees of freedom, got s={s}")
    return gammaincc(0.5 * s, 0.5 * x)
