"""AutoStructured: a guide with chosen per-site conditionals and dependencies between sites.

Each latent site ``x`` is, in the unconstrained space and flattened,
``loc_x + noise_x + sum_u dep_{x,u}(noise_u)``: ``noise_x`` is zero (a point
mass, ``"delta"``), independent normal (``"normal"``), correlated normal
(``"mvn"``) or drawn by a user callable, and the shears ``dep`` ("linear" or a
callable) add the noise of upstream sites. Shears have unit Jacobian, so the
guide's density is exact.
"""

from __future__ import annotations

from collections import defaultdict
from contextlib import ExitStack
from typing import Callable, Dict, Optional, Union

import torch
from torch.distributions import biject_to

from ember import poutine
from ember.distributions import constraints
from ember.distributions.delta import Delta
from ember.distributions.torch import Normal
from ember.distributions.util import eye_like, is_identically_zero
from ember.infer.autoguide.guides import AutoGuide
from ember.infer.autoguide.initialization import InitMessenger, init_to_feasible
from ember.infer.autoguide.utils import (
    check_init_scale,
    deep_getattr,
    deep_setattr,
    helpful_support_errors,
    site_frames,
)
from ember.infer.inspect import get_dependencies
from ember.nn.module import PyroModule, PyroParam
from ember.poutine.runtime import get_mask
from ember.primitives import sample

__all__ = ["AutoStructured"]

_CONDITIONALS = ("delta", "normal", "mvn")


def _mark_auxiliary(msg) -> dict:
    return {"is_auxiliary": True}


class AutoStructured(AutoGuide):
    """A structured guide: per-site conditional distributions and (linear or
    callable) dependencies between sites, in the unconstrained space.

    :param model: the model.
    :param conditionals: a conditional type for all sites, or a dict from site
        name to type: ``"delta"``, ``"normal"``, ``"mvn"``, or a callable returning
        (flattened) zero-centred noise, which may use ``ember.param`` and
        ``ember.sample`` (its sample sites are marked auxiliary).
    :param dependencies: a dependency type for all the dependencies the
        posterior has (found from the model with
        :func:`~ember.infer.inspect.get_dependencies`, oriented
        in the model's order), or a dict ``{downstream: {upstream: type}}``. A
        type is ``"linear"`` (a learned matrix, initially zero) or a callable
        mapping the flattened upstream noise to a flattened downstream shift.
    :param init_loc_fn: the initialization strategy.
    :param init_scale: the initial scale of the normal conditionals.
    :param create_plates: see :class:`~ember.infer.autoguide.AutoGuide`.

    Example::

        >>> import torch, ember, ember.distributions as dist
        >>> from ember.infer.autoguide import AutoStructured
        >>> def model():
        ...     x = ember.sample("x", dist.Normal(0.0, 1.0))
        ...     ember.sample("y", dist.LogNormal(x, 1.0))
        >>> guide = AutoStructured(model, conditionals={"x": "normal", "y": "delta"},
        ...                        dependencies={"y": {"x": "linear"}})
        >>> sorted(guide()), guide.median()["y"]
        (['x', 'y'], tensor(1.))
    """

    scale_constraint = constraints.softplus_positive
    scale_tril_constraint = constraints.softplus_lower_cholesky

    def __init__(
        self,
        model,
        *,
        conditionals: Union[str, Dict[str, Union[str, Callable]]] = "mvn",
        dependencies: Union[str, Dict[str, Dict[str, Union[str, Callable]]]] = "linear",
        init_loc_fn: Callable = init_to_feasible,
        init_scale: float = 0.1,
        create_plates: Optional[Callable] = None,
    ):
        self._check_structure(conditionals, dependencies)
        self.conditionals = conditionals
        self.dependencies = dependencies
        self._init_scale = check_init_scale(init_scale)
        self._original_model = (model,)
        super().__init__(InitMessenger(init_loc_fn)(model), create_plates=create_plates)

    @staticmethod
    def _check_structure(conditionals, dependencies) -> None:
        if isinstance(conditionals, str):
            if conditionals not in _CONDITIONALS:
                raise ValueError(
                    f"AutoStructured: conditionals must be one of {_CONDITIONALS} (or a dict of "
                    f"them and callables), got {conditionals!r}"
                )
        elif isinstance(conditionals, dict):
            for name, kind in conditionals.items():
                if not isinstance(name, str) or not (
                    callable(kind) or (isinstance(kind, str) and kind in _CONDITIONALS)
                ):
                    raise ValueError(
                        f"AutoStructured: conditional of site {name!r} must be one of "
                        f"{_CONDITIONALS} or a callable, got {kind!r}"
                    )
        else:
            raise TypeError(
                f"AutoStructured: conditionals must be a str or dict, got {conditionals!r}"
            )
        if isinstance(dependencies, str):
            if dependencies != "linear":
                raise ValueError(
                    f"AutoStructured: dependencies must be 'linear' or a dict, got {dependencies!r}"
                )
            return
        if not isinstance(dependencies, dict):
            raise TypeError(
                f"AutoStructured: dependencies must be a str or dict, got {dependencies!r}"
            )
        for down, ups in dependencies.items():
            if not isinstance(ups, dict):
                raise ValueError(
                    f"AutoStructured: dependencies[{down!r}] must be a dict {{upstream: type}}, "
                    f"got {ups!r}"
                )
            for up, kind in ups.items():
                if up == down:
                    raise ValueError(f"AutoStructured: site {down!r} cannot depend on itself")
                if isinstance(conditionals, dict):
                    for name in (up, down):
                        if name not in conditionals:
                            raise ValueError(
                                f"AutoStructured: dependency {down!r} <- {up!r} names a site "
                                "without a conditional"
                            )
                if not (callable(kind) or kind == "linear"):
                    raise ValueError(
                        f"AutoStructured: dependency {down!r} <- {up!r} must be 'linear' or a "
                        f"callable, got {kind!r}"
                    )

    def _auto_config(self, sites: dict, args, kwargs) -> None:
        if not isinstance(self.conditionals, dict):
            self.conditionals = {name: self.conditionals for name in sites}
        missing = [name for name in sites if name not in self.conditionals]
        if missing:
            raise ValueError(
                f"AutoStructured: no conditional for latent sites {missing}; give one for every "
                "latent site"
            )
        if not isinstance(self.dependencies, dict):
            kind = self.dependencies
            meta = poutine.block(get_dependencies)(self._original_model[0], args, kwargs)
            # posterior dependencies, oriented in the model's order (globals before locals)
            order = {name: i for i, name in enumerate(sites)}
            dependencies = defaultdict(dict)
            for d, ups in meta["posterior_dependencies"].items():
                for u in ups:
                    if u in sites and d in sites and u != d:
                        if order[u] > order[d]:
                            dependencies[u][d] = kind
                        else:
                            dependencies[d][u] = kind
            self.dependencies = dict(dependencies)
        self._original_model = (None,)

    def _setup_prototype(self, *args, **kwargs):
        super()._setup_prototype(*args, **kwargs)
        self.locs = PyroModule()
        self.scales = PyroModule()
        self.scale_trils = PyroModule()
        self.conds = PyroModule()
        self.deps = PyroModule()
        sites = dict(self._prototype_sites())
        self._auto_config(sites, args, kwargs)

        self._batch_shapes = {}
        self._unconstrained_event_shapes = {}
        numel = {}
        info = {}
        for name, site in sites.items():
            with helpful_support_errors(site):
                transform = biject_to(site["fn"].support)
                init_loc = transform.inv(site["value"].detach()).detach()
            batch_shape = site["fn"].batch_shape
            self._batch_shapes[name] = batch_shape
            self._unconstrained_event_shapes[name] = init_loc.shape[len(batch_shape) :]
            numel[name] = init_loc.numel()
            info[name] = (transform, site["fn"].event_dim, site_frames(site, type(self).__name__))
            init_loc = init_loc.reshape(-1)
            deep_setattr(self.locs, name, PyroParam(init_loc))
            kind = self.conditionals[name]
            if callable(kind):
                deep_setattr(self.conds, name, kind)
            else:
                if kind in ("normal", "mvn"):
                    init_scale = torch.full_like(init_loc, self._init_scale)
                    deep_setattr(self.scales, name, PyroParam(init_scale, self.scale_constraint))
                if kind == "mvn":
                    tril = eye_like(init_loc, init_loc.numel())
                    deep_setattr(
                        self.scale_trils, name, PyroParam(tril, self.scale_tril_constraint)
                    )

        children = defaultdict(list)
        pending = {}
        for name in sites:
            pending[name] = 0
            deps = PyroModule()
            deep_setattr(self.deps, name, deps)
            for up, kind in self.dependencies.get(name, {}).items():
                if up not in sites:
                    raise ValueError(
                        f"AutoStructured: site {name!r} depends on {up!r}, which is not a "
                        "latent site of the model"
                    )
                children[up].append(name)
                pending[name] += 1
                if kind == "linear":
                    kind = torch.nn.Linear(numel[up], numel[name], bias=False)
                    kind.weight.data.zero_()
                deep_setattr(deps, up, kind)

        # topological order (ties broken by name)
        self._sorted_sites = []
        while pending:
            name, count = min(pending.items(), key=lambda kv: (kv[1], kv[0]))
            if count:
                raise ValueError(
                    f"AutoStructured: the dependencies have a cycle through {sorted(pending)}"
                )
            del pending[name]
            for child in children[name]:
                pending[child] -= 1
            self._sorted_sites.append((name,) + info[name])

    def get_deltas(self, save_params=None) -> Dict[str, Delta]:
        """The guide's sample of every site, as point masses carrying the guide's
        log-density (``save_params``: only these sites)."""
        return poutine.infer_config(self._deltas, config_fn=_mark_auxiliary)(save_params)

    def _deltas(self, save_params=None):
        deltas = {}
        noises = {}
        with_density = get_mask() is not False
        for name, transform, event_dim, _ in self._sorted_sites:
            if save_params is not None and name not in save_params:
                continue
            log_density = 0.0
            loc = deep_getattr(self.locs, name)
            kind = self.conditionals[name]
            if callable(kind):
                noise = deep_getattr(self.conds, name)()
            elif kind == "delta":
                noise = torch.zeros_like(loc)
            else:
                std = sample(name + "_aux", Normal(torch.zeros_like(loc), 1.0).to_event(1))
                scale = deep_getattr(self.scales, name)
                if kind == "normal":
                    noise = std * scale
                    if with_density:
                        log_density = (-scale.log()).expand_as(noise)
                else:
                    tril = deep_getattr(self.scale_trils, name)
                    noise = (std @ tril.T) * scale
                    if with_density:
                        diag = tril.diagonal(dim1=-2, dim2=-1)
                        log_density = (-diag.log() - scale.log()).expand_as(noise)
            deps = deep_getattr(self.deps, name)
            for up in self.dependencies.get(name, {}):
                noise = noise + deep_getattr(deps, up)(noises[up])
            noises[name] = noise

            batch_shape = torch.broadcast_shapes(noise.shape[:-1], self._batch_shapes[name])
            unconstrained = (noise + loc).reshape(
                batch_shape + self._unconstrained_event_shapes[name]
            )
            if not is_identically_zero(log_density):
                log_density = log_density.reshape(batch_shape + (-1,)).sum(-1)
            value = transform(unconstrained)
            if with_density and kind != "delta":
                log_density = log_density + transform.inv.log_abs_det_jacobian(value, unconstrained)
            deltas[name] = Delta(value, log_density, event_dim)
        return deltas

    def forward(self, *args, **kwargs):
        if self.prototype_trace is None:
            self._setup_prototype(*args, **kwargs)
        deltas = self.get_deltas()
        plates = self._create_plates(*args, **kwargs)
        result = {}
        for name, _, _, frames in self._sorted_sites:
            with ExitStack() as stack:
                for frame in frames:
                    stack.enter_context(plates[frame.name])
                result[name] = sample(name, deltas[name])
        return result

    @torch.no_grad()
    def median(self, *args, **kwargs) -> Dict[str, torch.Tensor]:
        """``biject_to(support)(loc)`` of each site."""
        result = {}
        for name, transform, _, _ in self._sorted_sites:
            loc = deep_getattr(self.locs, name).detach()
            shape = self._batch_shapes[name] + self._unconstrained_event_shapes[name]
            result[name] = transform(loc.reshape(shape))
        return result
