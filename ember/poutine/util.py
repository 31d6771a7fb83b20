"""Helpers for working with traces and messages: subsample sites, escape predicates,
trace extension for systematic search; and the runtime's validation switch under
Pyro's names (``enable_validation`` sets every switch, see :mod:`ember.util`;
``is_validation_enabled`` reads the handlers' own, the ``validate_poutine`` setting).
"""

from __future__ import annotations

from ember.poutine.subsample_messenger import site_is_subsample
from ember.poutine.trace_struct import Trace
from ember.util import enable_validation
from ember.util import is_poutine_validation_enabled as is_validation_enabled

__all__ = [
    "all_escape",
    "discrete_escape",
    "enable_validation",
    "enum_extend",
    "is_validation_enabled",
    "mc_extend",
    "prune_subsample_sites",
    "site_is_subsample",
]


def prune_subsample_sites(trace: Trace) -> Trace:
    """A copy of ``trace`` without the subsample-index sites of plates.

    Example::

        >>> import ember
        >>> def model():
        ...     with ember.plate("data", 10, subsample_size=2):
        ...         pass
        >>> tr = ember.poutine.trace(model).get_trace()
        >>> "data" in tr, "data" in prune_subsample_sites(tr)
        (True, False)
    """
    trace = trace.copy()
    for name, site in list(trace.nodes.items()):
        if site_is_subsample(site):
            trace.remove_node(name)
    return trace


def discrete_escape(trace: Trace, msg) -> bool:
    """True at an unobserved discrete (enumerable) sample site not yet in ``trace``.

    Example::

        >>> import ember.distributions as dist
        >>> from ember.poutine.runtime import new_message
        >>> discrete_escape(Trace(), new_message("sample", "k", dist.Bernoulli(0.5)))
        True
        >>> discrete_escape(Trace(), new_message("sample", "z", dist.Normal(0.0, 1.0)))
        False
    """
    return (
        msg["type"] == "sample"
        and not msg["is_observed"]
        and msg["name"] not in trace
        and getattr(msg["fn"], "has_enumerate_support", False)
    )


def all_escape(trace: Trace, msg) -> bool:
    """True at any unobserved sample site not yet in ``trace``.

    Example::

        >>> import ember.distributions as dist
        >>> from ember.poutine.runtime import new_message
        >>> all_escape(Trace(), new_message("sample", "z", dist.Normal(0.0, 1.0)))
        True
    """
    return msg["type"] == "sample" and not msg["is_observed"] and msg["name"] not in trace


def enum_extend(trace: Trace, msg, num_samples=None):
    """Copies of ``trace``, one per value in the support of ``msg``'s distribution
    (at most ``num_samples + 1`` when ``num_samples >= 0``).

    Example::

        >>> import ember.distributions as dist
        >>> from ember.poutine.runtime import new_message
        >>> msg = new_message("sample", "k", dist.Bernoulli(0.5))
        >>> [float(t.nodes["k"]["value"]) for t in enum_extend(Trace(), msg)]
        [0.0, 1.0]
    """
    if num_samples is None:
        num_samples = -1
    extended = []
    for i, value in enumerate(msg["fn"].enumerate_support(*msg["args"], **msg["kwargs"])):
        if 0 <= num_samples < i:
            break
        site = msg.copy()
        site["value"] = value
        new = trace.copy()
        new._add_site(msg["name"], site)
        extended.append(new)
    return extended


def mc_extend(trace: Trace, msg, num_samples=None):
    """Copies of ``trace``, each extended with a fresh draw at ``msg``'s site.

    Example::

        >>> import ember.distributions as dist
        >>> from ember.poutine.runtime import new_message
        >>> msg = new_message("sample", "z", dist.Normal(0.0, 1.0))
        >>> len(mc_extend(Trace(), msg, num_samples=3))
        3
    """
    if num_samples is None:
        num_samples = 1
    extended = []
    for _ in range(num_samples):
        site = msg.copy()
        site["value"] = msg["fn"](*msg["args"], **msg["kwargs"])
        new = trace.copy()
        new._add_site(msg["name"], site)
        extended.append(new)
    return extended
