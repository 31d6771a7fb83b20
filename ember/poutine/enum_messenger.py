"""EnumMessenger: replaces the values of sample sites marked for parallel
enumeration by their whole support, each in a tensor dim of its own."""

from __future__ import annotations

from typing import Callable, Dict, List, Mapping

import torch

from ember.poutine.messenger import Messenger
from ember.poutine.runtime import get_stack


def _hidden(owner_scope: Mapping, site_scope: Mapping) -> bool:
    """Whether a site with ``owner_scope`` is out of sight of one with ``site_scope``
    (a site inside some Markov context): it is in sight only through each Markov
    context it was made in, so a site of another context (e.g. a separate
    ``with markov():`` block) or of a frame out of reach is hidden. Sites made
    outside every Markov context stay in sight."""
    for key, owner in owner_scope.items():
        here = site_scope.get(key)
        if here is None or owner[0] not in here[1]:
            return True
    return False


def _expired(owner_scope: Mapping, site_scope: Mapping) -> bool:
    """Whether a site with ``owner_scope`` is out of sight of every site from ``site_scope`` on:
    its frame is older than the oldest frame any of them can see."""
    for key, owner in owner_scope.items():
        here = site_scope.get(key)
        if here is not None and owner[0] < here[2]:
            return True
    return False


class EnumMessenger(Messenger):
    """Enumerate the support of sample sites marked ``infer={"enumerate": "parallel"}``.

    Each such site gets a fresh tensor dim to the left of ``first_available_dim``
    (``-1 - max_plate_nesting``, then one further left per site), and its value
    becomes the whole support reshaped to lie along that dim. Sites that depend
    on an enumerated value are then computed for every value at once by
    broadcasting. Under :func:`~ember.poutine.markov` dims of sites that are out
    of sight are reused.

    Every sample site reached once some dim is in use gets
    ``infer["_enum_dims"]``, a dict from each enumeration dim it may depend on to
    the name of the site that owns the dim; enumerated sites also get
    ``infer["_enumerate_dim"]``.

    :param first_available_dim: the rightmost dim enumeration may use, a
        negative int (``-1 - max_plate_nesting``). ``None`` continues left of an
        enclosing ``EnumMessenger``'s dims.
    :param reserved: enumeration dims already in use by values that will come
        from elsewhere (e.g. a guide replayed into a model), as a dict from site
        name to dim; those sites own their dims when they are reached.

    Example::

        >>> import torch, ember, ember.distributions as dist
        >>> from ember import poutine
        >>> def model():
        ...     with ember.plate("data", 4):
        ...         z = ember.sample("z", dist.Categorical(torch.ones(3) / 3),
        ...                          infer={"enumerate": "parallel"})
        ...     return z
        >>> poutine.enum(model, first_available_dim=-2)().shape
        torch.Size([3, 1])
    """

    def __init__(
        self, first_available_dim: int | None = None, reserved: Dict[str, int] | None = None
    ):
        if first_available_dim is not None:
            if not isinstance(first_available_dim, int) or isinstance(first_available_dim, bool):
                raise TypeError(
                    f"enum: first_available_dim must be a negative int or None, got "
                    f"{first_available_dim!r}"
                )
            if first_available_dim >= 0:
                raise ValueError(
                    f"enum: first_available_dim must be negative (e.g. -1 - max_plate_nesting), "
                    f"got {first_available_dim}"
                )
        super().__init__()
        self.first_available_dim = first_available_dim
        self.reserved = dict(reserved or {})
        self._owners: Dict[int, List[str]] = {}
        self._latest: Dict[int, str] = {}
        self._scope: Dict[str, Mapping] = {}
        self._exposed: Dict[str, Dict[int, str]] = {}
        self._first = first_available_dim

    def _start_run(self):
        # dim -> the sites given it, oldest first: a dim is reused by a site that
        # sees none of them, and a site may see an older owner but not a newer one
        self._owners = {}
        self._latest: Dict[int, str] = {}  # dim -> its newest owner
        self._scope = {}  # enumerated site -> its markov scope
        # enumerated site -> other sites' dims its (expanded) value varies along
        self._exposed = {}
        self._first = self.first_available_dim
        if self.reserved and len(set(self.reserved.values())) == len(self.reserved):
            # no dim is shared, so every reserved site owns its dim from the start
            for name, dim in self.reserved.items():
                self._owners[dim] = [name]
                self._latest[dim] = name
                self._scope[name] = {}

    def __enter__(self):
        self._start_run()
        if self._first is None:
            self._first = _continue_left_of_enclosing(self)
        return super().__enter__()

    @property
    def used_dims(self) -> Dict[int, str]:
        """The enumeration dims allocated so far, with the site that last owned each."""
        return dict(self._latest)

    def _own(self, dim: int, name: str) -> None:
        owners = self._owners.setdefault(dim, [])
        if not owners or owners[-1] != name:
            owners.append(name)
        self._latest[dim] = name

    def _visible(self, site_scope) -> Dict[int, str]:
        """``{dim: site}`` for the enumerated sites a site with ``site_scope`` sees."""
        if not site_scope:  # a site outside every markov context sees every dim
            return self.used_dims
        visible = {}
        for dim, owners in self._owners.items():
            i = len(owners) - 1
            while i >= 0:  # the newest owner in sight, forgetting those out of reach
                scope = self._scope[owners[i]]
                if not _hidden(scope, site_scope):
                    visible[dim] = owners[i]
                    break
                if _expired(scope, site_scope):
                    del owners[i]
                i -= 1
        if self._exposed:
            # a visible value expanded along the dim of a site out of view still varies there
            for name in list(visible.values()):
                for dim, owner in self._exposed.get(name, {}).items():
                    visible.setdefault(dim, owner)
        return visible

    def _pyro_sample(self, msg) -> None:
        name = msg["name"]
        if (
            not self._owners
            and name not in self.reserved
            and (msg["infer"] or {}).get("enumerate") != "parallel"
        ):
            return  # nothing enumerated yet and nothing to do here: no dims to record
        infer = dict(msg["infer"] or {})
        site_scope = infer.get("_markov", {})
        if name in self.reserved and not msg["is_observed"]:
            # the value comes from elsewhere: forget how it was made there
            infer.pop("_enum_num_samples", None)
            infer.pop(SUPPORT_VALUE_KEY, None)
            dim = self.reserved[name]
            self._own(dim, name)
            # in sight of every later site while it owns its dim: its Markov scope is
            # the one of the program that enumerated it, not of this one
            self._scope[name] = {}
            infer["_enumerate_dim"] = dim
            if msg["value"] is not None and msg["value"].numel() > msg["value"].size(0):
                # expanded where it was made: it varies along other sites' dims too
                others = {d: n for d, n in self.used_dims.items() if n != name}
                exposed = _varying_dims(msg["value"], msg["fn"].event_dim, others)
                if exposed:
                    self._exposed[name] = exposed
        visible = self._visible(site_scope)
        if (
            infer.get("enumerate") == "parallel"
            and not msg["is_observed"]
            and msg["value"] is None
            and name not in self.reserved
        ):
            dim = self._allocate(visible, name)
            num_samples = infer.get("num_samples")
            expand = infer.get("expand", False)
            recycled = dim in self._owners  # a dim some site out of view had before
            msg["value"] = _enumerated_value(msg, dim, expand, num_samples, recycled)
            if expand or num_samples is not None:
                exposed = _varying_dims(msg["value"], msg["fn"].event_dim, visible)
                if exposed:
                    self._exposed[name] = exposed
            if num_samples is not None:
                infer["_enum_num_samples"] = num_samples
            elif not infer.get("expand", False):
                # a fresh tensor holding the unexpanded support: while the site's value is
                # this tensor, its log-density can be read off the distribution's parameters
                infer[SUPPORT_VALUE_KEY] = msg["value"]
            msg["done"] = True
            self._own(dim, name)
            self._scope[name] = site_scope
            visible[dim] = name
            infer["_enumerate_dim"] = dim
        infer["_enum_dims"] = visible
        msg["infer"] = infer

    def _allocate(self, visible: Mapping[int, str], name: str = "?") -> int:
        if self._first is None:
            raise ValueError(
                "enum: first_available_dim is None and there is no enclosing enum handler; "
                "pass first_available_dim=-1 - max_plate_nesting"
            )
        dim = self._first
        while dim in visible:
            dim -= 1
        if dim < 1 - MAX_TENSOR_DIMS:  # leave a dim for the parameters it indexes
            raise ValueError(
                f"enum: site {name!r} would need enumeration dim {dim}, but torch tensors have "
                f"at most {MAX_TENSOR_DIMS} dims (the value, plus a dim for the parameters it "
                f"indexes): {len(visible)} enumerated sites are in view "
                "at once. Declare the Markov structure so dims of sites out of view are "
                "reused: iterate `for t in ember.markov(range(T))`, decorate a recursive step "
                "with @ember.markov, enter one `chain = ember.markov()` instance per step "
                "(`with chain:`), or put independent parts in separate `with ember.markov():` "
                "blocks (which do not see each other's sites)"
            )
        return dim


def _varying_dims(value, event_dim: int, owners: Mapping[int, str]) -> Dict[int, str]:
    """The dims of ``owners`` along which ``value`` (with ``event_dim`` event dims) varies."""
    batch = value.dim() - event_dim
    return {
        dim: owner
        for dim, owner in owners.items()
        if batch >= -dim and value.shape[batch + dim] > 1
    }


# torch's limit on the number of dims of a tensor
MAX_TENSOR_DIMS = 64

#: The ``infer`` key under which :class:`EnumMessenger` keeps the tensor it made a
#: site's value when that value is the site's support, unexpanded, along its dim.
SUPPORT_VALUE_KEY = "_enum_support_value"


def _continue_left_of_enclosing(messenger) -> int | None:
    for other in reversed(get_stack()):
        if isinstance(other, EnumMessenger) and other is not messenger and other._first is not None:
            used = list(other._owners) + [other._first]
            return min(used) - 1
    return None


def _enumerated_value(
    msg, dim: int, expand: bool = False, num_samples: int | None = None, recycled: bool = False
):
    fn = msg["fn"]
    name = msg["name"]
    if num_samples is None and not getattr(fn, "has_enumerate_support", False):
        raise ValueError(
            f"site {name!r} is marked for enumeration but its distribution "
            f"{type(fn).__name__} has no enumerable support; remove "
            "infer={'enumerate': ...} from this site or use a discrete distribution"
        )
    event_shape = fn.event_shape
    batch_shape = fn.batch_shape
    if len(batch_shape) >= -dim and batch_shape[dim] != 1:
        if recycled:
            raise ValueError(
                f"Enumeration dim conflict at site {name!r}: its batch_shape "
                f"{tuple(batch_shape)} varies along dim {dim}, which belonged to an enumerated "
                "site out of its view and is reused for its enumeration. The site depends on "
                "that older site: raise its history in ember.markov(..., history=...), or make "
                "both steps of one Markov chain (sites of separate `with ember.markov():` "
                "blocks do not see each other: use `for t in ember.markov(range(T))`)"
            )
        raise ValueError(
            f"at site {name!r}, invalid log_prob shape: its batch_shape {tuple(batch_shape)} "
            f"uses dim {dim}, left of the plate dims, where its enumeration goes. Enclose the "
            "batched dims in ember.plate(...) contexts and count them in max_plate_nesting "
            "(first_available_dim), or move them to the event shape with .to_event()"
        )
    if num_samples is not None:  # Monte Carlo: independent draws along the new dim
        draw = fn.rsample if fn.has_rsample else fn.sample  # reparameterized when possible
        draws = thin_draws(draw((num_samples,)), msg, num_samples)
        return _place(draws, len(batch_shape), dim, len(event_shape))
    if not expand:
        values = _fresh_index_support(fn, dim)
        if values is not None:
            return values
    values = fn.enumerate_support(expand=expand)
    return _place(values, len(batch_shape), dim, len(event_shape))


_CATEGORICAL_SUPPORT = torch.distributions.Categorical.enumerate_support
_BERNOULLI_SUPPORT = torch.distributions.Bernoulli.enumerate_support


def _fresh_index_support(fn, dim: int):
    """``arange`` of a Categorical's or Bernoulli's values along ``dim`` (a new tensor),
    as their own ``enumerate_support(expand=False)`` placed there would give; None
    for other distributions."""
    cls = type(fn)
    params = vars(fn)  # torch keeps the parameter it was given as ``logits`` or ``probs``
    param = params.get("logits")
    if param is None:
        param = params.get("probs")
    if param is None:
        return None
    if cls.enumerate_support is _CATEGORICAL_SUPPORT:
        k, dtype = param.shape[-1], torch.long
    elif cls.enumerate_support is _BERNOULLI_SUPPORT:
        k, dtype = 2, param.dtype
    else:
        return None
    key = (k, dtype, param.device, dim)
    template = _SUPPORT_TEMPLATES.get(key)
    if template is None:
        template = torch.arange(k, dtype=dtype, device=param.device)
        template = template.reshape((k,) + (1,) * (-1 - dim))
        if len(_SUPPORT_TEMPLATES) >= 256:
            _SUPPORT_TEMPLATES.clear()
        _SUPPORT_TEMPLATES[key] = template
    return template.clone()  # the template itself is never handed out


# ``arange`` supports by (size, dtype, device, dim), copied for each site
_SUPPORT_TEMPLATES: Dict[tuple, torch.Tensor] = {}


#: The ``infer`` key that asks :func:`thin_draws` to cut a site's Monte Carlo draws
#: down to one population (Tensor Monte Carlo).
TMC_POPULATION_KEY = "_tmc_population"


def thin_draws(draws: torch.Tensor, msg, num_samples: int) -> torch.Tensor:
    """Tensor Monte Carlo: cut ``num_samples`` draws of a site that vary along other
    sites' enumeration dims down to one population of ``num_samples`` draws.

    Only sites whose ``infer`` dict has :data:`TMC_POPULATION_KEY` set (as
    :class:`~ember.infer.tracetmc_elbo.TraceTMC_ELBO` sets it) are cut down;
    other Monte Carlo enumerated sites keep a full set of draws for every value
    of the sites they depend on, which is what averaging over them
    (:class:`~ember.infer.traceenum_elbo.TraceEnum_ELBO`) needs.

    ``draws`` has shape ``(num_samples,) + batch_shape + event_shape``; a batch
    dim of size > 1 that no plate owns is an enumeration dim of a site this one
    depends on. By the site's ``infer["tmc"]`` (default ``"diagonal"``), draw
    ``k`` keeps the value drawn given that site's value ``k`` (modulo its size,
    ``"diagonal"``) or given a value picked uniformly at random, separately for
    every element of the batch (``"mixture"``);
    ``"full"`` (or ``infer["expand"]``) keeps every draw (their number then
    multiplies along a chain). The result has size 1 along those dims.
    """
    infer = msg["infer"] or {}
    strategy = infer.get("tmc", "diagonal")
    if not infer.get(TMC_POPULATION_KEY) or strategy == "full" or infer.get("expand", False):
        return draws
    if strategy not in ("diagonal", "mixture"):
        raise ValueError(
            f"site {msg['name']!r}: infer['tmc'] must be 'diagonal', 'mixture' or 'full', "
            f"got {strategy!r}"
        )
    batch_shape = msg["fn"].batch_shape
    n = len(batch_shape)
    plate_dims = {
        f.dim
        for f in msg["cond_indep_stack"] or ()
        if getattr(f, "vectorized", True) and f.dim is not None
    }
    for i, size in enumerate(batch_shape):
        if size == 1 or (i - n) in plate_dims:
            continue
        shape = list(draws.shape)
        shape[1 + i] = 1
        if strategy == "diagonal":
            pick = torch.arange(num_samples, device=draws.device) % size
            pick = pick.reshape((num_samples,) + (1,) * (draws.dim() - 1)).expand(shape)
        else:  # an ancestor of its own for every draw and element
            pick = torch.randint(size, shape, device=draws.device)
        draws = draws.gather(1 + i, pick)
    return draws


def _place(values, batch_len: int, dim: int, event_dim: int):
    """Move the leading dim of ``values`` (``(n,) + batch + event``) to batch dim ``dim``."""
    room = -1 - dim
    shape = values.shape
    if all(n == 1 for n in shape[1 : 1 + batch_len]):  # unexpanded: one reshape does it
        return values.reshape(shape[:1] + (1,) * room + shape[1 + batch_len :])
    width = max(batch_len, room + 1)
    values = values.reshape(shape[:1] + (1,) * (width - batch_len) + shape[1:])
    values = values.transpose(0, 1 + width + dim)
    while values.dim() > event_dim - dim and values.shape[0] == 1:
        values = values.squeeze(0)
    return values


def enum(fn: Callable | None = None, first_available_dim: int | None = None):
    """Enumerate sites marked ``infer={"enumerate": "parallel"}`` (see :class:`EnumMessenger`).

    Example::

        >>> import torch, ember, ember.distributions as dist
        >>> from ember import poutine
        >>> def model():
        ...     return ember.sample("b", dist.Bernoulli(0.3), infer={"enumerate": "parallel"})
        >>> poutine.enum(model, first_available_dim=-1)()
        tensor([0., 1.])
    """
    messenger = EnumMessenger(first_available_dim=first_available_dim)
    return messenger(fn) if fn is not None else messenger
