"""A process killed with SIGKILL in the middle of ``ParamStore.save`` never leaves a
checkpoint that fails to load: the previous (or the new) complete checkpoint is
always there."""

import os
import random
import signal
import sys
import time

import pytest
import torch

import ember

pytestmark = pytest.mark.skipif(
    sys.platform == "win32" or not hasattr(os, "fork"), reason="needs fork and SIGKILL"
)


def _saver(path):
    """The child: save checkpoints whose every parameter holds the save's number, forever."""
    store = ember.get_param_store()
    store.clear()
    k = 0
    while True:
        k += 1
        for i in range(20):
            store[f"p{i}"] = torch.full((2000,), float(k))
        store.save(path)


def test_sigkill_during_save_leaves_a_loadable_checkpoint(tmp_path):
    path = str(tmp_path / "params.pt")
    store = ember.get_param_store()
    store.clear()
    for i in range(20):
        store[f"p{i}"] = torch.zeros(2000)
    store.save(path)  # the first complete checkpoint (number 0)
    rng = random.Random(0)
    numbers = []
    for _ in range(40):
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child never returns
            try:
                _saver(path)
            finally:
                os._exit(1)
        time.sleep(rng.uniform(0.0, 0.05))
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        loaded = ember.params.ParamStoreDict()
        loaded.load(path)  # raises if the file were torn or corrupted
        values = {float(loaded[f"p{i}"][0].detach()) for i in range(20)}
        assert len(values) == 1, "a checkpoint mixes two saves"
        (number,) = values
        assert all(bool((loaded[f"p{i}"] == number).all()) for i in range(20))
        numbers.append(number)
    # the kills landed while the children were saving: some trials see newer checkpoints
    assert max(numbers) > 0
    # what a kill can leave next to the checkpoint is an unfinished temporary file only
    assert all(f.startswith(".tmp") for f in os.listdir(tmp_path) if f != "params.pt")
