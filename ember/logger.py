"""ember's logger, ``ember.log`` (``logging.getLogger("ember")``).

It logs at ``INFO`` and, when the program has configured no logging at all (the
root logger has no handler), prints its records to stderr itself, so that
``ember.log.info(...)`` is seen without set-up; configuring ``logging`` first
takes over.

Example::

    >>> import ember
    >>> ember.log.name, ember.log.level == __import__("logging").INFO
    ('ember', True)
"""

from __future__ import annotations

import logging

__all__ = ["log"]

log = logging.getLogger("ember")
log.setLevel(logging.INFO)
if not logging.root.handlers and not log.handlers:
    _handler = logging.StreamHandler()
    _handler.setLevel(logging.INFO)
    _handler.setFormatter(logging.Formatter("%(levelname)s \t %(message)s"))
    log.addHandler(_handler)
