"""Run a training step many times with a progress display; return the loss history.

:func:`progress_loop` is what ``SVI.run`` uses. On a terminal it shows a tqdm
progress bar with the running loss; when output goes to a file or a pipe it
prints a plain line every so often instead, so logs stay readable.
"""

from __future__ import annotations

import math
import sys
import time
from typing import Callable, List, Union

import torch

__all__ = ["progress_loop"]

# Weight of the newest loss in the running (exponentially smoothed) loss shown.
_SMOOTHING = 0.1


def _as_float(value: Union[float, int, torch.Tensor], step: int) -> float:
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise ValueError(
                f"progress_loop: step_fn must return a scalar loss, got a tensor of shape "
                f"{tuple(value.shape)} at step {step}"
            )
        return float(value.item())
    if isinstance(value, (int, float)):
        return float(value)
    raise TypeError(
        f"progress_loop: step_fn must return the loss as a float or a scalar tensor, "
        f"got {type(value).__name__} at step {step}"
    )


def _stream_is_terminal(stream) -> bool:
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except ValueError:  # closed stream
        return False


def progress_loop(
    step_fn: Callable[[], Union[float, torch.Tensor]],
    num_steps: int,
    *,
    desc: str = "svi",
    disable: bool | None = None,
    log_every: int | None = None,
) -> List[float]:
    """Call ``step_fn()`` ``num_steps`` times and return the list of its losses.

    :param step_fn: takes no argument, takes one step and returns its loss (a
        float or a scalar tensor), e.g. ``lambda: svi.step(data)``.
    :param num_steps: how many steps to take.
    :param desc: label shown in front of the progress display.
    :param disable: ``None`` (default) shows a tqdm bar with the running loss
        when standard output is a terminal, and otherwise prints a plain line
        (step, running loss, elapsed time) every ``log_every`` steps;
        ``True`` shows nothing; ``False`` shows the tqdm bar even when output
        is not a terminal.
    :param log_every: steps between plain lines (default: a tenth of
        ``num_steps``, so about ten lines).
    :return: the loss of every step, as Python floats.

    The running loss is an exponentially smoothed average of the recent
    losses (weight 0.1 on the newest), which is steadier than the raw noisy
    ELBO estimates.

    Example::

        >>> from ember.infer.progress import progress_loop
        >>> losses = iter([4.0, 3.0, 2.0, 1.0])
        >>> step = lambda: next(losses)
        >>> history = progress_loop(step, 4, desc="demo", log_every=2)  # doctest: +ELLIPSIS
        demo: step 2/4  loss 3.9  elapsed ...
        demo: step 4/4  loss 3.439  elapsed ...
        >>> history
        [4.0, 3.0, 2.0, 1.0]
    """
    if not isinstance(num_steps, int) or isinstance(num_steps, bool) or num_steps < 0:
        raise ValueError(f"progress_loop: num_steps must be an int >= 0, got {num_steps!r}")
    if not callable(step_fn):
        raise TypeError(f"progress_loop: step_fn must be callable, got {type(step_fn).__name__}")
    if log_every is not None and (not isinstance(log_every, int) or log_every < 1):
        raise ValueError(f"progress_loop: log_every must be an int >= 1, got {log_every!r}")
    stream = sys.stdout
    if disable is None:
        mode = "bar" if _stream_is_terminal(stream) else "lines"
    else:
        mode = "off" if disable else "bar"
    if log_every is None:
        log_every = max(1, num_steps // 10)

    history: List[float] = []
    running = math.nan
    start = time.perf_counter()
    bar = None
    if mode == "bar":
        from tqdm.auto import tqdm

        bar = tqdm(total=num_steps, desc=desc, file=stream, dynamic_ncols=True, leave=True)
    try:
        for i in range(1, num_steps + 1):
            loss = _as_float(step_fn(), i)
            history.append(loss)
            if math.isnan(running) or not math.isfinite(running):
                running = loss
            else:
                running = (1.0 - _SMOOTHING) * running + _SMOOTHING * loss
            if bar is not None:
                bar.update(1)
                if i % max(1, num_steps // 200) == 0 or i == num_steps:
                    bar.set_postfix_str(f"loss={running:.4g}", refresh=False)
            elif mode == "lines" and (i % log_every == 0 or i == num_steps):
                elapsed = time.perf_counter() - start
                print(
                    f"{desc}: step {i}/{num_steps}  loss {running:.4g}  elapsed {elapsed:.1f}s",
                    file=stream,
                    flush=True,
                )
    finally:
        if bar is not None:
            bar.close()
    return history
