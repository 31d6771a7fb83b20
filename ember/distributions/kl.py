"""KL divergences torch does not provide, registered with ``kl_divergence``.

* :class:`Independent` against :class:`Independent` with different numbers of
  reinterpreted dims (torch handles only equal ones);
* a diagonal normal (``Normal(...).to_event(1)``) against a
  :class:`MultivariateNormal`, both ways;
* a point mass with event dims (``Delta(v).to_event(1)``) against a
  :class:`MultivariateNormal`: ``log_density - q.log_prob(v)``.

The masked and expanded wrappers register theirs in ``torch_distribution``.

Example::

    >>> import torch, ember.distributions as dist
    >>> p = dist.Normal(torch.zeros(2, 3), 1.0).to_event(2)  # event_shape (2, 3)
    >>> q = dist.MultivariateNormal(torch.ones(2, 3), torch.eye(3)).to_event(1)
    >>> round(dist.kl_divergence(p, q).item(), 4)
    3.0
"""

from __future__ import annotations

import math

import torch
from torch.distributions.kl import kl_divergence, register_kl

from ember.distributions.delta import Delta
from ember.distributions.torch import MultivariateNormal
from ember.distributions.torch_distribution import Independent
from ember.distributions.util import sum_rightmost

__all__ = ["kl_divergence", "register_kl"]


@register_kl(Independent, Independent)
def _kl_independent_independent(p, q):
    shared = min(p.reinterpreted_batch_ndims, q.reinterpreted_batch_ndims)
    p_extra = p.reinterpreted_batch_ndims - shared
    q_extra = q.reinterpreted_batch_ndims - shared
    p_inner = Independent(p.base_dist, p_extra) if p_extra else p.base_dist
    q_inner = Independent(q.base_dist, q_extra) if q_extra else q.base_dist
    return sum_rightmost(kl_divergence(p_inner, q_inner), shared)


def _diag_normal(d):
    base = d.base_dist
    if d.reinterpreted_batch_ndims == 1 and isinstance(base, torch.distributions.Normal):
        return base
    return None


def _kl_independent_delta(p, q):
    """KL(Independent(Delta) || q) = sum of the Delta's log densities - log q(v)."""
    base = p.base_dist
    log_density = sum_rightmost(
        base.log_density.expand(base.batch_shape), p.reinterpreted_batch_ndims
    )
    return log_density - q.log_prob(base.v)


@register_kl(Independent, MultivariateNormal)
def _kl_diag_normal_mvn(p, q):
    if isinstance(p.base_dist, Delta):
        if p.event_shape != q.event_shape:
            raise ValueError(
                f"KL(Independent(Delta) || MultivariateNormal): event shapes differ, "
                f"{tuple(p.event_shape)} vs {tuple(q.event_shape)}; reinterpret the Delta's "
                "batch dims so its event shape matches"
            )
        return _kl_independent_delta(p, q)
    base = _diag_normal(p)
    if base is None:
        raise NotImplementedError(  # abstract: torch's dispatcher expects this for no rule
            f"no KL rule for {p!r} against MultivariateNormal; only Normal(...).to_event(1) "
            "or Delta(...).to_event(1)"
        )
    k = q.event_shape[0]
    var = base.scale.pow(2).expand(p.batch_shape + p.event_shape)
    q_prec_diag = q.precision_matrix.diagonal(dim1=-2, dim2=-1)
    # KL = E_p[log p] - E_p[log q] = -H(p) - (log q(mu) - tr(Sigma_q^-1 Sigma_p) / 2)
    entropy = 0.5 * k * (1 + math.log(2 * math.pi)) + base.scale.log().expand_as(var).sum(-1)
    return -entropy - q.log_prob(base.loc.expand_as(var)) + 0.5 * (var * q_prec_diag).sum(-1)


@register_kl(MultivariateNormal, Independent)
def _kl_mvn_diag_normal(p, q):
    base = _diag_normal(q)
    if base is None:
        raise NotImplementedError(  # abstract: torch's dispatcher expects this for no rule
            f"no KL rule for MultivariateNormal against {q!r}; only Normal(...).to_event(1)"
        )
    loc = base.loc.expand(q.batch_shape + q.event_shape)
    scale = base.scale.expand_as(loc)
    q_mvn = MultivariateNormal(loc, scale_tril=torch.diag_embed(scale))
    return kl_divergence(p, q_mvn)
