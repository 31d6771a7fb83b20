"""SeedMessenger: run a block with a fixed random seed, then restore the RNG state."""

from __future__ import annotations

from ember.poutine.messenger import Messenger
from ember.util import get_rng_state, set_rng_seed, set_rng_state


class SeedMessenger(Messenger):
    """Seed torch, ``random`` and NumPy with ``rng_seed`` inside the block.

    Example::

        >>> import ember, ember.distributions as dist
        >>> model = lambda: ember.sample("x", dist.Normal(0.0, 1.0))
        >>> a = ember.poutine.seed(model, rng_seed=3)()
        >>> b = ember.poutine.seed(model, rng_seed=3)()
        >>> bool(a == b)
        True
    """

    def __init__(self, rng_seed: int):
        super().__init__()
        if not isinstance(rng_seed, int):
            raise TypeError(f"seed: rng_seed must be an int, got {rng_seed!r}")
        self.rng_seed = rng_seed

    def __enter__(self):
        self.old_state = get_rng_state()
        set_rng_seed(self.rng_seed)
        return super().__enter__()

    def __exit__(self, exc_type, exc_value, traceback):
        set_rng_state(self.old_state)
        return super().__exit__(exc_type, exc_value, traceback)
