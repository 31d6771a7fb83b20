"""Effect handlers ("poutines"): the runtime every ember primitive goes through.

``ember.poutine.trace``, ``replay``, ``block``, ``condition``, ... wrap a
function (or work as ``with`` blocks) to record, replay, hide or condition
the sites of a model.
"""

from ember.poutine import runtime, util
from ember.poutine.handlers import *  # noqa: F403
from ember.poutine.handlers import __all__ as _handlers_all
from ember.poutine.messenger import Messenger
from ember.poutine.plate_messenger import (
    IndepMessenger,
    PlateMessenger,
    SubsampleMessenger,
)
from ember.poutine.runtime import NonlocalExit
from ember.poutine.trace_messenger import TraceHandler
from ember.poutine.trace_struct import Trace

__all__ = [
    "IndepMessenger",
    "Messenger",
    "NonlocalExit",
    "PlateMessenger",
    "SubsampleMessenger",
    "Trace",
    "TraceHandler",
    "runtime",
    "util",
] + list(_handlers_all)
