"""Unnormalized Gaussian densities in information form, and their algebra.

A :class:`Gaussian` over ``n`` real variables is the log-density

    ``log_density(x) = log_normalizer + x . info_vec - x' precision x / 2``

with a batch of independent such functions (``batch_shape``) and a positive
semi-definite ``precision``. Sums of Gaussians are Gaussians (add the
parameters); integrating out some of the variables (:meth:`Gaussian.marginalize`,
:func:`gaussian_tensordot`) and conditioning on them (:meth:`Gaussian.condition`)
are exact Schur-complement operations. These are the building blocks of the
Gaussian hidden Markov models (Kalman filtering in log depth with
:func:`sequential_gaussian_tensordot`, joint sampling of a whole chain with
:func:`sequential_gaussian_filter_sample`) and of ``AutoGaussian``.

Example::

    >>> import torch
    >>> from ember.ops.gaussian import Gaussian
    >>> g = Gaussian(torch.tensor(0.0), torch.tensor([1.0]), torch.tensor([[2.0]]))
    >>> g.log_density(torch.tensor([0.5]))  # 0.5 * 1 - 0.25 * 2 / 2 ... = 0.25
    tensor(0.2500)
"""

from __future__ import annotations

import math
import warnings
from typing import Sequence, Tuple

import torch
import torch.nn.functional as F

__all__ = [
    "AffineNormal",
    "Gaussian",
    "QuadraticForm",
    "check_information_form",
    "form_tensordot",
    "safe_cholesky",
    "gaussian_tensordot",
    "matrix_and_gaussian_to_gaussian",
    "matrix_and_mvn_to_gaussian",
    "mvn_to_gaussian",
    "sequential_form_tensordot",
    "sequential_gaussian_filter_sample",
    "sequential_gaussian_tensordot",
]

_LOG_2PI = math.log(2 * math.pi)
_EMPTY = torch.Size()


def _batch_shape(*tensors_and_event_dims) -> torch.Size:
    return torch.broadcast_shapes(*(t.shape[: t.dim() - e] for t, e in tensors_and_event_dims))


def _matvec(m: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    return (m @ v.unsqueeze(-1)).squeeze(-1)


def safe_cholesky(precision: torch.Tensor) -> torch.Tensor:
    """The lower Cholesky factor of ``precision``; where a matrix is not numerically
    positive definite, a jitter proportional to its mean diagonal is added (with a
    ``UserWarning`` "Singular matrix in cholesky").

    Example::

        >>> safe_cholesky(torch.tensor([[4.0, 2.0], [2.0, 2.0]]))
        tensor([[2., 0.],
                [1., 1.]])
    """
    if precision.size(-1) == 0:
        return precision
    chol, info = torch.linalg.cholesky_ex(precision)
    if bool((info != 0).any()):
        warnings.warn(
            "Singular matrix in cholesky: adding a jitter to the diagonal", UserWarning, 2
        )
        scale = precision.diagonal(dim1=-1, dim2=-2).abs().mean(-1).clamp(min=1e-30)
        eye = torch.eye(precision.size(-1), dtype=precision.dtype, device=precision.device)
        jitter = 1e-6 if precision.dtype == torch.float64 else 1e-4
        for _ in range(8):
            chol, info = torch.linalg.cholesky_ex(
                precision + (jitter * scale)[..., None, None] * eye
            )
            if not bool((info != 0).any()):
                break
            jitter *= 10
    return chol


def check_information_form(owner: str, info_vec: torch.Tensor, precision: torch.Tensor) -> None:
    """Raise ``ValueError`` unless ``info_vec`` (``... + (n,)``) and ``precision``
    (``... + (n, n)``) describe the same ``n`` variables."""
    if info_vec.dim() < 1 or precision.dim() < 2:
        raise ValueError(
            f"{owner}: info_vec needs an event dim and precision two, got shapes "
            f"{tuple(info_vec.shape)} and {tuple(precision.shape)}"
        )
    n = info_vec.size(-1)
    if precision.shape[-2:] != (n, n):
        raise ValueError(
            f"{owner}: precision of shape {tuple(precision.shape)} does not match an "
            f"info_vec of {n} variables"
        )


class QuadraticForm:
    """The batch structure shared by :class:`Gaussian` and
    :class:`~ember.ops.gamma_gaussian.GammaGaussian`: named tensors, each with a
    number of event dims (0 for per-batch scalars, 1 for ``info_vec``, 2 for
    ``precision``), that broadcast to one :attr:`batch_shape`. Subclasses list
    their fields in ``FIELDS`` (name, event dims) and take them as constructor
    arguments in that order."""

    FIELDS: Tuple[Tuple[str, int], ...] = ()

    def _fields(self):
        return [(getattr(self, name), event_dims) for name, event_dims in self.FIELDS]

    def dim(self) -> int:
        """The number of variables."""
        return self.info_vec.size(-1)

    @property
    def batch_shape(self) -> torch.Size:
        return _batch_shape(*self._fields())

    def expand(self, batch_shape):
        """The same form broadcast to ``batch_shape``."""
        batch_shape = torch.Size(batch_shape)
        return self._from_fields(
            [t.expand(batch_shape + t.shape[t.dim() - e :]) for t, e in self._fields()]
        )

    def reshape(self, batch_shape):
        """The form with its batch reshaped to ``batch_shape``."""
        batch_shape = torch.Size(batch_shape)
        full = self.expand(self.batch_shape)
        return self._from_fields(
            [t.reshape(batch_shape + t.shape[t.dim() - e :]) for t, e in full._fields()]
        )

    def __getitem__(self, index):
        """Index the batch dims (never the variables)."""
        full = self.expand(self.batch_shape)
        if not isinstance(index, tuple):
            index = (index,)
        return self._from_fields([t[index + (slice(None),) * e] for t, e in full._fields()])

    @classmethod
    def cat(cls, parts: Sequence, dim: int = 0):
        """Concatenate forms over the same variables along a batch dim."""
        parts = list(parts)
        if not parts:
            raise ValueError(f"{cls.__name__}.cat: no parts to concatenate")
        ndim = max(len(p.batch_shape) for p in parts)
        if dim >= 0:
            dim = dim - ndim
        if not -ndim <= dim < 0:
            raise ValueError(f"{cls.__name__}.cat: dim {dim} is not one of the {ndim} batch dims")

        def padded(shape):
            return (1,) * (ndim - len(shape)) + tuple(shape)

        # broadcast every batch dim except the one concatenated along
        others = [list(padded(p.batch_shape)) for p in parts]
        for o in others:
            o[dim] = 1
        shape = list(torch.broadcast_shapes(*map(tuple, others)))
        fields = []
        for p in parts:
            shape[dim] = padded(p.batch_shape)[dim]
            fields.append(p.expand(torch.Size(shape))._fields())
        return type(parts[0])._from_fields(
            [torch.cat([f[i][0] for f in fields], dim - f0[1]) for i, f0 in enumerate(fields[0])]
        )

    @classmethod
    def _from_fields(cls, tensors):
        return cls(*tensors)

    def _with_info(self, info_vec, precision):
        tensors = []
        for (t, _), (name, _) in zip(self._fields(), self.FIELDS):
            tensors.append(
                info_vec if name == "info_vec" else precision if name == "precision" else t
            )
        return self._from_fields(tensors)

    def event_pad(self, left: int = 0, right: int = 0):
        """Add ``left`` and ``right`` variables on which the density does not depend."""
        return self._with_info(
            F.pad(self.info_vec, (left, right)),
            F.pad(self.precision, (left, right, left, right)),
        )

    def event_permute(self, perm):
        """Reorder the variables: variable ``i`` of the result is ``perm[i]`` of this one."""
        perm = torch.as_tensor(perm, dtype=torch.long, device=self.info_vec.device)
        return self._with_info(self.info_vec[..., perm], self.precision[..., perm][..., perm, :])

    def _condition_parts(self, value: torch.Tensor):
        """For fixing the rightmost ``value.size(-1)`` variables at ``value``: the
        remaining precision and information vector, and the value's own terms
        ``value . info_r`` and ``value' P_rr value``."""
        k = value.size(-1)
        left = self.dim() - k
        if left < 0:
            raise ValueError(
                f"condition: {k} values for a {type(self).__name__} over {self.dim()} variables"
            )
        P_lr = self.precision[..., :left, left:]
        P_rr = self.precision[..., left:, left:]
        info_l = self.info_vec[..., :left] - _matvec(P_lr, value)
        linear = (value * self.info_vec[..., left:]).sum(-1)
        quadratic = (_matvec(P_rr, value) * value).sum(-1)
        return self.precision[..., :left, :left], info_l, linear, quadratic

    def _marginal_parts(self, left: int, right: int):
        """For integrating out the leftmost ``left`` or rightmost ``right`` variables
        (the Schur complement): the remaining precision and information vector,
        ``info_o' P_oo^-1 info_o``, ``log det(P_oo) / 2`` and the number integrated."""
        if left and right:
            raise ValueError("marginalize: give left or right, not both")
        n = self.dim()
        keep, out = (
            (slice(left, n), slice(0, left)) if left else (slice(0, n - right), slice(n - right, n))
        )
        P_ko = self.precision[..., keep, out]
        info_o = self.info_vec[..., out]
        chol = safe_cholesky(self.precision[..., out, out])
        # P_oo^-1 P_ok and P_oo^-1 info_o through the Cholesky factor
        solve = torch.cholesky_solve(
            torch.cat([P_ko.transpose(-1, -2), info_o.unsqueeze(-1)], -1), chol
        )
        precision = self.precision[..., keep, keep] - P_ko @ solve[..., :-1]
        info_vec = self.info_vec[..., keep] - _matvec(P_ko, solve[..., -1])
        quad = (info_o * solve[..., -1]).sum(-1)
        half_log_det = chol.diagonal(dim1=-1, dim2=-2).log().sum(-1)
        return precision, info_vec, quad, half_log_det, info_o.size(-1)


class Gaussian(QuadraticForm):
    """A batch of unnormalized Gaussian log-densities in information form.

    :param torch.Tensor log_normalizer: shape ``batch_shape``.
    :param torch.Tensor info_vec: shape ``batch_shape + (n,)``.
    :param torch.Tensor precision: shape ``batch_shape + (n, n)``, symmetric positive
        semi-definite.

    The three may broadcast against each other; :attr:`batch_shape` is their
    broadcast batch shape.
    """

    FIELDS = (("log_normalizer", 0), ("info_vec", 1), ("precision", 2))

    def __init__(
        self, log_normalizer: torch.Tensor, info_vec: torch.Tensor, precision: torch.Tensor
    ):
        check_information_form(type(self).__name__, info_vec, precision)
        self.log_normalizer = log_normalizer
        self.info_vec = info_vec
        self.precision = precision

    def __add__(self, other):
        """The sum of two log-densities over the same variables, or a constant added."""
        if isinstance(other, Gaussian):
            if other.dim() != self.dim():
                raise ValueError(
                    f"cannot add Gaussians over {self.dim()} and {other.dim()} variables"
                )
            return Gaussian(
                self.log_normalizer + other.log_normalizer,
                self.info_vec + other.info_vec,
                self.precision + other.precision,
            )
        if isinstance(other, (int, float, torch.Tensor)):
            return Gaussian(self.log_normalizer + other, self.info_vec, self.precision)
        if isinstance(other, AffineNormal):
            return self + other.to_gaussian()
        return NotImplemented

    __radd__ = __add__

    # ------------------------------------------------------------ values
    def log_density(self, value: torch.Tensor) -> torch.Tensor:
        """The (unnormalized) log-density at ``value`` (shape ``... + (n,)``)."""
        if value.size(-1) == 0:
            batch = torch.broadcast_shapes(value.shape[:-1], self.batch_shape)
            return self.log_normalizer.expand(batch)
        quad = (_matvec(self.precision, value) * value).sum(-1)
        return self.log_normalizer + (value * self.info_vec).sum(-1) - 0.5 * quad

    def event_logsumexp(self) -> torch.Tensor:
        """``log`` of the integral of ``exp(log_density)`` over all the variables
        (finite when the precision is positive definite)."""
        n = self.dim()
        if n == 0:
            return self.log_normalizer.expand(self.batch_shape)
        chol = safe_cholesky(self.precision)
        # info' P^-1 info via the triangular solve L y = info
        y = torch.linalg.solve_triangular(chol, self.info_vec.unsqueeze(-1), upper=False)
        quad = y.squeeze(-1).pow(2).sum(-1)
        half_log_det = chol.diagonal(dim1=-1, dim2=-2).log().sum(-1)
        return self.log_normalizer + 0.5 * quad + 0.5 * n * _LOG_2PI - half_log_det

    def rsample(self, sample_shape=_EMPTY, noise: torch.Tensor | None = None):
        """Draws of the normalized Gaussian (reparameterized): ``mean + L^-T noise``
        where ``L L' = precision``; ``noise`` (standard normal, shape
        ``sample_shape + batch_shape + (n,)``) may be given."""
        sample_shape = torch.Size(sample_shape)
        chol = safe_cholesky(self.precision)
        mean = torch.cholesky_solve(self.info_vec.unsqueeze(-1), chol).squeeze(-1)
        shape = sample_shape + self.batch_shape + (self.dim(),)
        if noise is None:
            noise = torch.randn(shape, dtype=self.info_vec.dtype, device=self.info_vec.device)
        offset = torch.linalg.solve_triangular(
            chol.transpose(-1, -2), noise.unsqueeze(-1), upper=True
        ).squeeze(-1)
        return (mean + offset).expand(shape)

    # ------------------------------------------------- conditioning, integrating
    def condition(self, value: torch.Tensor) -> Gaussian:
        """Fix the rightmost ``value.size(-1)`` variables at ``value``: a Gaussian over
        the others (batch shape: ``value``'s batch broadcast with this one's)."""
        precision, info_vec, linear, quadratic = self._condition_parts(value)
        log_normalizer = self.log_normalizer + linear - 0.5 * quadratic
        batch = log_normalizer.shape
        n = info_vec.size(-1)
        return Gaussian(
            log_normalizer, info_vec.expand(batch + (n,)), precision.expand(batch + (n, n))
        )

    def left_condition(self, value: torch.Tensor) -> Gaussian:
        """Fix the leftmost ``value.size(-1)`` variables at ``value``: a Gaussian over
        the others."""
        k = value.size(-1)
        n = self.dim()
        perm = list(range(k, n)) + list(range(k))
        return self.event_permute(perm).condition(value)

    def marginalize(self, left: int = 0, right: int = 0) -> Gaussian:
        """Integrate out the leftmost ``left`` or the rightmost ``right`` variables."""
        if not (left or right):
            return self
        precision, info_vec, quad, half_log_det, m = self._marginal_parts(left, right)
        log_normalizer = self.log_normalizer + 0.5 * quad + 0.5 * m * _LOG_2PI - half_log_det
        return Gaussian(log_normalizer, info_vec, precision)


class AffineNormal(QuadraticForm):
    """The lazy Gaussian over ``(x, y)`` of ``y ~ Normal(x @ matrix + loc, scale)``
    (independent coordinates): conditioning on ``y`` is cheap without forming the
    joint precision.

    :param matrix: shape ``batch_shape + (x_dim, y_dim)``.
    :param loc: shape ``batch_shape + (y_dim,)``.
    :param scale: shape ``batch_shape + (y_dim,)`` (positive).
    """

    FIELDS = (("matrix", 2), ("loc", 1), ("scale", 1))

    def __init__(self, matrix: torch.Tensor, loc: torch.Tensor, scale: torch.Tensor):
        self.matrix = matrix
        self.loc = loc
        self.scale = scale

    def dim(self) -> int:
        return self.matrix.size(-2) + self.matrix.size(-1)

    def condition(self, value: torch.Tensor) -> Gaussian:
        """Fix ``y`` at ``value``: the likelihood of ``x``, a :class:`Gaussian`."""
        if self.matrix.size(-2) == 0:
            log_prob = self._log_prob(value - self.loc)
            empty = log_prob.new_zeros(log_prob.shape + (0,))
            return Gaussian(log_prob, empty, empty.unsqueeze(-1))
        prec_diag = self.scale.pow(-2)
        weighted = self.matrix * prec_diag.unsqueeze(-2)  # M diag(p)
        precision = weighted @ self.matrix.transpose(-1, -2)
        resid = value - self.loc
        info_vec = _matvec(weighted, resid)
        batch = torch.broadcast_shapes(info_vec.shape[:-1], precision.shape[:-2])
        log_normalizer = self._log_prob(resid).expand(batch)
        n = info_vec.size(-1)
        return Gaussian(
            log_normalizer, info_vec.expand(batch + (n,)), precision.expand(batch + (n, n))
        )

    def _log_prob(self, resid: torch.Tensor) -> torch.Tensor:
        return (-0.5 * (resid / self.scale).pow(2) - self.scale.log() - 0.5 * _LOG_2PI).sum(-1)

    def left_condition(self, value: torch.Tensor) -> AffineNormal:
        """Fix ``x`` at ``value``: an :class:`AffineNormal` over ``y`` alone."""
        loc = self.loc + (value.unsqueeze(-2) @ self.matrix).squeeze(-2)
        matrix = self.matrix.new_zeros(loc.shape[:-1] + (0, self.matrix.size(-1)))
        return AffineNormal(matrix, loc, self.scale.expand(loc.shape))

    def rsample(self, sample_shape=_EMPTY, noise: torch.Tensor | None = None):
        """Draws of ``y`` (only once ``x`` has been fixed by :meth:`left_condition`)."""
        if self.matrix.size(-2) != 0:
            raise NotImplementedError(
                "AffineNormal.rsample draws y given x: call left_condition(x) first"
            )
        shape = torch.Size(sample_shape) + self.batch_shape + (self.loc.size(-1),)
        if noise is None:
            noise = torch.randn(shape, dtype=self.loc.dtype, device=self.loc.device)
        return self.loc + self.scale * noise

    def to_gaussian(self) -> Gaussian:
        """The equivalent :class:`Gaussian` over ``(x, y)``."""
        return matrix_and_mvn_to_gaussian(
            self.matrix, _DiagonalNormal(self.loc, self.scale), _force_dense=True
        )

    def event_pad(self, left: int = 0, right: int = 0) -> Gaussian:
        return self.to_gaussian().event_pad(left=left, right=right)

    def event_permute(self, perm) -> Gaussian:
        return self.to_gaussian().event_permute(perm)

    def marginalize(self, left: int = 0, right: int = 0) -> Gaussian:
        return self.to_gaussian().marginalize(left=left, right=right)

    def event_logsumexp(self) -> torch.Tensor:
        return self.to_gaussian().event_logsumexp()

    def log_density(self, value: torch.Tensor) -> torch.Tensor:
        return self.to_gaussian().log_density(value)

    def __add__(self, other):
        return self.to_gaussian() + other

    __radd__ = __add__


class _DiagonalNormal:
    """``loc`` and ``scale`` of independent normal coordinates (internal adapter)."""

    def __init__(self, loc, scale):
        self.loc = loc
        self.scale = scale


def _mvn_parts(mvn) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """``(loc, precision or None, scale or None)`` of a multivariate normal, or of a
    normal with independent coordinates (``Normal(...).to_event(1)``)."""
    if isinstance(mvn, _DiagonalNormal):
        return mvn.loc, None, mvn.scale
    if hasattr(mvn, "scale_tril") and hasattr(mvn, "precision_matrix"):
        return mvn.loc, mvn.precision_matrix, None
    base = getattr(mvn, "base_dist", None)
    if (
        base is not None
        and hasattr(base, "loc")
        and hasattr(base, "scale")
        and getattr(mvn, "reinterpreted_batch_ndims", 0) >= 1
    ):
        # the rightmost dim holds the variables; other event dims count as batch
        return base.loc, None, base.scale
    raise TypeError(
        f"expected a MultivariateNormal or a Normal(...).to_event(1), got {type(mvn).__name__}"
    )


def mvn_to_gaussian(mvn) -> Gaussian:
    """The normalized :class:`Gaussian` of a ``MultivariateNormal`` (or of a
    ``Normal(loc, scale).to_event(1)``): its ``log_density`` is the distribution's
    ``log_prob``. For ``Normal(...).to_event(k)`` with ``k > 1`` the variables are the
    rightmost dim and the other event dims become batch dims.

    Example::

        >>> import torch, ember.distributions as dist
        >>> mvn = dist.MultivariateNormal(torch.zeros(2), torch.eye(2))
        >>> g = mvn_to_gaussian(mvn)
        >>> bool(torch.isclose(g.log_density(torch.ones(2)), mvn.log_prob(torch.ones(2))))
        True
    """
    loc, precision, scale = _mvn_parts(mvn)
    n = loc.size(-1)
    if precision is None:
        prec_diag = scale.pow(-2).expand(loc.shape)
        precision = torch.diag_embed(prec_diag)
        half_log_det = -scale.log().expand(loc.shape).sum(-1)
    else:
        half_log_det = -mvn.scale_tril.diagonal(dim1=-1, dim2=-2).log().sum(-1)
    info_vec = _matvec(precision, loc)
    log_normalizer = -0.5 * (info_vec * loc).sum(-1) - 0.5 * n * _LOG_2PI + half_log_det
    batch = torch.broadcast_shapes(log_normalizer.shape, info_vec.shape[:-1], precision.shape[:-2])
    return Gaussian(
        log_normalizer.expand(batch),
        info_vec.expand(batch + (n,)),
        precision.expand(batch + (n, n)),
    )


def matrix_and_gaussian_to_gaussian(matrix: torch.Tensor, y_gaussian: Gaussian) -> Gaussian:
    """The :class:`Gaussian` over ``(x, y)`` of ``y_gaussian`` evaluated at ``y - x @ matrix``.

    :param matrix: shape ``batch_shape + (x_dim, y_dim)``.
    """
    x_dim, y_dim = matrix.shape[-2:]
    if y_gaussian.dim() != y_dim:
        raise ValueError(
            f"matrix of shape {tuple(matrix.shape)} maps to {y_dim} variables but the "
            f"Gaussian has {y_gaussian.dim()}"
        )
    eye = torch.eye(y_dim, dtype=matrix.dtype, device=matrix.device)
    # z = (x, y); the argument of y_gaussian is z @ A with A = [-matrix; I]
    A = torch.cat([-matrix, eye.expand(matrix.shape[:-2] + (y_dim, y_dim))], -2)
    precision = A @ y_gaussian.precision @ A.transpose(-1, -2)
    info_vec = _matvec(A, y_gaussian.info_vec)
    return Gaussian(y_gaussian.log_normalizer, info_vec, precision)


def matrix_and_mvn_to_gaussian(matrix: torch.Tensor, mvn, _force_dense: bool = False):
    """The joint log-density over ``(x, y)`` of ``y - x @ matrix ~ mvn``.

    For a normal with independent coordinates (``Normal(loc, scale).to_event(1)``)
    the result is a lazy :class:`AffineNormal`; for a ``MultivariateNormal`` a
    :class:`Gaussian`.
    """
    loc, precision, scale = _mvn_parts(mvn)
    if precision is None and not _force_dense:
        return AffineNormal(matrix, loc, scale)
    return matrix_and_gaussian_to_gaussian(matrix, mvn_to_gaussian(mvn))


def form_tensordot(x: QuadraticForm, y: QuadraticForm, dims: int, owner: str):
    """Integrate out the ``dims`` variables shared by the forms ``x`` (its rightmost)
    and ``y`` (its leftmost): pad both to ``(a, b, c)``, add, move ``b`` last and
    marginalize it. The one contraction behind :func:`gaussian_tensordot` and
    ``gamma_gaussian_tensordot``."""
    na, nc = x.dim() - dims, y.dim() - dims
    if na < 0 or nc < 0:
        raise ValueError(
            f"{owner}: cannot contract {dims} variables of forms over {x.dim()} and {y.dim()}"
        )
    joint = x.event_pad(right=nc) + y.event_pad(left=na)
    if dims == 0:
        return joint
    perm = list(range(na)) + list(range(na + dims, na + dims + nc)) + list(range(na, na + dims))
    return joint.event_permute(perm).marginalize(right=dims)


def sequential_form_tensordot(form: QuadraticForm, tensordot, owner: str):
    """Contract a chain of forms over ``(x_{t-1}, x_t)`` along the rightmost batch dim
    (time) with ``tensordot(x, y, state_dim)``, in ``log2(T)`` rounds of pairwise
    contractions: the form over ``(x_0, x_T)``."""
    if form.dim() % 2:
        raise ValueError(
            f"{owner}: needs an even number of variables (x_prev, x_curr), got {form.dim()}"
        )
    state_dim = form.dim() // 2
    while form.batch_shape[-1] > 1:
        T = form.batch_shape[-1]
        even = T - T % 2
        contracted = tensordot(form[..., 0:even:2], form[..., 1:even:2], state_dim)
        if T % 2:
            contracted = type(contracted).cat([contracted, form[..., T - 1 : T]], dim=-1)
        form = contracted
    return form[..., 0]


def gaussian_tensordot(x: Gaussian, y: Gaussian, dims: int = 0) -> Gaussian:
    """Integrate out the ``dims`` variables shared by ``x`` (its rightmost) and ``y``
    (its leftmost): ``log int exp(x(a, b) + y(b, c)) db``, a Gaussian over ``(a, c)``."""
    if isinstance(x, AffineNormal):
        x = x.to_gaussian()
    if isinstance(y, AffineNormal):
        y = y.to_gaussian()
    return form_tensordot(x, y, dims, "gaussian_tensordot")


def sequential_gaussian_tensordot(gaussian: Gaussian) -> Gaussian:
    """Contract a chain of Gaussians over ``(x_{t-1}, x_t)`` along the rightmost batch
    dim (time): the Gaussian over ``(x_0, x_T)`` with every state between integrated
    out, in ``log2(T)`` rounds of pairwise contractions."""
    if isinstance(gaussian, AffineNormal):
        gaussian = gaussian.to_gaussian()
    return sequential_form_tensordot(gaussian, gaussian_tensordot, "sequential_gaussian_tensordot")


def sequential_gaussian_filter_sample(
    init: Gaussian,
    trans: Gaussian,
    sample_shape=_EMPTY,
    noise: torch.Tensor | None = None,
) -> torch.Tensor:
    """Draw whole chains ``x_0, ..., x_T`` from the normalized joint density
    ``init(x_0) + sum_t trans_t(x_{t-1}, x_t)`` (reparameterized).

    The chain is contracted pairwise in ``log2(T)`` rounds down to the pair
    ``(x_0, x_T)``, which is drawn jointly; each round is then undone, drawing the
    states it integrated out given their already-drawn neighbours. The draw is an
    affine function of the standard normal ``noise`` (shape ``sample_shape +
    batch_shape + (T + 1, state_dim)``), which may be given (e.g. antithetic).

    :param init: Gaussian over ``state_dim`` variables, batch ``batch_shape``.
    :param trans: Gaussian over ``2 * state_dim`` variables, batch ``batch_shape + (T,)``.
    :return: shape ``sample_shape + batch_shape + (T + 1, state_dim)``.
    """
    if isinstance(trans, AffineNormal):
        trans = trans.to_gaussian()
    state_dim = init.dim()
    if trans.dim() != 2 * state_dim:
        raise ValueError(
            f"sequential_gaussian_filter_sample: trans must be over {2 * state_dim} variables "
            f"(x_prev, x_curr) for an init over {state_dim}, got {trans.dim()}"
        )
    sample_shape = torch.Size(sample_shape)
    T = trans.batch_shape[-1]
    batch_shape = torch.broadcast_shapes(init.batch_shape, trans.batch_shape[:-1])
    trans = trans.expand(batch_shape + (T,))
    init = init.expand(batch_shape)
    shape = sample_shape + batch_shape + (T + 1, state_dim)
    if noise is None:
        noise = torch.randn(shape, dtype=trans.info_vec.dtype, device=trans.info_vec.device)
    elif noise.shape != shape:
        raise ValueError(
            f"sequential_gaussian_filter_sample: noise must have shape {tuple(shape)}, got "
            f"{tuple(noise.shape)}"
        )
    # the first factor absorbs the initial density
    first = trans[..., :1] + init.event_pad(right=state_dim)[..., None]
    factors = Gaussian.cat([first, trans[..., 1:]], dim=-1) if T > 1 else first
    # times[k]: the time indices (into 0..T) of each factor's two ends, per level
    times = torch.arange(T + 1, device=noise.device)
    levels = []
    ends = torch.stack([times[:-1], times[1:]], -1)  # (T, 2)
    while factors.batch_shape[-1] > 1:
        n = factors.batch_shape[-1]
        even = n - n % 2
        left, right = factors[..., 0:even:2], factors[..., 1:even:2]
        levels.append((left, right, ends[0:even:2], ends[1:even:2]))
        contracted = gaussian_tensordot(left, right, state_dim)
        new_ends = torch.stack([ends[0:even:2, 0], ends[1:even:2, 1]], -1)
        if n % 2:
            contracted = Gaussian.cat([contracted, factors[..., n - 1 : n]], dim=-1)
            new_ends = torch.cat([new_ends, ends[n - 1 :]], 0)
        factors, ends = contracted, new_ends
    # draw (x_0, x_T) jointly
    root = factors[..., 0]
    root_noise = torch.cat([noise[..., 0, :], noise[..., T, :]], -1)
    pair = root.rsample(sample_shape, noise=root_noise)
    x = noise.new_zeros(shape)
    x = x.index_copy(
        -2,
        torch.tensor([0, T], device=noise.device),
        torch.stack([pair[..., :state_dim], pair[..., state_dim:]], -2),
    )
    # undo the rounds: draw each middle state given its two neighbours
    for left, right, left_ends, right_ends in reversed(levels):
        mids = left_ends[:, 1]
        a = x.index_select(-2, left_ends[:, 0])  # (..., k, state_dim)
        b = x.index_select(-2, right_ends[:, 1])
        # the density of the middle given both ends: left(a, m) + right(m, b)
        conditional = left.left_condition(a) + right.condition(b)
        m = conditional.rsample((), noise=noise.index_select(-2, mids))
        x = x.index_copy(-2, mids, m)
    return x
