"""Gaussians whose precision is scaled by a shared Gamma variable, in information form.

A :class:`GammaGaussian` over ``n`` real variables ``x`` and a positive scale ``s``
is the log-density

    ``log_density(x, s) = log_normalizer + alpha log(s)
                          + s (x . info_vec - x' precision x / 2 - beta)``

Given ``s`` it is a Gaussian with precision ``s * precision``; integrating out
``x`` leaves a Gamma density in ``s`` (:meth:`GammaGaussian.event_logsumexp`
returns it as a :class:`Gamma`), and integrating out ``s`` too gives a
multivariate Student t. Sums, conditioning and integrating out some variables
stay in the family, as for :class:`~ember.ops.gaussian.Gaussian`; these are the
steps of ``GammaGaussianHMM`` (a Kalman filter with a Student-t noise scale).

Example::

    >>> import torch
    >>> from ember.ops.gamma_gaussian import GammaGaussian
    >>> g = GammaGaussian(torch.tensor(0.0), torch.zeros(1), torch.eye(1),
    ...                   torch.tensor(1.0), torch.tensor(2.0))
    >>> g.log_density(torch.zeros(1), torch.tensor(1.0))  # log(1) * 1 + 1 * (0 - 0 - 2)
    tensor(-2.)
"""

from __future__ import annotations

import math

import torch

from ember.ops.gaussian import (
    QuadraticForm,
    check_information_form,
    form_tensordot,
    sequential_form_tensordot,
)
from ember.ops.tensor_utils import precision_to_scale_tril

__all__ = [
    "Gamma",
    "GammaGaussian",
    "gamma_and_mvn_to_gamma_gaussian",
    "gamma_gaussian_tensordot",
    "matrix_and_mvn_to_gamma_gaussian",
    "register_compound_distribution",
    "scale_mvn",
    "sequential_gamma_gaussian_tensordot",
]

_LOG_2PI = math.log(2 * math.pi)

# The multivariate Student t class that GammaGaussian.compound() builds. The
# distributions layer (above this one) registers it when it is imported.
_COMPOUND = {}


def register_compound_distribution(cls) -> None:
    """Register the class ``cls(df, loc, scale_tril)`` (a multivariate Student t) that
    :meth:`GammaGaussian.compound` returns. ``ember.distributions`` registers its
    ``MultivariateStudentT`` when it is imported."""
    _COMPOUND["student_t"] = cls


class Gamma:
    """An unnormalized Gamma log-density: ``log_normalizer + (concentration - 1) log(s)
    - rate * s``."""

    def __init__(self, log_normalizer, concentration, rate):
        self.log_normalizer = log_normalizer
        self.concentration = concentration
        self.rate = rate

    def log_density(self, s: torch.Tensor) -> torch.Tensor:
        return self.log_normalizer + (self.concentration - 1) * s.log() - self.rate * s

    def logsumexp(self) -> torch.Tensor:
        """``log`` of the integral over ``s > 0``."""
        return (
            self.log_normalizer
            + torch.lgamma(self.concentration)
            - self.concentration * self.rate.log()
        )


def _matvec(m, v):
    return (m @ v.unsqueeze(-1)).squeeze(-1)


class GammaGaussian(QuadraticForm):
    """A batch of unnormalized Gamma-scaled Gaussian log-densities (see the module).

    :param log_normalizer: shape ``batch_shape``.
    :param info_vec: shape ``batch_shape + (n,)``.
    :param precision: shape ``batch_shape + (n, n)`` (positive semi-definite).
    :param alpha: the power of ``s``, shape ``batch_shape``.
    :param beta: the rate of ``s`` (beyond the quadratic), shape ``batch_shape``.
    """

    FIELDS = (
        ("log_normalizer", 0),
        ("info_vec", 1),
        ("precision", 2),
        ("alpha", 0),
        ("beta", 0),
    )

    def __init__(self, log_normalizer, info_vec, precision, alpha, beta):
        check_information_form(type(self).__name__, info_vec, precision)
        self.log_normalizer = log_normalizer
        self.info_vec = info_vec
        self.precision = precision
        self.alpha = alpha
        self.beta = beta

    def __add__(self, other):
        if isinstance(other, GammaGaussian):
            if other.dim() != self.dim():
                raise ValueError(
                    f"cannot add GammaGaussians over {self.dim()} and {other.dim()} variables"
                )
            return GammaGaussian(
                *(a + b for (a, _), (b, _) in zip(self._fields(), other._fields()))
            )
        if isinstance(other, (int, float, torch.Tensor)):
            return GammaGaussian(
                self.log_normalizer + other, self.info_vec, self.precision, self.alpha, self.beta
            )
        return NotImplemented

    __radd__ = __add__

    def log_density(self, value: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        """The log-density at ``value`` (shape ``... + (n,)``) and scale ``s``."""
        if value.size(-1) == 0:
            quad = value.new_zeros(value.shape[:-1])
        else:
            quad = (value * self.info_vec).sum(-1) - 0.5 * (
                _matvec(self.precision, value) * value
            ).sum(-1)
        return self.log_normalizer + self.alpha * s.log() + s * (quad - self.beta)

    def condition(self, value: torch.Tensor) -> GammaGaussian:
        """Fix the rightmost ``value.size(-1)`` variables at ``value``."""
        precision, info_l, linear, quadratic = self._condition_parts(value)
        beta = self.beta + 0.5 * quadratic - linear
        batch = torch.broadcast_shapes(
            beta.shape, self.log_normalizer.shape, self.alpha.shape, info_l.shape[:-1]
        )
        n = info_l.size(-1)
        return GammaGaussian(
            self.log_normalizer.expand(batch),
            info_l.expand(batch + (n,)),
            precision.expand(batch + (n, n)),
            self.alpha.expand(batch),
            beta.expand(batch),
        )

    def marginalize(self, left: int = 0, right: int = 0) -> GammaGaussian:
        """Integrate out the leftmost ``left`` or rightmost ``right`` variables."""
        if not (left or right):
            return self
        precision, info_vec, quad, half_log_det, m = self._marginal_parts(left, right)
        # int exp(s (x.b - x'Px/2)) dx = (2 pi)^(m/2) |P|^(-1/2) s^(-m/2) exp(s b'P^-1 b / 2)
        return GammaGaussian(
            self.log_normalizer + 0.5 * m * _LOG_2PI - half_log_det,
            info_vec,
            precision,
            self.alpha - 0.5 * m,
            self.beta - 0.5 * quad,
        )

    def compound_parameters(self):
        """``(df, loc, scale_tril)`` of the multivariate Student t left when ``s`` is
        integrated out (the form normalized over ``x`` and ``s``)."""
        concentration = self.alpha - 0.5 * self.dim() + 1
        scale_tril = precision_to_scale_tril(self.precision)
        u = (scale_tril.transpose(-1, -2) @ self.info_vec.unsqueeze(-1)).squeeze(-1)
        rate = self.beta - 0.5 * u.pow(2).sum(-1)
        loc = (scale_tril @ u.unsqueeze(-1)).squeeze(-1)
        scale_tril = scale_tril * (rate / concentration).sqrt()[..., None, None]
        return 2 * concentration, loc, scale_tril

    def compound(self):
        """Integrate out ``s``: the multivariate Student t distribution of ``x``."""
        cls = _COMPOUND.get("student_t")
        if cls is None:
            raise RuntimeError(
                "GammaGaussian.compound needs ember.distributions (import ember.distributions)"
            )
        return cls(*self.compound_parameters())

    def event_logsumexp(self) -> Gamma:
        """Integrate out every variable: the :class:`Gamma` density left in ``s``."""
        g = self.marginalize(left=self.dim()) if self.dim() else self
        return Gamma(g.log_normalizer, g.alpha + 1, g.beta)


def scale_mvn(mvn, s: torch.Tensor):
    """The multivariate normal of the same class as ``mvn`` with its precision
    multiplied by ``s`` (shape: the batch shape)."""
    return type(mvn)(mvn.loc, precision_matrix=mvn.precision_matrix * s[..., None, None])


def _mvn_precision_parts(mvn):
    precision = mvn.precision_matrix
    loc = mvn.loc
    n = loc.size(-1)
    info_vec = _matvec(precision, loc)
    half_log_det = -mvn.scale_tril.diagonal(dim1=-1, dim2=-2).log().sum(-1)
    return loc, precision, info_vec, half_log_det, n


def gamma_and_mvn_to_gamma_gaussian(gamma, mvn) -> GammaGaussian:
    """The joint log-density of ``s ~ gamma`` and ``x | s ~ MultivariateNormal(loc,
    precision = s * mvn.precision_matrix)``.

    :param gamma: a distribution with ``concentration`` and ``rate`` (a Gamma).
    :param mvn: a ``MultivariateNormal``.
    """
    loc, precision, info_vec, half_log_det, n = _mvn_precision_parts(mvn)
    conc, rate = gamma.concentration, gamma.rate
    log_normalizer = conc * rate.log() - torch.lgamma(conc) + half_log_det - 0.5 * n * _LOG_2PI
    alpha = conc - 1 + 0.5 * n
    beta = rate + 0.5 * (info_vec * loc).sum(-1)
    batch = torch.broadcast_shapes(
        log_normalizer.shape, alpha.shape, beta.shape, info_vec.shape[:-1], precision.shape[:-2]
    )
    return GammaGaussian(
        log_normalizer.expand(batch),
        info_vec.expand(batch + (n,)),
        precision.expand(batch + (n, n)),
        alpha.expand(batch),
        beta.expand(batch),
    )


def matrix_and_mvn_to_gamma_gaussian(matrix: torch.Tensor, mvn) -> GammaGaussian:
    """The log-density over ``(x, y)`` and ``s`` of ``y - x @ matrix ~
    MultivariateNormal(loc, precision = s * mvn.precision_matrix)``."""
    loc, precision, info_vec, half_log_det, y_dim = _mvn_precision_parts(mvn)
    x_dim = matrix.size(-2)
    if matrix.size(-1) != y_dim:
        raise ValueError(
            f"matrix of shape {tuple(matrix.shape)} maps to {matrix.size(-1)} variables but "
            f"the MultivariateNormal has {y_dim}"
        )
    eye = torch.eye(y_dim, dtype=matrix.dtype, device=matrix.device)
    A = torch.cat([-matrix, eye.expand(matrix.shape[:-2] + (y_dim, y_dim))], -2)
    joint_precision = A @ precision @ A.transpose(-1, -2)
    joint_info = _matvec(A, info_vec)
    log_normalizer = half_log_det - 0.5 * y_dim * _LOG_2PI
    beta = 0.5 * (info_vec * loc).sum(-1)
    batch = torch.broadcast_shapes(
        log_normalizer.shape, beta.shape, joint_info.shape[:-1], joint_precision.shape[:-2]
    )
    n = x_dim + y_dim
    return GammaGaussian(
        log_normalizer.expand(batch),
        joint_info.expand(batch + (n,)),
        joint_precision.expand(batch + (n, n)),
        log_normalizer.new_full(batch, 0.5 * y_dim),
        beta.expand(batch),
    )


def gamma_gaussian_tensordot(x: GammaGaussian, y: GammaGaussian, dims: int = 0):
    """Integrate out the ``dims`` variables shared by ``x`` (rightmost) and ``y``
    (leftmost); the scale ``s`` is shared, not integrated."""
    return form_tensordot(x, y, dims, "gamma_gaussian_tensordot")


def sequential_gamma_gaussian_tensordot(g: GammaGaussian) -> GammaGaussian:
    """Contract a chain of forms over ``(x_{t-1}, x_t)`` along the rightmost batch dim
    (time) in ``log2(T)`` rounds: the form over ``(x_0, x_T)``."""
    return sequential_form_tensordot(
        g, gamma_gaussian_tensordot, "sequential_gamma_gaussian_tensordot"
    )
