"""AutoGaussian: a joint Gaussian guide whose precision matrix has the model's sparsity.

The guide is a multivariate normal over all latents (in the unconstrained
space, then scaled, shifted and mapped onto the supports), like
:class:`~ember.infer.autoguide.AutoMultivariateNormal`; but its precision
matrix is a sum of one learned factor per model site (latent or observed),
each touching only that site and the latents it depends on in the model. This
is the conditional-independence structure of the exact posterior (Webb et al.
2018, "Faithful inversion of generative models for effective amortized
inference"), so the guide has as many parameters as the model's factors need.
Inside plates each factor is batched over the plates it shares with its
upstream sites; a plate of an upstream site that the factor is not in is
"broken": its elements all enter the factor.

The ``"dense"`` backend assembles the full precision matrix and samples the
joint normal directly (cost cubic in the number of latent elements).
"""

from __future__ import annotations

import itertools
from collections import OrderedDict, defaultdict
from contextlib import ExitStack
from typing import Callable, Dict, Optional

import torch
from torch.distributions import biject_to

from ember import poutine
from ember.distributions import constraints
from ember.distributions.delta import Delta
from ember.distributions.torch import MultivariateNormal
from ember.infer.autoguide.guides import AutoGuide
from ember.infer.autoguide.initialization import InitMessenger, init_to_feasible
from ember.infer.autoguide.utils import (
    check_init_scale,
    deep_getattr,
    deep_setattr,
    helpful_support_errors,
)
from ember.infer.inspect import get_dependencies, is_sample_site
from ember.nn.module import PyroModule, PyroParam
from ember.ops.tensor_utils import precision_to_scale_tril
from ember.poutine.runtime import am_i_wrapped, get_mask
from ember.poutine.subsample_messenger import site_is_subsample
from ember.primitives import sample

__all__ = ["AutoGaussian", "AutoGaussianDense", "break_plates", "plates_to_shape"]


def plates_to_shape(plates) -> torch.Size:
    """The batch shape of a site in ``plates`` (frames with ``dim`` and ``size``).

    Example::

        >>> from ember.poutine.runtime import CondIndepStackFrame
        >>> plates_to_shape({CondIndepStackFrame("i", -2, 3, 0)})
        torch.Size([3, 1])
    """
    shape = [1] * max([0] + [-f.dim for f in plates])
    for f in plates:
        shape[f.dim] = f.size
    return torch.Size(shape)


def break_plates(x: torch.Tensor, all_plates, kept_plates) -> torch.Tensor:
    """Move the plates of ``x`` (batch shape given by ``all_plates``, one event dim)
    that are not in ``kept_plates`` into its event dim.

    The result has the batch shape of the kept plates and one event dim holding,
    for each remaining batch index, every element of the broken plates (ordered
    with the broken plates' dims outer, the original event dim inner).

    Example::

        >>> import torch
        >>> from ember.poutine.runtime import CondIndepStackFrame
        >>> i, j = CondIndepStackFrame("i", -2, 2, 0), CondIndepStackFrame("j", -1, 3, 0)
        >>> x = torch.arange(6).reshape(2, 3, 1)
        >>> break_plates(x, {i, j}, {j})
        tensor([[0, 3],
                [1, 4],
                [2, 5]])
    """
    all_plates = set(all_plates)
    kept = set(kept_plates) & all_plates
    broken = all_plates - kept
    if tuple(x.shape[:-1]) != tuple(plates_to_shape(all_plates)):
        raise ValueError(
            f"break_plates: x of shape {tuple(x.shape)} does not have the batch shape "
            f"{tuple(plates_to_shape(all_plates))} of its plates"
        )
    if not broken:
        return x
    if not kept:
        return x.reshape(-1)
    batch_shape = plates_to_shape(kept)
    if max(f.dim for f in kept) < min(f.dim for f in broken):
        return x.reshape(batch_shape + (-1,))  # the broken plates are already on the right
    # move the broken plates' dims (and the event dim) to the right, keeping their order
    moved = {-1} | {f.dim - 1 for f in broken}
    perm = sorted(range(-x.dim(), 0), key=lambda d: (d in moved, d))
    return x.permute(perm).reshape(batch_shape + (-1,))


class AutoGaussian(AutoGuide):
    """A Gaussian guide with the conditional-independence structure of the model's
    posterior (see the module docs). Equivalent in flexibility to a full-rank
    :class:`~ember.infer.autoguide.AutoMultivariateNormal` restricted to the
    sparsity the exact posterior of a linear-Gaussian model has.

    :param model: the model (its structure must not change between runs).
    :param init_loc_fn: the initialization strategy.
    :param init_scale: the initial scale of each unconstrained latent element.
    :param backend: ``"dense"`` (the default; ``AutoGaussian(model)`` is an
        :class:`AutoGaussianDense`). Pyro's ``"funsor"`` backend needs the
        funsor package and is not provided.

    Example::

        >>> import torch, ember, ember.distributions as dist
        >>> from ember.infer.autoguide import AutoGaussian
        >>> def model():
        ...     a = ember.sample("a", dist.Normal(0.0, 1.0))
        ...     b = ember.sample("b", dist.Normal(a, 1.0))
        ...     ember.sample("c", dist.Normal(b, 1.0), obs=torch.tensor(1.0))
        >>> guide = AutoGaussian(model)
        >>> type(guide).__name__, sorted(guide())
        ('AutoGaussianDense', ['a', 'b'])
        >>> guide.dependencies["b"]
        {'b': set(), 'a': set()}
    """

    scale_constraint = constraints.softplus_positive
    backends: Dict[str, type] = {}
    default_backend = "dense"

    def __new__(cls, *args, backend: Optional[str] = None, **kwargs):
        if cls is AutoGaussian:
            backend = cls.default_backend if backend is None else backend
            if backend not in AutoGaussian.backends:
                if backend == "funsor":
                    raise ImportError(
                        'AutoGaussian(..., backend="funsor") needs the funsor package, which '
                        'ember does not use; use backend="dense"'
                    )
                raise ValueError(
                    f"AutoGaussian: unknown backend {backend!r}; available: "
                    f"{sorted(AutoGaussian.backends)}"
                )
            cls = AutoGaussian.backends[backend]
        return super().__new__(cls)

    def __init__(
        self,
        model: Callable,
        *,
        init_loc_fn: Callable = init_to_feasible,
        init_scale: float = 0.1,
        backend: Optional[str] = None,
    ):
        self._init_scale = check_init_scale(init_scale)
        self._original_model = (model,)
        super().__init__(InitMessenger(init_loc_fn)(model))

    @staticmethod
    def _prototype_hide_fn(msg) -> bool:
        # observed sites are factors too; point masses are not random
        return not is_sample_site(msg)

    def _setup_prototype(self, *args, **kwargs) -> None:
        super()._setup_prototype(*args, **kwargs)
        self.locs = PyroModule()
        self.scales = PyroModule()
        self.white_vecs = PyroModule()
        self.prec_sqrts = PyroModule()
        self._factors = OrderedDict()
        self._plates = OrderedDict()
        self._event_numel = OrderedDict()
        self._unconstrained_event_shapes = OrderedDict()
        self._transforms = {}

        model = self._original_model[0]
        self._original_model = (None,)
        self.dependencies = poutine.block(get_dependencies)(model, args, kwargs)[
            "prior_dependencies"
        ]
        nodes = self.prototype_trace.nodes
        # observations that no latent site influences add nothing to the posterior
        for d, ups in list(self.dependencies.items()):
            if all(nodes[u]["is_observed"] for u in ups):
                del self.dependencies[d]
                del nodes[d]

        prototype = None
        for d, site in nodes.items():
            if site["type"] != "sample" or site_is_subsample(site):
                continue
            if d not in self.dependencies:
                raise ValueError(
                    f"AutoGaussian: site {d!r} is not in the model's dependency structure; "
                    "sites must be random in every run (not deterministic, not Delta)"
                )
            self._factors[d] = site
            plates = frozenset(site["cond_indep_stack"])
            if any(not f.vectorized for f in plates):
                raise NotImplementedError(
                    f"AutoGaussian does not support sequential plates (site {d!r})"
                )
            if site["fn"].batch_shape != plates_to_shape(plates):
                raise ValueError(
                    f"Shape mismatch at site {d!r}: batch_shape {tuple(site['fn'].batch_shape)} "
                    f"but its plates give {tuple(plates_to_shape(plates))}. Are you missing an "
                    "ember.plate() or .to_event()?"
                )
            if site["is_observed"]:
                # an observation is batched only over the plates its latent parents share
                plates &= frozenset().union(
                    *(self._plates[u] for u in self.dependencies[d] if u != d)
                )
                numel = site["fn"].event_shape.numel()
                for f in set(site["cond_indep_stack"]) - plates:
                    numel *= f.size
                self._plates[d] = plates
                self._event_numel[d] = numel
                continue
            self._plates[d] = plates
            with helpful_support_errors(site):
                transform = biject_to(site["fn"].support)
                init_loc = transform.inv(site["value"].detach()).detach()
            self._transforms[d] = transform
            event_shape = init_loc.shape[len(site["fn"].batch_shape) :]
            self._unconstrained_event_shapes[d] = event_shape
            self._event_numel[d] = event_shape.numel()
            event_dim = len(event_shape)
            deep_setattr(self.locs, d, PyroParam(init_loc, event_dim=event_dim))
            deep_setattr(
                self.scales,
                d,
                PyroParam(
                    torch.full_like(init_loc, self._init_scale),
                    constraint=self.scale_constraint,
                    event_dim=event_dim,
                ),
            )
            if prototype is None:
                prototype = init_loc
        if prototype is None:
            raise RuntimeError(
                "AutoGaussian found no latent variables in the model; use an empty guide"
            )

        for d, site in self._factors.items():
            u_size = sum(
                plates_to_shape(self._plates[u] - self._plates[d]).numel() * self._event_numel[u]
                for u in self._latent_upstreams(d)
            )
            d_size = self._event_numel[d]
            if site["is_observed"]:
                d_size = min(d_size, u_size)  # the factor's rank never exceeds u_size
            batch_shape = plates_to_shape(self._plates[d])
            white_vec = prototype.new_zeros(batch_shape + (d_size,))
            # a little noise keeps the gradients of the factor non-singular
            prec_sqrt = torch.rand_like(prototype.new_empty(batch_shape + (u_size, d_size))) - 0.5
            prec_sqrt = prec_sqrt * self._init_scale
            if not site["is_observed"]:
                prec_sqrt.diagonal(dim1=-2, dim2=-1).fill_(1.0)  # the [d, d] block: identity
            deep_setattr(self.white_vecs, d, PyroParam(white_vec, event_dim=1))
            deep_setattr(self.prec_sqrts, d, PyroParam(prec_sqrt, event_dim=2))

    def _latent_upstreams(self, d: str):
        return [u for u in self.dependencies[d] if not self._factors[u]["is_observed"]]

    def forward(self, *args, **kwargs) -> Dict[str, torch.Tensor]:
        if self.prototype_trace is None:
            self._setup_prototype(*args, **kwargs)
        aux_values = self._sample_aux_values(temperature=1.0)
        values, log_densities = self._transform_values(aux_values)
        plates = self._create_plates(*args, **kwargs)
        for name, site in self._factors.items():
            if site["is_observed"]:
                continue
            with ExitStack() as stack:
                for frame in site["cond_indep_stack"]:
                    stack.enter_context(plates[frame.name])
                values[name] = sample(
                    name, Delta(values[name], log_densities[name], site["fn"].event_dim)
                )
        return values

    def median(self, *args, **kwargs) -> Dict[str, torch.Tensor]:
        """The posterior median of each latent site (the mode of the joint normal,
        mapped onto the supports)."""
        with torch.no_grad(), poutine.mask(mask=False):
            aux_values = self._sample_aux_values(temperature=0.0)
            values, _ = self._transform_values(aux_values)
        return values

    def _transform_values(self, aux_values: Dict[str, torch.Tensor]):
        values = {}
        log_densities = defaultdict(float)
        with_density = am_i_wrapped() and get_mask() is not False
        for name, site in self._factors.items():
            if site["is_observed"]:
                continue
            loc = deep_getattr(self.locs, name)
            scale = deep_getattr(self.scales, name)
            unconstrained = aux_values[name] * scale + loc
            transform = self._transforms[name]
            values[name] = transform(unconstrained)
            if with_density:
                log_scale = scale.log().reshape(site["fn"].batch_shape + (-1,)).sum(-1)
                log_densities[name] = (
                    transform.inv.log_abs_det_jacobian(values[name], unconstrained) - log_scale
                )
        return values, log_densities

    def _sample_aux_values(self, *, temperature: float) -> Dict[str, torch.Tensor]:
        raise NotImplementedError


class AutoGaussianDense(AutoGaussian):
    """The dense backend of :class:`AutoGaussian`: the precision matrix over all
    latent elements is assembled from the factors, and the joint normal sampled
    directly. ``AutoGaussian(model)`` and ``AutoGaussianDense(model)`` are the same.
    """

    def _setup_prototype(self, *args, **kwargs):
        super()._setup_prototype(*args, **kwargs)
        self._dense_shapes = {}
        global_indices = {}
        pos = 0
        for d, event_shape in self._unconstrained_event_shapes.items():
            batch_shape = self._factors[d]["fn"].batch_shape
            self._dense_shapes[d] = batch_shape, event_shape
            end = pos + (batch_shape + event_shape).numel()
            global_indices[d] = torch.arange(pos, end).reshape(batch_shape + (-1,))
            pos = end
        self._dense_size = pos

        # where each factor's entries go in the flattened info vector and precision
        self._dense_scatter = {}
        for d in self._factors:
            prec_sqrt_shape = deep_getattr(self.prec_sqrts, d).shape
            index1 = torch.zeros(prec_sqrt_shape[:-1], dtype=torch.long)
            index2 = torch.zeros(prec_sqrt_shape[:-1] + prec_sqrt_shape[-2:-1], dtype=torch.long)
            upstreams = self._latent_upstreams(d)
            offsets = {}
            pos = 0
            broken = {}
            for u in upstreams:
                offsets[u] = pos
                broken[u] = break_plates(global_indices[u], self._plates[u], self._plates[d])
                pos += broken[u].size(-1)
                index1[..., offsets[u] : pos] = broken[u]
            for u, v in itertools.product(upstreams, upstreams):
                u_index, v_index = broken[u], broken[v]
                u0, v0 = offsets[u], offsets[v]
                index2[..., u0 : u0 + u_index.size(-1), v0 : v0 + v_index.size(-1)] = (
                    self._dense_size * u_index.unsqueeze(-1) + v_index.unsqueeze(-2)
                )
            self._dense_scatter[d] = index1.reshape(-1), index2.reshape(-1)

    def _sample_aux_values(self, *, temperature: float) -> Dict[str, torch.Tensor]:
        mvn = self._dense_get_mvn()
        if temperature == 0:
            flat = mvn.mean
        elif temperature == 1:
            flat = sample(f"_{self._pyro_name}_latent", mvn, infer={"is_auxiliary": True})
        else:
            raise ValueError(f"temperature must be 0 or 1, got {temperature!r}")
        return self._dense_unflatten(flat)

    def _dense_unflatten(self, flat: torch.Tensor) -> Dict[str, torch.Tensor]:
        """The joint latent cut into the sites' (unconstrained) shapes."""
        sample_shape = flat.shape[:-1]
        samples = {}
        pos = 0
        for d, (batch_shape, event_shape) in self._dense_shapes.items():
            end = pos + (batch_shape + event_shape).numel()
            shape = torch.broadcast_shapes(sample_shape, batch_shape) + event_shape
            samples[d] = flat[..., pos:end].reshape(shape)
            pos = end
        return samples

    def _dense_flatten(self, samples: Dict[str, torch.Tensor]) -> torch.Tensor:
        """The sites' values concatenated into the joint latent."""
        parts = []
        for d, (batch_shape, event_shape) in self._dense_shapes.items():
            shape = samples[d].shape
            sample_shape = shape[: len(shape) - len(batch_shape) - len(event_shape)]
            parts.append(samples[d].reshape(sample_shape + (-1,)))
        return torch.cat(parts, dim=-1)

    def _dense_get_mvn(self) -> MultivariateNormal:
        """The joint normal over the flattened latents, from the factors."""
        n = self._dense_size
        info_vec = precision = None
        for d, (index1, index2) in self._dense_scatter.items():
            white_vec = deep_getattr(self.white_vecs, d)
            prec_sqrt = deep_getattr(self.prec_sqrts, d)
            if info_vec is None:
                info_vec = prec_sqrt.new_zeros(n)
                precision = prec_sqrt.new_zeros(n * n)
            factor_info = (prec_sqrt @ white_vec.unsqueeze(-1)).squeeze(-1)
            factor_precision = prec_sqrt @ prec_sqrt.transpose(-1, -2)
            info_vec = info_vec.scatter_add(0, index1, factor_info.reshape(-1))
            precision = precision.scatter_add(0, index2, factor_precision.reshape(-1))
        precision = precision.reshape(n, n)
        scale_tril = precision_to_scale_tril(precision)
        loc = (scale_tril @ (scale_tril.transpose(-1, -2) @ info_vec.unsqueeze(-1))).squeeze(-1)
        return MultivariateNormal(loc, scale_tril=scale_tril)


AutoGaussian.backends["dense"] = AutoGaussianDense
