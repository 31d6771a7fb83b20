"""Ember wrappers of every ``torch.distributions`` class.

Each wrapper inherits from the torch class and from
:class:`~ember.distributions.torch_distribution.TorchDistributionMixin`.
Classes with enhancements are written out below (conjugate updates, fast or
numerically stable log-densities, approximate samplers, shape inference, and
the families ember implements itself: :class:`InverseGamma`, and
:class:`~ember.distributions.von_mises.VonMises` imported from its module);
every other distribution class of ``torch.distributions`` is generated at
import time, so the set of wrappers follows torch's.

A wrapper either keeps torch's constructor or builds itself with the helpers
of :mod:`ember.distributions.validation` (:func:`broadcast_init`,
:func:`quiet_init`, ending in :func:`finish_init`); a wrapper with its own
constructor gets its ``expand`` from :func:`wrapper_expand`, installed by
:func:`finish_wrapper` unless the class writes it out.
"""

from __future__ import annotations

import math
import numbers

import torch
import torch.nn.functional as F
from torch.distributions import constraints
from torch.distributions.transforms import ExpTransform, PowerTransform
from torch.distributions.utils import broadcast_all

from ember import settings
from ember.distributions.constraints import lenient_corr_cholesky
from ember.distributions.torch_distribution import (  # noqa: F401  (Independent: a wrapper)
    Independent,
    TorchDistributionMixin,
)
from ember.distributions.util import (
    broadcast_params,
    broadcast_shape,
    is_broadcast_failure,
    log_binomial,
    parameter_shape_error,
)
from ember.distributions.validation import (
    broadcast_init,
    check_arguments,
    finish_init,
    finish_wrapper,
    is_validating,
    quiet_init,
    wrapper_expand,
)
from ember.distributions.von_mises import VonMises  # noqa: F401  (a wrapper, see __all__)

_EMPTY = torch.Size()
_NUMBER = (int, float)  # what torch's constructors treat as a Python number
_LOC_SCALE = ("loc", "scale")
_HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


def _vector_shapes(cls, vector_args=(), matrix_args=(), scalar_args=(), **arg_shapes):
    """Batch shape and event size of a distribution over vectors, from parameter shapes."""
    batch_shapes, sizes = [], []
    for name, shape in arg_shapes.items():
        shape = torch.Size(shape)
        if name in vector_args:
            ndim = 1
        elif name in matrix_args:
            ndim = 2
        elif name in scalar_args:
            ndim = 0
        else:
            known = sorted(set(vector_args) | set(matrix_args) | set(scalar_args))
            raise ValueError(
                f"{cls.__name__}.infer_shapes: unknown parameter {name!r}; parameters are {known}"
            )
        if len(shape) < ndim:
            raise ValueError(
                f"{cls.__name__}.infer_shapes: {name} needs at least {ndim} dims, "
                f"got shape {tuple(shape)}"
            )
        batch_shapes.append(shape[: len(shape) - ndim])
        if ndim:
            sizes.append(shape[-1])
    if not sizes:
        raise ValueError(
            f"{cls.__name__}.infer_shapes needs the shape of one of {list(vector_args)} "
            f"or {list(matrix_args)} to know the event size"
        )
    if any(s != sizes[0] for s in sizes):
        raise ValueError(
            f"{cls.__name__}.infer_shapes: event sizes disagree: "
            + ", ".join(f"{k}={tuple(v)}" for k, v in arg_shapes.items())
        )
    return broadcast_shape(*batch_shapes), sizes[0]


def _categorical_shapes(cls, probs, logits, **scalar_shapes):
    """``(batch_shape, (k,))`` of a distribution over ``k`` categories, from the shape of
    ``probs`` or ``logits`` (and of scalar parameters such as ``temperature``)."""
    params = {k: v for k, v in dict(probs=probs, logits=logits).items() if v is not None}
    batch_shape, k = _vector_shapes(
        cls, ("probs", "logits"), scalar_args=tuple(scalar_shapes), **params, **scalar_shapes
    )
    return batch_shape, torch.Size((k,))


def _require_same_family(self, other, family):
    if not isinstance(other, family):
        raise TypeError(
            f"{type(self).__name__}.conjugate_update needs a likelihood of the same family "
            f"({type(self).__name__}), got {type(other).__name__}; express the likelihood "
            "as a density over the same variable"
        )


def _log_beta_fn(concentration):
    """log of the multivariate Beta function along the rightmost dim."""
    return torch.lgamma(concentration).sum(-1) - torch.lgamma(concentration.sum(-1))


def _init_loc_scale(self, loc, scale, validate_args=None):
    """The constructor of the location-scale families (``Normal``, ``Cauchy``, ``Laplace``):
    torch's, made cheaper by :func:`broadcast_init` (a Normal is built at every sample
    site of many models)."""
    broadcast_init(self, validate_args, _LOC_SCALE, loc, scale)


class Normal(torch.distributions.Normal, TorchDistributionMixin):
    """Normal distribution with mean ``loc`` and standard deviation ``scale``.

    Example::

        >>> import torch, ember.distributions as dist
        >>> dist.Normal(0.0, 1.0).log_prob(torch.tensor(0.0))
        tensor(-0.9189)
    """

    __init__ = _init_loc_scale

    def log_prob(self, value):
        # torch's density, -(x - loc)**2 / (2 scale**2) - log(scale) - log(2 pi) / 2, as
        # -z**2 / 2 - (log(scale) + log(2 pi) / 2) with z = (x - loc) / scale: three passes
        # over the batch (and three autograd nodes) instead of six
        scale = self.scale
        if not isinstance(scale, torch.Tensor):
            return super().log_prob(value)
        if self._validate_args:
            self._validate_sample(value)
        z = (value - self.loc) / scale
        return torch.addcmul(-(scale.log() + _HALF_LOG_2PI), z, z, value=-0.5)


class Beta(torch.distributions.Beta, TorchDistributionMixin):
    """Beta distribution with concentrations ``concentration1`` (alpha), ``concentration0`` (beta).

    Example::

        >>> import torch, ember.distributions as dist
        >>> posterior, log_norm = dist.Beta(2.0, 5.0).conjugate_update(dist.Beta(10.0, 3.0))
        >>> posterior.concentration1, posterior.concentration0
        (tensor(11.), tensor(7.))
    """

    def __init__(self, concentration1, concentration0, validate_args=None):
        # torch's constructor, with one check of both concentrations instead of three (the
        # inner Dirichlet is never checked: any (x, 1 - x) with x in [0, 1] is in its support)
        if isinstance(concentration1, _NUMBER) and isinstance(concentration0, _NUMBER):
            c1 = c0 = None
            both = torch.tensor([float(concentration1), float(concentration0)])
        else:
            c1, c0 = broadcast_params(concentration1, concentration0)
            both = torch.stack([c1, c0], -1)
        self._dirichlet = torch.distributions.Dirichlet(both, validate_args=False)
        batch_shape = self._dirichlet.batch_shape
        torch.distributions.Distribution.__init__(self, batch_shape, validate_args=False)
        params = dict(
            concentration1=both[..., 0] if c1 is None else c1,
            concentration0=both[..., 1] if c0 is None else c0,
        )
        finish_init(self, validate_args, params)

    def conjugate_update(self, other):
        """Multiply this density by ``other``'s and renormalize.

        ``other`` is a likelihood written as a Beta density over the same
        variable. Returns ``(posterior, log_normalizer)`` with
        ``self.log_prob(x) + other.log_prob(x) == posterior.log_prob(x) + log_normalizer``
        for every ``x`` in (0, 1). The posterior has concentrations
        ``a1 + a2 - 1`` and ``b1 + b2 - 1``.
        """
        _require_same_family(self, other, torch.distributions.Beta)
        a = self.concentration1 + other.concentration1 - 1
        b = self.concentration0 + other.concentration0 - 1
        posterior = Beta(a, b)
        log_normalizer = (
            _log_beta_fn(torch.stack([a, b], -1))
            - _log_beta_fn(torch.stack([self.concentration1, self.concentration0], -1))
            - _log_beta_fn(torch.stack([other.concentration1, other.concentration0], -1))
        )
        return posterior, log_normalizer


class Dirichlet(torch.distributions.Dirichlet, TorchDistributionMixin):
    """Dirichlet distribution over the simplex with ``concentration`` of shape ``batch + (k,)``.

    Example::

        >>> import torch, ember.distributions as dist
        >>> dist.Dirichlet.infer_shapes(concentration=(2, 3))
        (torch.Size([2]), torch.Size([3]))
    """

    @classmethod
    def infer_shapes(cls, concentration):
        batch_shape, k = _vector_shapes(cls, ("concentration",), concentration=concentration)
        return batch_shape, torch.Size((k,))

    def conjugate_update(self, other):
        """Multiply by another Dirichlet density ``other`` and renormalize.

        Returns ``(posterior, log_normalizer)``: the posterior has concentration
        ``c1 + c2 - 1``, and ``self.log_prob(x) + other.log_prob(x) ==
        posterior.log_prob(x) + log_normalizer`` on the simplex.
        """
        _require_same_family(self, other, torch.distributions.Dirichlet)
        c = self.concentration + other.concentration - 1
        log_normalizer = (
            _log_beta_fn(c) - _log_beta_fn(self.concentration) - _log_beta_fn(other.concentration)
        )
        return Dirichlet(c), log_normalizer


class Gamma(torch.distributions.Gamma, TorchDistributionMixin):
    """Gamma distribution with shape ``concentration`` and ``rate``.

    Example::

        >>> import ember.distributions as dist
        >>> posterior, _ = dist.Gamma(2.0, 1.0).conjugate_update(dist.Gamma(3.0, 2.0))
        >>> posterior.concentration, posterior.rate
        (tensor(4.), tensor(3.))
    """

    def __init__(self, concentration, rate, validate_args=None):
        broadcast_init(self, validate_args, ("concentration", "rate"), concentration, rate)

    def conjugate_update(self, other):
        """Multiply by another Gamma density ``other`` and renormalize.

        Returns ``(posterior, log_normalizer)``: the posterior is
        ``Gamma(a1 + a2 - 1, b1 + b2)`` and ``self.log_prob(x) + other.log_prob(x)
        == posterior.log_prob(x) + log_normalizer`` for every ``x > 0``.
        """
        _require_same_family(self, other, torch.distributions.Gamma)
        a = self.concentration + other.concentration - 1
        b = self.rate + other.rate

        def log_z(alpha, beta):  # log of the Gamma density's normalizing constant
            return torch.lgamma(alpha) - alpha * beta.log()

        log_normalizer = (
            log_z(a, b)
            - log_z(self.concentration, self.rate)
            - log_z(other.concentration, other.rate)
        )
        return Gamma(a, b), log_normalizer


class Binomial(torch.distributions.Binomial, TorchDistributionMixin):
    """Binomial distribution with an optional fast approximate sampler and log-density.

    * ``approx_sample_thresh`` (class attribute, default ``inf``; setting
      ``"binomial_approx_sample_thresh"``): where ``total_count`` exceeds it,
      samples are approximate. With ``q = min(p, 1 - p)`` and variance
      ``v = n q (1 - q)``: if ``q < 0.01`` a Poisson(``n q``) draw clamped to
      ``[0, n]`` (its variance is within 1% of ``v``); else if ``v >= 10`` a
      Normal draw with a Cornish-Fisher skewness correction, rounded and
      clamped; else (few trials) an exact draw. The ``1 - p`` side is
      reflected as ``n - x``.
    * ``approx_log_prob_tol`` (default 0; setting
      ``"binomial_approx_log_prob_tol"``): when positive, the binomial
      coefficient uses a shifted Stirling series whose absolute error is below
      the tolerance.

    The log-density is ``k log sigmoid(l) + (n - k) log sigmoid(-l)`` in the
    logits ``l``, stable for extreme logits.

    Example::

        >>> import torch, ember.distributions as dist
        >>> dist.Binomial(10, probs=torch.tensor(0.5)).log_prob(torch.tensor(5.0))
        tensor(-1.4020)
    """

    approx_sample_thresh = math.inf
    approx_log_prob_tol = 0.0

    def __init__(self, total_count=1, probs=None, logits=None, validate_args=None):
        try:
            super().__init__(total_count, probs, logits, validate_args=validate_args)
        except RuntimeError as err:  # torch's broadcast of the parameters
            if not is_broadcast_failure(err):
                raise
            params = dict(total_count=total_count, probs=probs, logits=logits)
            raise parameter_shape_error(type(self).__name__, params) from None

    expand = wrapper_expand(torch.distributions.Binomial)

    def sample(self, sample_shape=_EMPTY):
        thresh = self.approx_sample_thresh
        if thresh == math.inf:
            return super().sample(sample_shape)
        shape = self.shape(sample_shape)
        with torch.no_grad():
            n = self.total_count.expand(shape)
            big = n > thresh
            if not bool(big.any()):
                return super().sample(sample_shape)
            approx = _approx_binomial(n, self.probs.expand(shape))
            if bool(big.all()):
                return approx
            return torch.where(big, approx, super().sample(sample_shape))

    def log_prob(self, value):
        if self._validate_args:
            self._validate_sample(value)
        n, logits = self.total_count, self.logits
        k = value
        log_comb = log_binomial(n, k, tol=self.approx_log_prob_tol)
        success = torch.where(k == 0, 0.0, k * F.logsigmoid(logits))
        failure = torch.where(n == k, 0.0, (n - k) * F.logsigmoid(-logits))
        return log_comb + success + failure


def _approx_binomial(n, p):
    """Approximate Binomial(n, p) draws; see :class:`Binomial` for the scheme."""
    flip = p > 0.5
    q = torch.where(flip, 1 - p, p)
    mean = n * q
    var = mean * (1 - q)
    use_poisson = q < 0.01  # Poisson(n q) has variance n q, within 1% of n q (1 - q)
    use_normal = ~use_poisson & (var >= 10)
    sd = var.sqrt()
    z = torch.randn_like(mean)
    skew = (1 - 2 * q) / sd.clamp(min=1e-12)  # Cornish-Fisher: match the third moment
    normal = (mean + sd * (z + skew * (z * z - 1) / 6)).round()
    x = torch.where(use_poisson, torch.poisson(mean), normal)
    use_exact = ~(use_poisson | use_normal)
    if bool(use_exact.any()):  # few trials and a sizeable q: exact draws are cheap here
        x = torch.where(use_exact, torch.binomial(n, q), x)
    x = torch.minimum(x.clamp(min=0), n)
    return torch.where(flip, n - x, x)


@settings.register("binomial_approx_sample_thresh", __name__, "Binomial.approx_sample_thresh")
def _validate_thresh(value):
    if not isinstance(value, numbers.Real) or not value > 0:
        raise ValueError(
            f"binomial_approx_sample_thresh must be a positive number (inf disables), got {value!r}"
        )


@settings.register("binomial_approx_log_prob_tol", __name__, "Binomial.approx_log_prob_tol")
def _validate_tol(value):
    if not isinstance(value, numbers.Real) or not value >= 0:
        raise ValueError(
            f"binomial_approx_log_prob_tol must be a number >= 0 (0 is exact), got {value!r}"
        )


class Categorical(torch.distributions.Categorical, TorchDistributionMixin):
    """Categorical distribution over ``{0, ..., k-1}``.

    Enumeration (:class:`~ember.poutine.enum_messenger.EnumMessenger`) reads the
    log-probabilities of a site's own support straight from ``logits``
    (:func:`ember.infer.enum_factors.support_log_prob`); :meth:`log_prob` itself
    always looks each value up.

    Example::

        >>> import torch, ember.distributions as dist
        >>> d = dist.Categorical(logits=torch.zeros(2, 3))
        >>> d.log_prob(d.enumerate_support(expand=False)).shape
        torch.Size([3, 2])
    """


class Geometric(torch.distributions.Geometric, TorchDistributionMixin):
    """Number of failures before the first success, with a numerically stable log-density.

    In logits ``l``: ``log p(k) = -k softplus(l) - softplus(-l)``; in probs it
    uses ``log1p``, exact for tiny ``p``.

    Example::

        >>> import torch, ember.distributions as dist
        >>> dist.Geometric(logits=torch.tensor(-50.0)).log_prob(torch.tensor(0.0))
        tensor(-50.)
    """

    def log_prob(self, value):
        if self._validate_args:
            self._validate_sample(value)
        if "probs" in self.__dict__:
            probs = self.probs
            return torch.special.xlog1py(value, -probs) + probs.log()
        logits = self.logits
        failures = torch.where(value == 0, 0.0, value * F.softplus(logits))
        return -failures - F.softplus(-logits)


class LogNormal(torch.distributions.LogNormal, TorchDistributionMixin):
    """``exp`` of an ember :class:`Normal` with ``loc`` and ``scale``.

    Example::

        >>> import ember.distributions as dist
        >>> type(dist.LogNormal(0.0, 1.0).base_dist).__module__
        'ember.distributions.torch'
    """

    def __init__(self, loc, scale, validate_args=None):
        base_dist = Normal(loc, scale, validate_args=False)  # checked once, below
        torch.distributions.TransformedDistribution.__init__(
            self, base_dist, ExpTransform(), validate_args=False
        )
        finish_init(self, validate_args)


class MultivariateNormal(torch.distributions.MultivariateNormal, TorchDistributionMixin):
    """Multivariate normal with one of ``covariance_matrix``, ``precision_matrix``, ``scale_tril``.

    Example::

        >>> import ember.distributions as dist
        >>> dist.MultivariateNormal.infer_shapes(loc=(3,), scale_tril=(5, 3, 3))
        (torch.Size([5]), torch.Size([3]))
    """

    @classmethod
    def infer_shapes(cls, loc, covariance_matrix=None, precision_matrix=None, scale_tril=None):
        mats = {
            k: v
            for k, v in dict(
                covariance_matrix=covariance_matrix,
                precision_matrix=precision_matrix,
                scale_tril=scale_tril,
            ).items()
            if v is not None
        }
        batch_shape, k = _vector_shapes(cls, ("loc",), tuple(mats), loc=loc, **mats)
        return batch_shape, torch.Size((k,))


class LowRankMultivariateNormal(
    torch.distributions.LowRankMultivariateNormal, TorchDistributionMixin
):
    """Normal with covariance ``cov_factor @ cov_factor.T + diag(cov_diag)``.

    Example::

        >>> import ember.distributions as dist
        >>> LRMVN = dist.LowRankMultivariateNormal
        >>> LRMVN.infer_shapes(loc=(4,), cov_factor=(2, 4, 1), cov_diag=(4,))
        (torch.Size([2]), torch.Size([4]))
    """

    __init__ = quiet_init(torch.distributions.LowRankMultivariateNormal)

    @classmethod
    def infer_shapes(cls, loc, cov_factor, cov_diag):
        cov_factor = torch.Size(cov_factor)
        if len(cov_factor) < 2:
            raise ValueError(
                f"{cls.__name__}.infer_shapes: cov_factor needs at least 2 dims, "
                f"got shape {tuple(cov_factor)}"
            )
        # cov_factor is (..., event, rank): measure it by its event dim
        factor_as_vector = cov_factor[:-2] + cov_factor[-2:-1]
        batch_shape, k = _vector_shapes(
            cls,
            ("loc", "cov_factor", "cov_diag"),
            loc=loc,
            cov_factor=factor_as_vector,
            cov_diag=cov_diag,
        )
        return batch_shape, torch.Size((k,))


class Multinomial(torch.distributions.Multinomial, TorchDistributionMixin):
    """Counts of ``total_count`` draws from a categorical with ``probs`` or ``logits``.

    Example::

        >>> import ember.distributions as dist
        >>> dist.Multinomial.infer_shapes(probs=(2, 5))
        (torch.Size([2]), torch.Size([5]))
    """

    __init__ = quiet_init(torch.distributions.Multinomial)

    @classmethod
    def infer_shapes(cls, total_count=None, probs=None, logits=None):
        return _categorical_shapes(cls, probs, logits)


class OneHotCategorical(torch.distributions.OneHotCategorical, TorchDistributionMixin):
    """One-hot vectors of a categorical with ``probs`` or ``logits``.

    Example::

        >>> import ember.distributions as dist
        >>> dist.OneHotCategorical.infer_shapes(logits=(3, 4))
        (torch.Size([3]), torch.Size([4]))
    """

    __init__ = quiet_init(torch.distributions.OneHotCategorical)

    @classmethod
    def infer_shapes(cls, probs=None, logits=None):
        return _categorical_shapes(cls, probs, logits)


class OneHotCategoricalStraightThrough(
    torch.distributions.OneHotCategoricalStraightThrough, TorchDistributionMixin
):
    """One-hot categorical whose ``rsample`` passes gradients straight through.

    Example::

        >>> import ember.distributions as dist
        >>> dist.OneHotCategoricalStraightThrough.infer_shapes(probs=(3,))
        (torch.Size([]), torch.Size([3]))
    """

    infer_shapes = OneHotCategorical.__dict__["infer_shapes"]
    __init__ = quiet_init(torch.distributions.OneHotCategoricalStraightThrough)


class RelaxedBernoulli(torch.distributions.RelaxedBernoulli, TorchDistributionMixin):
    """Relaxed Bernoulli on (0, 1); ``temperature`` may be a Python number and is validated.

    Example::

        >>> import torch, ember.distributions as dist
        >>> dist.RelaxedBernoulli(0.5, probs=0.3).sample((4,)).shape
        torch.Size([4])
    """

    arg_constraints = dict(
        torch.distributions.RelaxedBernoulli.arg_constraints, temperature=constraints.positive
    )

    __init__ = quiet_init(torch.distributions.RelaxedBernoulli, tensor_args=("temperature",))


class RelaxedOneHotCategorical(
    torch.distributions.RelaxedOneHotCategorical, TorchDistributionMixin
):
    """Relaxed one-hot categorical on the simplex; ``temperature`` may be a Python number.

    ``temperature`` is validated like the other parameters.

    Example::

        >>> import torch, ember.distributions as dist
        >>> dist.RelaxedOneHotCategorical(0.5, probs=torch.ones(3) / 3).sample().shape
        torch.Size([3])
    """

    arg_constraints = dict(
        torch.distributions.RelaxedOneHotCategorical.arg_constraints,
        temperature=constraints.positive,
    )

    __init__ = quiet_init(
        torch.distributions.RelaxedOneHotCategorical, tensor_args=("temperature",)
    )

    @classmethod
    def infer_shapes(cls, temperature=(), probs=None, logits=None):
        return _categorical_shapes(cls, probs, logits, temperature=temperature)


class LogisticNormal(torch.distributions.LogisticNormal, TorchDistributionMixin):
    """Logistic-normal on the simplex: parameters of size ``k - 1`` give events of size ``k``.

    Example::

        >>> import ember.distributions as dist
        >>> dist.LogisticNormal.infer_shapes(loc=(2, 3), scale=(3,))
        (torch.Size([2]), torch.Size([4]))
    """

    __init__ = quiet_init(torch.distributions.LogisticNormal)

    @classmethod
    def infer_shapes(cls, loc, scale):
        batch_shape, k = _vector_shapes(cls, ("loc", "scale"), loc=loc, scale=scale)
        return batch_shape, torch.Size((k + 1,))


class Wishart(torch.distributions.Wishart, TorchDistributionMixin):
    """Wishart over positive definite matrices, with ``df`` and one matrix parameter.

    Example::

        >>> import ember.distributions as dist
        >>> dist.Wishart.infer_shapes(df=(2,), covariance_matrix=(3, 3))
        (torch.Size([2]), torch.Size([3, 3]))
    """

    @classmethod
    def infer_shapes(cls, df, covariance_matrix=None, precision_matrix=None, scale_tril=None):
        mats = {
            k: v
            for k, v in dict(
                covariance_matrix=covariance_matrix,
                precision_matrix=precision_matrix,
                scale_tril=scale_tril,
            ).items()
            if v is not None
        }
        batch_shape, k = _vector_shapes(cls, (), tuple(mats), ("df",), df=df, **mats)
        return batch_shape, torch.Size((k, k))


class Poisson(torch.distributions.Poisson, TorchDistributionMixin):
    """Poisson with ``rate``; ``is_sparse=True`` scores mostly-zero counts faster.

    With ``is_sparse`` the log-density is ``-rate`` everywhere and the count
    terms are computed only where the value is nonzero (this looks at the
    value, so it syncs with the device once per call).

    Example::

        >>> import torch, ember.distributions as dist
        >>> counts = torch.zeros(1000); counts[42] = 3.0
        >>> d = dist.Poisson(rate=torch.tensor(0.01), is_sparse=True)
        >>> torch.allclose(d.log_prob(counts), dist.Poisson(torch.tensor(0.01)).log_prob(counts))
        True
    """

    def __init__(self, rate, *, is_sparse: bool = False, validate_args=None):
        self.is_sparse = is_sparse
        broadcast_init(self, validate_args, ("rate",), rate)

    expand = wrapper_expand(torch.distributions.Poisson, keep=("is_sparse",))

    def log_prob(self, value):
        if not self.is_sparse:
            return super().log_prob(value)
        if self._validate_args:
            self._validate_sample(value)
        rate, value = broadcast_all(self.rate, value)
        log_prob = -rate
        nonzero = value != 0
        if bool(nonzero.any()):
            v, r = value[nonzero], rate[nonzero]
            terms = v * r.log() - torch.lgamma(v + 1)
            log_prob = log_prob.index_put((nonzero,), log_prob[nonzero] + terms)
        return log_prob


class Uniform(torch.distributions.Uniform, TorchDistributionMixin):
    """Uniform on ``[low, high)``; ``support`` keeps ``low``/``high`` as given (unbroadcast).

    Example::

        >>> import torch, ember.distributions as dist
        >>> dist.Uniform(0.0, 1.0).expand((3,)).support
        Interval(lower_bound=0.0, upper_bound=1.0)
    """

    def __init__(self, low, high, validate_args=None):
        self._unbroadcasted_low = low
        self._unbroadcasted_high = high
        super().__init__(low, high, validate_args=validate_args)

    expand = wrapper_expand(
        torch.distributions.Uniform, keep=("_unbroadcasted_low", "_unbroadcasted_high")
    )

    @constraints.dependent_property(is_discrete=False, event_dim=0)
    def support(self):
        return constraints.interval(self._unbroadcasted_low, self._unbroadcasted_high)

    @classmethod
    def infer_shapes(cls, low, high):
        return broadcast_shape(low, high), _EMPTY


class GeneralizedPareto(torch.distributions.GeneralizedPareto, TorchDistributionMixin):
    """Generalized Pareto with ``loc``, ``scale``, ``concentration``, for any float dtype.

    (torch's own log-density compares ``concentration`` with a float32 zero and
    fails for float64 parameters; these methods take the parameters' dtype.)

    Example::

        >>> import torch, ember.distributions as dist
        >>> d = dist.GeneralizedPareto(torch.tensor(0.0, dtype=torch.float64), 1.0, 0.0)
        >>> d.log_prob(torch.tensor(1.0, dtype=torch.float64))
        tensor(-1., dtype=torch.float64)
    """

    def _split_concentration(self):
        conc = self.concentration
        near_zero = torch.isclose(conc, torch.zeros_like(conc))
        return near_zero, torch.where(near_zero, torch.ones_like(conc), conc)

    def log_prob(self, value):
        if self._validate_args:
            self._validate_sample(value)
        z = self._z(value)
        near_zero, conc = self._split_concentration()
        nonzero = (1 / conc + 1) * torch.log1p(conc * z)
        return -torch.as_tensor(self.scale).log() - torch.where(near_zero, z, nonzero)

    def log_survival_function(self, value):
        if self._validate_args:
            self._validate_sample(value)
        z = self._z(value)
        near_zero, conc = self._split_concentration()
        return torch.where(near_zero, -z, -torch.log1p(conc * z) / conc)


class ContinuousBernoulli(torch.distributions.ContinuousBernoulli, TorchDistributionMixin):
    """Continuous Bernoulli on [0, 1]; with validation, ``probs`` outside [0, 1] raise.

    (torch clamps ``probs`` before validating it, which hides bad values.)

    Example::

        >>> import ember.distributions as dist
        >>> dist.ContinuousBernoulli(probs=0.3).sample((2,)).shape
        torch.Size([2])
    """

    def __init__(self, probs=None, logits=None, lims=(0.499, 0.501), validate_args=None):
        if probs is not None and is_validating(validate_args):
            check_arguments(type(self), dict(probs=probs))
        super().__init__(probs, logits, lims, validate_args=validate_args)


class FisherSnedecor(torch.distributions.FisherSnedecor, TorchDistributionMixin):
    """Fisher-Snedecor (F) distribution with degrees of freedom ``df1``, ``df2``.

    Example::

        >>> import ember.distributions as dist
        >>> dist.FisherSnedecor(3.0, 5.0).sample((2,)).shape
        torch.Size([2])
    """

    __init__ = quiet_init(torch.distributions.FisherSnedecor)


class TransformedDistribution(torch.distributions.TransformedDistribution, TorchDistributionMixin):
    """A base distribution pushed through a sequence of transforms.

    (Written out here, rather than generated, so that :class:`InverseGamma`
    can derive from it.)

    Example::

        >>> import torch, ember.distributions as dist
        >>> exp = dist.transforms.ExpTransform()
        >>> d = dist.TransformedDistribution(dist.Normal(0.0, 1.0), [exp])
        >>> d.log_prob(torch.tensor(1.0))
        tensor(-0.9189)
    """


class InverseGamma(torch.distributions.InverseGamma, TransformedDistribution):
    """Inverse-gamma distribution: ``Y = 1 / X`` with ``X ~ Gamma(concentration, rate)``.

    Its density is ``b^a / G(a) * y^(-a-1) * exp(-b / y)`` for ``y > 0``, with
    ``a = concentration`` and ``b = rate``. Samples are reparameterized; the
    base distribution is an ember :class:`Gamma`, and invalid parameters are
    reported as this distribution's own. ``mean`` is infinite where
    ``concentration <= 1``, ``variance`` where ``concentration <= 2``.

    Example::

        >>> import torch, ember.distributions as dist
        >>> d = dist.InverseGamma(torch.tensor(3.0), torch.tensor(4.0))
        >>> d.mean, d.variance
        (tensor(2.), tensor(4.))
        >>> d.log_prob(torch.tensor(1.0))
        tensor(-0.5343)
        >>> d.rsample((5,)).shape
        torch.Size([5])
    """

    def __init__(self, concentration, rate, validate_args=None):
        base_dist = Gamma(concentration, rate, validate_args=False)  # checked once, below
        inverse = PowerTransform(-base_dist.rate.new_ones(()))
        torch.distributions.TransformedDistribution.__init__(
            self, base_dist, inverse, validate_args=False
        )
        finish_init(self, validate_args)


class LKJCholesky(torch.distributions.LKJCholesky, TorchDistributionMixin):
    """LKJ distribution over Cholesky factors of ``dim x dim`` correlation matrices.

    Example::

        >>> import ember.distributions as dist
        >>> dist.LKJCholesky(3, 2.0).sample().shape
        torch.Size([3, 3])
    """

    __init__ = quiet_init(torch.distributions.LKJCholesky)
    support = lenient_corr_cholesky  # rows of unit norm up to 1e-4

    @classmethod
    def infer_shapes(cls, dim, concentration=()):
        """``dim`` is the matrix size itself (an int), ``concentration`` a shape.

        Example::

            >>> import ember.distributions as dist
            >>> dist.torch.LKJCholesky.infer_shapes(dim=3, concentration=(2,))
            (torch.Size([2]), torch.Size([3, 3]))
        """
        if not isinstance(dim, int):
            raise TypeError(
                f"LKJCholesky.infer_shapes: dim is the matrix size (an int), got {dim!r}"
            )
        return torch.Size(concentration), torch.Size((dim, dim))


class StudentT(torch.distributions.StudentT, TorchDistributionMixin):
    """Student's t with ``df`` degrees of freedom, ``loc`` and ``scale``.

    Example::

        >>> import ember.distributions as dist
        >>> dist.StudentT(3.0).sample((2,)).shape
        torch.Size([2])
    """

    __init__ = quiet_init(torch.distributions.StudentT)


class Exponential(torch.distributions.Exponential, TorchDistributionMixin):
    """Exponential distribution with ``rate``.

    Example::

        >>> import torch, ember.distributions as dist
        >>> dist.Exponential(torch.tensor([1.0, 2.0])).log_prob(torch.tensor(1.0))
        tensor([-1.0000, -1.3069])
    """

    def __init__(self, rate, validate_args=None):
        broadcast_init(self, validate_args, ("rate",), rate)


class Cauchy(torch.distributions.Cauchy, TorchDistributionMixin):
    """Cauchy distribution with median ``loc`` and half width ``scale``.

    Example::

        >>> import torch, ember.distributions as dist
        >>> dist.Cauchy(torch.zeros(2), 1.0).log_prob(torch.tensor(0.0))
        tensor([-1.1447, -1.1447])
    """

    __init__ = _init_loc_scale


class Laplace(torch.distributions.Laplace, TorchDistributionMixin):
    """Laplace distribution with mean ``loc`` and scale ``scale``.

    Example::

        >>> import torch, ember.distributions as dist
        >>> dist.Laplace(0.0, 2.0).log_prob(torch.tensor(0.0))
        tensor(-1.3863)
    """

    __init__ = _init_loc_scale


# torch.distributions classes that get no wrapper, with the reason.
_NOT_WRAPPED = {
    torch.distributions.Distribution: "the abstract base class of every distribution",
    torch.distributions.ExponentialFamily: "an abstract base class",
}


def _torch_distribution_classes():
    """``{name: class}`` of every distribution class ``torch.distributions`` exports."""
    found = {}
    for name in sorted(dir(torch.distributions)):
        cls = getattr(torch.distributions, name)
        if isinstance(cls, type) and issubclass(cls, torch.distributions.Distribution):
            if cls not in _NOT_WRAPPED:
                found[name] = cls
    return found


def _generated_wrapper(name, torch_cls):
    """The wrapper of ``torch_cls`` for a class with nothing of its own to add."""
    body = {"__module__": __name__}
    if issubclass(torch_cls, torch.distributions.TransformedDistribution) and (
        torch_cls is not torch.distributions.TransformedDistribution
    ):
        # built from an inner distribution that needs no checks of its own
        body["__init__"] = quiet_init(torch_cls)
    wrapper = type(name, (torch_cls, TorchDistributionMixin), body)
    wrapper.__doc__ = (
        f"Ember wrapper of :class:`torch.distributions.{name}` "
        "(see PyTorch's documentation for its parameters)."
    )
    return wrapper


def _complete_wrappers(namespace) -> list:
    """Wrap every torch distribution class: the classes above as they are, a generated
    wrapper for the others; finish each (see ``finish_wrapper``); return their names."""
    names = []
    for name, torch_cls in _torch_distribution_classes().items():
        wrapper = namespace.get(name)
        if wrapper is None:
            wrapper = namespace[name] = _generated_wrapper(name, torch_cls)
        elif not (issubclass(wrapper, torch_cls) and issubclass(wrapper, TorchDistributionMixin)):
            raise TypeError(
                f"ember.distributions.torch.{name} must subclass torch.distributions.{name} "
                "and TorchDistributionMixin"
            )
        finish_wrapper(wrapper, torch_cls)
        names.append(name)
    return names


__all__ = _complete_wrappers(globals())
