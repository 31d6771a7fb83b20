"""Constraints: every one of ``torch.distributions.constraints``, plus ember's own."""

from __future__ import annotations

from torch.distributions.constraints import *  # noqa: F403
from torch.distributions.constraints import __all__ as _torch_all
from torch.distributions.constraints import Constraint  # noqa: F401

__all__ = list(_torch_all)
