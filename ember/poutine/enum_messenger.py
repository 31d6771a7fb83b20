"""EnumMessenger: replaces the values of sample sites marked for parallel
enumeration by their whole support, each in a tensor dim of its own."""

from __future__ import annotations

from typing import Callable, Dict, Mapping

import torch

from ember.poutine.messenger import Messenger
from ember.poutine.runtime import get_stack


def _hidden(owner_scope: Mapping, site_scope: Mapping) -> bool:
    """Whether a site with ``owner_scope`` is out of sight of one with ``site_scope``."""
    for key, (frame, _) in owner_scope.items():
        here = site_scope.get(key)
        if here is not None and frame not in here[1]:
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
        self._owner: Dict[int, str] = {}
        self._scope: Dict[str, Mapping] = {}
        self._first = first_available_dim

    def _start_run(self):
        self._owner = {}  # dim -> site currently owning it
        self._scope = {}  # enumerated site -> its markov scope
        self._first = self.first_available_dim
        if self.reserved and len(set(self.reserved.values())) == len(self.reserved):
            # no dim is shared, so every reserved site owns its dim from the start
            for name, dim in self.reserved.items():
                self._owner[dim] = name
                self._scope[name] = {}

    def __enter__(self):
        self._start_run()
        if self._first is None:
            self._first = _continue_left_of_enclosing(self)
        return super().__enter__()

    @property
    def used_dims(self) -> Dict[int, str]:
        """The enumeration dims allocated so far, with the site that last owned each."""
        return dict(self._owner)

    def _visible(self, site_scope) -> Dict[int, str]:
        if not site_scope:  # a site outside every markov context sees every dim
            return dict(self._owner)
        return {
            dim: name
            for dim, name in self._owner.items()
            if not _hidden(self._scope[name], site_scope)
        }

    def _pyro_sample(self, msg) -> None:
        name = msg["name"]
        if (
            not self._owner
            and name not in self.reserved
            and (msg["infer"] or {}).get("enumerate") != "parallel"
        ):
            return  # nothing enumerated yet and nothing to do here: no dims to record
        infer = dict(msg["infer"] or {})
        site_scope = infer.get("_markov", {})
        if name in self.reserved and not msg["is_observed"]:
            # the value comes from elsewhere: forget how it was made there
            infer.pop("_enum_num_samples", None)
            infer.pop("_enum_support_value", None)
            dim = self.reserved[name]
            self._owner[dim] = name
            self._scope[name] = site_scope
            infer["_enumerate_dim"] = dim
        visible = self._visible(site_scope)
        if (
            infer.get("enumerate") == "parallel"
            and not msg["is_observed"]
            and msg["value"] is None
            and name not in self.reserved
        ):
            dim = self._allocate(visible, name)
            num_samples = infer.get("num_samples")
            msg["value"] = _enumerated_value(msg, dim, infer.get("expand", False), num_samples)
            if num_samples is not None:
                infer["_enum_num_samples"] = num_samples
            elif not infer.get("expand", False):
                infer["_enum_support_value"] = True  # the value is arange(support) along dim
            msg["done"] = True
            self._owner[dim] = name
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
                "with @ember.markov, or enter one `chain = ember.markov()` instance per step "
                "(`with chain:`); separate `with ember.markov():` blocks do not hide each other"
            )
        return dim


# torch's limit on the number of dims of a tensor
MAX_TENSOR_DIMS = 64


def _continue_left_of_enclosing(messenger) -> int | None:
    for other in reversed(get_stack()):
        if isinstance(other, EnumMessenger) and other is not messenger and other._first is not None:
            used = list(other._owner) + [other._first]
            return min(used) - 1
    return None


def _enumerated_value(msg, dim: int, expand: bool = False, num_samples: int | None = None):
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
        raise ValueError(
            f"site {name!r} has batch_shape {tuple(batch_shape)}, which already uses dim {dim} "
            "chosen for its enumeration. Increase max_plate_nesting / first_available_dim, or "
            "check that the site only depends on sites that ember.markov keeps in view (raise "
            "its history)"
        )
    if num_samples is not None:  # Monte Carlo: independent draws along the new dim
        return _place(fn.sample((num_samples,)), len(batch_shape), dim, len(event_shape))
    if not expand:
        values = _cached_support(fn, dim)
        if values is not None:
            return values
    values = fn.enumerate_support(expand=expand)
    tag = getattr(values, "_ember_categorical_support", None)
    values = _place(values, len(batch_shape), dim, len(event_shape))
    if tag is not None:  # still arange(k) along its leftmost dim: keep the fast log_prob
        values._ember_categorical_support = tag
    return values


# Supports of Categorical and Bernoulli depend only on the number of values, the
# dtype, the device and the enumeration dim: build each once, hand out views.
_SUPPORT_CACHE: Dict[tuple, torch.Tensor] = {}
_SUPPORT_KINDS: Dict[type, str] = {}


def _support_kind(cls) -> str | None:
    if not _SUPPORT_KINDS:
        import ember.distributions as dist

        _SUPPORT_KINDS.update(
            {
                dist.Categorical: "categorical",
                torch.distributions.Categorical: "categorical",
                dist.Bernoulli: "bernoulli",
                torch.distributions.Bernoulli: "bernoulli",
            }
        )
    return _SUPPORT_KINDS.get(cls)


def _cached_support(fn, dim: int):
    """``fn``'s support (unexpanded) along ``dim``, for distributions with a fixed support.

    Returns None for other distributions. Equal to ``_place(fn.enumerate_support(False), ...)``.
    """
    kind = _support_kind(type(fn))
    if kind is None:
        return None
    param = fn._param
    if kind == "categorical":
        key = (kind, fn._num_events, torch.long, param.device, dim)
    else:
        key = (kind, 2, param.dtype, param.device, dim)
    cached = _SUPPORT_CACHE.get(key)
    if cached is None or cached._version != cached._ember_version:  # missing or changed in place
        cached = torch.arange(key[1], dtype=key[2], device=key[3])
        cached = cached.reshape((key[1],) + (1,) * (-1 - dim))
        cached._ember_version = cached._version
        if len(_SUPPORT_CACHE) > 256:
            _SUPPORT_CACHE.clear()
        _SUPPORT_CACHE[key] = cached
    values = cached.detach()  # a fresh tensor object on the same memory: tags are per site
    if kind == "categorical":
        values._ember_categorical_support = id(fn)
    return values


def _place(values, batch_len: int, dim: int, event_dim: int):
    """Move the leading dim of ``values`` (``(n,) + batch + event``) to batch dim ``dim``."""
    room = -1 - dim
    width = max(batch_len, room + 1)
    shape = values.shape
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
