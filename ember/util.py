"""Bottom-layer utilities shared by every part of ember.

Holds the validation switches that distributions, the runtime and inference
read; the random-number state helpers; and the small numeric and warning
helpers Pyro programs import from ``pyro.util`` (:func:`torch_isnan`,
:func:`warn_if_nan`, :func:`ignore_jit_warnings`, :class:`optional`, ...).
"""

from __future__ import annotations

import hashlib
import io
import math
import numbers
import os
import random
import sys
import tempfile
import threading
import timeit
import warnings
from contextlib import contextmanager
from typing import Any, Dict, List

import torch

from ember import settings

try:
    import numpy as np
except ImportError:  # numpy is optional at this layer
    np = None

__all__ = [
    "CHECKED_FILE_MAGIC",
    "ExperimentalWarning",
    "enable_validation",
    "get_rng_state",
    "ignore_experimental_warning",
    "ignore_jit_warnings",
    "is_infer_validation_enabled",
    "is_poutine_validation_enabled",
    "is_validation_enabled",
    "jit_iter",
    "optional",
    "set_rng_seed",
    "set_rng_state",
    "timed",
    "torch_float",
    "torch_isinf",
    "torch_isnan",
    "torch_save_bytes",
    "validation_enabled",
    "read_checked_file",
    "warn_if_inf",
    "warn_if_nan",
    "warn_once",
    "write_atomically",
    "write_checked_file",
]

# The validation switches, one per part of ember (each is also a setting, see below).
_VALIDATION_ENABLED = True  # distributions' own checks ("validate_distributions_pyro")
_POUTINE_VALIDATION_ENABLED = True  # handler and plate checks ("validate_poutine")
_INFER_VALIDATION_ENABLED = True  # inference checks ("validate_infer")
_WARNED = set()


def _check_bool(value) -> None:
    if not isinstance(value, bool):
        raise TypeError(f"a validation setting must be True or False, got {value!r}")


settings.register("validate_distributions_pyro", __name__, "_VALIDATION_ENABLED", _check_bool)
settings.register(
    "validate_distributions_torch",
    "torch.distributions.distribution",
    "Distribution._validate_args",
    _check_bool,
)
settings.register("validate_poutine", __name__, "_POUTINE_VALIDATION_ENABLED", _check_bool)
settings.register("validate_infer", __name__, "_INFER_VALIDATION_ENABLED", _check_bool)


def enable_validation(is_validate: bool = True) -> None:
    """Turn argument and shape validation on or off, everywhere at once.

    Validation is on by default. It checks distribution parameters and values
    against their constraints (ember's and torch's distributions), site shapes
    against the plates in scope, and inference's assumptions about models and
    guides. Turning it off removes those checks (and their host syncs) from the
    hot path. The settings ``validate_distributions_pyro``,
    ``validate_distributions_torch``, ``validate_poutine`` and
    ``validate_infer`` (:mod:`ember.settings`) switch each part alone.

    Example::

        >>> import ember
        >>> ember.enable_validation(False)
        >>> ember.util.is_validation_enabled(), ember.settings.get("validate_poutine")
        (False, False)
        >>> ember.enable_validation(True)
    """
    global _VALIDATION_ENABLED, _POUTINE_VALIDATION_ENABLED, _INFER_VALIDATION_ENABLED
    flag = bool(is_validate)
    _VALIDATION_ENABLED = _POUTINE_VALIDATION_ENABLED = _INFER_VALIDATION_ENABLED = flag
    torch.distributions.Distribution.set_default_validate_args(flag)


def is_validation_enabled() -> bool:
    """Whether ember's distributions validate their arguments and values
    (the ``validate_distributions_pyro`` setting; see :func:`enable_validation`)."""
    return _VALIDATION_ENABLED


def is_poutine_validation_enabled() -> bool:
    """Whether handlers and plates check site shapes and handler arguments
    (the ``validate_poutine`` setting; see :func:`enable_validation`)."""
    return _POUTINE_VALIDATION_ENABLED


def is_infer_validation_enabled() -> bool:
    """Whether inference checks its models and guides (the ``validate_infer``
    setting; see :func:`enable_validation`)."""
    return _INFER_VALIDATION_ENABLED


class validation_enabled:
    """Context manager that sets every validation switch on (or off) inside its block,
    restoring each switch after.

    Example::

        >>> import ember
        >>> with ember.util.validation_enabled(False):
        ...     ember.util.is_validation_enabled()
        False
        >>> ember.util.is_validation_enabled()
        True
    """

    def __init__(self, is_validate: bool = True):
        self.is_validate = is_validate

    def __enter__(self):
        self._old = (
            _VALIDATION_ENABLED,
            _POUTINE_VALIDATION_ENABLED,
            _INFER_VALIDATION_ENABLED,
            torch.distributions.Distribution._validate_args,
        )
        enable_validation(self.is_validate)
        return self

    def __exit__(self, *exc):
        global _VALIDATION_ENABLED, _POUTINE_VALIDATION_ENABLED, _INFER_VALIDATION_ENABLED
        _VALIDATION_ENABLED, _POUTINE_VALIDATION_ENABLED, _INFER_VALIDATION_ENABLED, torch_flag = (
            self._old
        )
        torch.distributions.Distribution.set_default_validate_args(torch_flag)
        return False


def set_rng_seed(rng_seed: int) -> None:
    """Seed torch, Python's ``random`` and NumPy (when installed) at once.

    Example::

        >>> import ember, torch
        >>> ember.set_rng_seed(0); a = torch.randn(2)
        >>> ember.set_rng_seed(0); b = torch.randn(2)
        >>> bool((a == b).all())
        True
    """
    torch.manual_seed(rng_seed)
    random.seed(rng_seed)
    if np is not None:
        np.random.seed(rng_seed)


def get_rng_state() -> Dict[str, Any]:
    """The state of torch's, Python's and NumPy's (when installed) generators,
    for :func:`set_rng_state`.

    Example::

        >>> import torch
        >>> state = get_rng_state(); a = torch.rand(2)
        >>> set_rng_state(state); b = torch.rand(2)
        >>> bool((a == b).all())
        True
    """
    state = {"torch": torch.get_rng_state(), "random": random.getstate()}
    if np is not None:
        state["numpy"] = np.random.get_state()
    return state


def set_rng_state(state: Dict[str, Any]) -> None:
    """Restore generator states saved by :func:`get_rng_state` (NumPy's only when saved)."""
    torch.set_rng_state(state["torch"])
    random.setstate(state["random"])
    if "numpy" in state and np is not None:
        np.random.set_state(state["numpy"])


def warn_once(key: str, message: str, category=FutureWarning, stacklevel: int = 3) -> None:
    """Issue ``message`` as a warning the first time ``key`` is seen in this process."""
    if key in _WARNED:
        return
    _WARNED.add(key)
    warnings.warn(message, category, stacklevel=stacklevel)


# ------------------------------------------------------------ numeric checks
def torch_isnan(x):
    """Whether ``x`` (a number, or any entry of a tensor) is NaN.

    Returns a bool for a number and a 0-dim bool tensor for a tensor (no host sync).

    Example::

        >>> import torch
        >>> torch_isnan(float("nan")), torch_isnan(torch.tensor([1.0, float("nan")]))
        (True, tensor(True))
    """
    if isinstance(x, numbers.Number):
        return x != x
    return torch.isnan(x).any()


def torch_isinf(x):
    """Whether ``x`` (a number, or any entry of a tensor) is +inf or -inf.

    Example::

        >>> import torch
        >>> torch_isinf(-math.inf), torch_isinf(torch.tensor([0.0, 1.0]))
        (True, tensor(False))
    """
    if isinstance(x, numbers.Number):
        return x == math.inf or x == -math.inf
    return torch.isinf(x).any()


def _caller_location(filename, lineno, depth: int = 2):
    """Where a warning about a value should point: the given place, else the caller's caller."""
    if filename is not None:
        return filename, lineno if lineno is not None else 1
    try:
        frame = sys._getframe(depth)
    except ValueError:  # a shallower stack than expected
        return "sys", 1
    return frame.f_code.co_filename, frame.f_lineno


def _suffix(msg: str) -> str:
    return f": {msg}" if msg else "."


def warn_if_nan(value, msg: str = "", *, filename: str | None = None, lineno: int | None = None):
    """Warn (``UserWarning``) if ``value`` contains a NaN; for a tensor that requires
    grad, also warn if its gradient does. Returns ``value`` unchanged.

    The warning points at the caller (or at ``filename``/``lineno`` when given).

    Example::

        >>> import warnings
        >>> with warnings.catch_warnings(record=True) as w:
        ...     warnings.simplefilter("always")
        ...     _ = warn_if_nan(float("nan"), "loss")
        >>> str(w[0].message)
        'Encountered NaN: loss'
    """
    filename, lineno = _caller_location(filename, lineno)
    if isinstance(value, torch.Tensor) and value.requires_grad:
        value.register_hook(
            lambda grad: warn_if_nan(grad, "backward " + msg, filename=filename, lineno=lineno)
        )
    if torch_isnan(value):
        warnings.warn_explicit(f"Encountered NaN{_suffix(msg)}", UserWarning, filename, lineno)
    return value


def warn_if_inf(
    value,
    msg: str = "",
    allow_posinf: bool = False,
    allow_neginf: bool = False,
    *,
    filename: str | None = None,
    lineno: int | None = None,
):
    """Warn (``UserWarning``) if ``value`` contains +inf (unless ``allow_posinf``) or
    -inf (unless ``allow_neginf``); for a tensor that requires grad, also check its
    gradient. Returns ``value`` unchanged.

    Example::

        >>> import math, warnings
        >>> with warnings.catch_warnings(record=True) as w:
        ...     warnings.simplefilter("always")
        ...     _ = warn_if_inf(-math.inf, "x", allow_neginf=True)
        ...     _ = warn_if_inf(-math.inf, "x")
        >>> [str(m.message) for m in w]
        ['Encountered -inf: x']
    """
    filename, lineno = _caller_location(filename, lineno)
    if isinstance(value, torch.Tensor) and value.requires_grad:
        value.register_hook(
            lambda grad: warn_if_inf(
                grad,
                "backward " + msg,
                allow_posinf,
                allow_neginf,
                filename=filename,
                lineno=lineno,
            )
        )
    for sign, allowed in (("+", allow_posinf), ("-", allow_neginf)):
        if allowed:
            continue
        target = math.inf if sign == "+" else -math.inf
        found = value == target if isinstance(value, numbers.Number) else (value == target).any()
        if found:
            warnings.warn_explicit(
                f"Encountered {sign}inf{_suffix(msg)}", UserWarning, filename, lineno
            )
    return value


def torch_float(x):
    """``x`` as floating point: ``x.float()`` for a tensor, ``float(x)`` for a number.

    Example::

        >>> import torch
        >>> torch_float(3), torch_float(torch.tensor([1, 2]))
        (3.0, tensor([1., 2.]))
    """
    return x.float() if isinstance(x, torch.Tensor) else float(x)


# ----------------------------------------------------------- JIT and warnings
@contextmanager
def ignore_jit_warnings(filter=None):
    """Silence ``torch.jit.TracerWarning`` s while tracing with the JIT (a no-op otherwise).

    ``filter`` limits this to warnings whose message matches one of its entries:
    a message regex, or a ``(message regex, warning class)`` pair. Works as a
    context manager and as a decorator.

    Example::

        >>> with ignore_jit_warnings(["Converting a tensor to a Python boolean"]):
        ...     pass
    """
    if not torch.jit.is_tracing():
        yield
        return
    with warnings.catch_warnings():
        if filter is None:
            warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        else:
            for entry in filter:
                message, category = (
                    entry if isinstance(entry, tuple) else (entry, torch.jit.TracerWarning)
                )
                warnings.filterwarnings("ignore", message=message, category=category)
        yield


def jit_iter(tensor: torch.Tensor) -> List[torch.Tensor]:
    """The slices ``list(tensor)`` along the first dim, without the JIT's warnings about
    iterating over a tensor.

    Example::

        >>> import torch
        >>> jit_iter(torch.tensor([1, 2]))
        [tensor(1), tensor(2)]
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Iterating over a tensor")
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        return list(tensor)


class optional:
    """Enter ``context_manager`` only when ``condition`` holds.

    Example::

        >>> import ember
        >>> for use_plate in (True, False):
        ...     with optional(ember.plate("p", 3), use_plate):
        ...         print(len(ember.poutine.runtime.get_plates()))
        1
        0
    """

    def __init__(self, context_manager, condition):
        self.context_manager = context_manager
        self.condition = condition

    def __enter__(self):
        if self.condition:
            return self.context_manager.__enter__()
        return None

    def __exit__(self, exc_type, exc_value, traceback):
        if self.condition:
            return self.context_manager.__exit__(exc_type, exc_value, traceback)
        return False


class ExperimentalWarning(UserWarning):
    """Warns that a feature is experimental: its interface may still change."""


@contextmanager
def ignore_experimental_warning():
    """Silence :class:`ExperimentalWarning` inside the block.

    Example::

        >>> import warnings
        >>> with ignore_experimental_warning():
        ...     warnings.warn("new", ExperimentalWarning)
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=ExperimentalWarning)
        yield


class timed:
    """Context manager that measures the wall time of its block in ``elapsed`` (seconds).

    Example::

        >>> with timed() as t:
        ...     _ = sum(range(1000))
        >>> t.elapsed >= 0
        True
    """

    def __enter__(self):
        self.start = timeit.default_timer()
        return self

    def __exit__(self, exc_type, exc_value, traceback):
        self.end = timeit.default_timer()
        self.elapsed = self.end - self.start
        return False


# ------------------------------------------------------------------ saving files

#: The first bytes of a file written by :func:`write_checked_file`: the magic, then the
#: payload's length (8 bytes, big-endian) and its SHA-256 digest (32 bytes).
CHECKED_FILE_MAGIC = b"EMBER-CHECKED-FILE\n"
_LENGTH_BYTES = 8
_DIGEST_BYTES = 32
_UMASK_LOCK = threading.Lock()


def _current_umask() -> int:
    """The process umask, read without changing it where the OS allows (Linux)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    with _UMASK_LOCK:  # elsewhere: set and restore (other threads may see it briefly)
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def _fsync_directory(directory: str) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # (platforms where directories cannot be opened)
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_atomically(filename, data: bytes) -> None:
    """Replace the contents of ``filename`` with ``data`` so that a crash at any moment
    leaves either the old file or the new one, never a mix.

    The bytes go to a temporary file in the destination's directory, which is
    flushed and fsync'ed, then renamed over the destination; the directory is
    fsync'ed after the rename. A symlink is written through: its (final) target
    is replaced and the link stays a link. The new file has the mode a plain
    ``open(filename, "wb")`` would give it: an existing file's mode, else
    ``0o666`` minus the umask.

    Example::

        >>> import os, tempfile
        >>> path = os.path.join(tempfile.mkdtemp(), "out.bin")
        >>> write_atomically(path, b"abc")
        >>> open(path, "rb").read()
        b'abc'
    """
    target = os.path.realpath(os.fspath(filename))
    directory = os.path.dirname(target)
    try:
        mode = os.stat(target).st_mode & 0o7777
    except FileNotFoundError:
        mode = 0o666 & ~_current_umask()
    fd, tmp = tempfile.mkstemp(prefix=".tmp-" + os.path.basename(target) + "-", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), mode)
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    _fsync_directory(directory)


def write_checked_file(filename, payload: bytes) -> None:
    """Write ``payload`` to ``filename`` atomically (:func:`write_atomically`), behind a
    header holding its length and SHA-256 digest, so that :func:`read_checked_file`
    refuses a truncated or corrupted file.

    Example::

        >>> import os, tempfile
        >>> path = os.path.join(tempfile.mkdtemp(), "out.bin")
        >>> write_checked_file(path, b"payload")
        >>> read_checked_file(path)
        b'payload'
    """
    digest = hashlib.sha256(payload).digest()
    header = CHECKED_FILE_MAGIC + len(payload).to_bytes(_LENGTH_BYTES, "big") + digest
    write_atomically(filename, header + payload)


def read_checked_file(filename):
    """The payload of a file written by :func:`write_checked_file`; None if the file does not
    start with :data:`CHECKED_FILE_MAGIC` (a file in another format).

    Raises ValueError, naming the file and what is wrong, if its length or checksum does
    not match (a truncated or corrupted file).
    """
    with open(os.fspath(filename), "rb") as f:
        data = f.read()
    if not data.startswith(CHECKED_FILE_MAGIC):
        return None
    start = len(CHECKED_FILE_MAGIC)
    body = start + _LENGTH_BYTES + _DIGEST_BYTES
    if len(data) < body:
        raise ValueError(
            f"{os.fspath(filename)!r} is corrupted: its header is cut off ({len(data)} bytes); "
            "the file was truncated after it was written"
        )
    length = int.from_bytes(data[start : start + _LENGTH_BYTES], "big")
    digest = data[start + _LENGTH_BYTES : body]
    payload = data[body:]
    if len(payload) != length:
        raise ValueError(
            f"{os.fspath(filename)!r} is corrupted: it holds {len(payload)} bytes of data but "
            f"was written with {length}; the file was truncated or extended after it was written"
        )
    if hashlib.sha256(payload).digest() != digest:
        raise ValueError(
            f"{os.fspath(filename)!r} is corrupted: its checksum (SHA-256) does not match its "
            "contents; the file was changed after it was written (restore it from a backup)"
        )
    return payload


def torch_save_bytes(obj) -> bytes:
    """``torch.save(obj)`` into bytes (for :func:`write_checked_file`)."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


enable_validation(True)


# ----------------------------------------------------- trace checks (forwarded)

#: Pyro's ``pyro.util`` also holds checks of model and guide traces. In ember they
#: live with the inference code that uses them (a higher layer); this module stays
#: at the bottom layer and forwards each name on first access (PEP 562).
TRACE_CHECKS = {
    "check_if_enumerated": "ember.infer.util",
    "check_model_guide_match": "ember.infer.util",
    "check_site_shape": "ember.infer.util",
    "check_traces_match": "ember.infer.util",
    "check_traceenum_requirements": "ember.infer.traceenum_elbo",
}


def __getattr__(name):
    """Import the home module of one of :data:`TRACE_CHECKS` and return the check."""
    home = TRACE_CHECKS.get(name)
    if home is None:
        raise AttributeError(f"module 'ember.util' has no attribute {name!r}")
    # the allowed lazy imports: the inference layer is above this one
    import ember.infer.traceenum_elbo  # noqa: F401
    import ember.infer.util  # noqa: F401

    value = getattr(sys.modules[home], name)
    globals()[name] = value  # later lookups find it without calling __getattr__
    return value
