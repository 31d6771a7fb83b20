"""State-space form of univariate Matérn Gaussian processes.

A Matérn GP with smoothness ``nu = p + 1/2`` is the first coordinate of a linear
SDE ``dz = F z dt + L dW`` on the state ``z = (f, f', …, f^(p))``. Over a time
step ``dt`` the state evolves as ``z_new = z_old @ A`` with
``A = expm(F dt)^T`` and picks up Gaussian noise of covariance
``Q = P_inf - A^T P_inf A``, ``P_inf`` the stationary covariance.
"""

import math

import torch
from torch.nn.functional import softplus

__all__ = ["MaternKernel"]


def _inverse_softplus(y):
    return y + torch.log(-torch.expm1(-y))


class MaternKernel(torch.nn.Module):
    """Transition matrices and covariances of ``num_gps`` independent Matérn GPs in
    state-space form.

    ``length_scale`` and ``kernel_scale`` are positive, learnable vectors of length
    ``num_gps``: they are stored unconstrained (through softplus) as the
    :class:`torch.nn.Parameter` s ``length_scale_unconstrained`` and
    ``kernel_scale_unconstrained``, and may be assigned positive tensors directly.
    This is a plain :class:`torch.nn.Module` (the ops layer sits below
    :mod:`ember.nn`); use it inside an :class:`~ember.nn.PyroModule` or register it
    with ``ember.module`` to have its parameters in the param store.

    :param float nu: smoothness, one of 0.5, 1.5, 2.5 (state dimension 1, 2, 3).
    :param int num_gps: number of independent GPs.
    :param torch.Tensor length_scale_init: initial length scales, shape ``(num_gps,)``
        (default ones).
    :param torch.Tensor kernel_scale_init: initial kernel scales (standard
        deviations), shape ``(num_gps,)`` (default ones).

    Example::

        >>> mk = MaternKernel(nu=1.5, num_gps=1)
        >>> A, Q = mk.transition_matrix_and_covariance(0.5)
        >>> A.shape, Q.shape
        (torch.Size([1, 2, 2]), torch.Size([1, 2, 2]))
        >>> # the covariance of f between times 0.5 apart is the Matérn-3/2 kernel
        >>> P = mk.stationary_covariance()
        >>> k = (P @ A)[0, 0, 0].detach()
        >>> r = math.sqrt(3) * 0.5
        >>> round(float(k), 5) == round((1 + r) * math.exp(-r), 5)
        True
    """

    def __init__(self, nu=1.5, num_gps=1, length_scale_init=None, kernel_scale_init=None):
        if nu not in (0.5, 1.5, 2.5):
            raise NotImplementedError(
                f"The only supported values of nu are 0.5, 1.5 and 2.5, got {nu!r}"
            )
        if not isinstance(num_gps, int) or num_gps < 1:
            raise ValueError(f"num_gps must be a positive int, got {num_gps!r}")
        super().__init__()
        self.nu = nu
        self.state_dim = {0.5: 1, 1.5: 2, 2.5: 3}[nu]
        self.num_gps = num_gps
        if length_scale_init is None:
            length_scale_init = torch.ones(num_gps)
        if kernel_scale_init is None:
            kernel_scale_init = torch.ones(num_gps)
        self.length_scale_unconstrained = torch.nn.Parameter(
            self._unconstrain(length_scale_init, "length_scale_init")
        )
        self.kernel_scale_unconstrained = torch.nn.Parameter(
            self._unconstrain(kernel_scale_init, "kernel_scale_init")
        )

    def _unconstrain(self, value, name):
        value = torch.as_tensor(value, dtype=torch.get_default_dtype()).detach()
        if value.shape != (self.num_gps,):
            raise ValueError(
                f"{name} must have shape ({self.num_gps},) (one entry per GP), "
                f"got {tuple(value.shape)}"
            )
        if not bool((value > 0).all()):
            raise ValueError(f"{name} must be positive, got {value.tolist()}")
        return _inverse_softplus(value)

    @property
    def length_scale(self):
        """Positive length scales, shape ``(num_gps,)``."""
        return softplus(self.length_scale_unconstrained)

    @length_scale.setter
    def length_scale(self, value):
        with torch.no_grad():
            self.length_scale_unconstrained.copy_(self._unconstrain(value, "length_scale"))

    @property
    def kernel_scale(self):
        """Positive kernel scales (standard deviations), shape ``(num_gps,)``."""
        return softplus(self.kernel_scale_unconstrained)

    @kernel_scale.setter
    def kernel_scale(self, value):
        with torch.no_grad():
            self.kernel_scale_unconstrained.copy_(self._unconstrain(value, "kernel_scale"))

    def _rate(self):
        # lambda = sqrt(2 nu) / rho, shape (num_gps, 1, 1)
        return math.sqrt(2 * self.nu) / self.length_scale[:, None, None]

    def _drift(self):
        # companion matrix F of the SDE, shape (num_gps, d, d)
        lam = self._rate()[:, 0, 0]
        d = self.state_dim
        F = lam.new_zeros(self.num_gps, d, d)
        for i in range(d - 1):
            F[:, i, i + 1] = 1.0
        # last row: coefficients of (s + lambda)^d, negated
        for j in range(d):
            F[:, d - 1, j] = -math.comb(d, j) * lam ** (d - j)
        return F

    def transition_matrix(self, dt):
        """Transition matrices over a time step ``dt`` (a number or one-element
        tensor; negative ``dt`` runs backwards), shape ``(num_gps, d, d)`` laid out
        as ``(gp, old_state, new_state)``: states multiply from the right.
        """
        dt = torch.as_tensor(dt, dtype=self.length_scale_unconstrained.dtype)
        if dt.numel() != 1:
            raise ValueError(f"dt must be a number or a one-element tensor, got {tuple(dt.shape)}")
        dt = dt.reshape(())
        if self.state_dim == 1:
            return torch.exp(-dt * self._rate())
        # expm is evaluated in double precision: for large |dt| / length_scale the
        # entries span many orders of magnitude and single precision loses the
        # exact inverse relation A(dt) A(-dt) = I.
        F = self._drift()
        A = torch.linalg.matrix_exp(F.double() * dt.double())
        return A.to(F.dtype).transpose(-1, -2)

    def stationary_covariance(self):
        """Stationary covariance of the state, shape ``(num_gps, d, d)``."""
        sigma_sq = self.kernel_scale.pow(2)[:, None, None]
        if self.state_dim == 1:
            return sigma_sq
        lam2 = self._rate().pow(2)[:, 0, 0]
        d = self.state_dim
        P = lam2.new_zeros(self.num_gps, d, d)
        P[:, 0, 0] = 1.0
        if d == 2:
            P[:, 1, 1] = lam2
        else:
            P[:, 1, 1] = lam2 / 3
            P[:, 0, 2] = -lam2 / 3
            P[:, 2, 0] = -lam2 / 3
            P[:, 2, 2] = lam2.pow(2)
        return sigma_sq * P

    def process_covariance(self, A):
        """Process-noise covariance ``P_inf - A^T P_inf A`` for transition matrices
        ``A`` from :meth:`transition_matrix`, shape ``(num_gps, d, d)``."""
        if A.shape[-2:] != (self.state_dim, self.state_dim):
            raise ValueError(
                f"expected transition matrices of trailing shape ({self.state_dim}, "
                f"{self.state_dim}), got {tuple(A.shape)}"
            )
        P = self.stationary_covariance()
        return P - A.transpose(-1, -2) @ P @ A

    def transition_matrix_and_covariance(self, dt):
        """``(transition_matrix(dt), process_covariance(transition_matrix(dt)))``."""
        A = self.transition_matrix(dt)
        return A, self.process_covariance(A)
