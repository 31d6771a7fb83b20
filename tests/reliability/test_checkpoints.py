"""Checkpoints of the param store and the optimizer: race-safe snapshots, atomic and
durable writes (symlinks written through, the umask's mode, fsync), checksums that refuse
corrupted files, and all-or-nothing restores."""

import os
import stat
import threading

import pytest
import torch

import ember
import ember.optim as optim
import ember.util
from ember.distributions import constraints


@pytest.fixture
def store():
    s = ember.get_param_store()
    s.clear()
    yield s
    s.clear()


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


# --- the param store ------------------------------------------------------------------------


def test_save_while_other_threads_create_params(store, tmp_path):
    for i in range(50):
        ember.param(f"base{i}", torch.randn(20))
    path = tmp_path / "params.pt"
    stop = threading.Event()
    errors = []

    def create():
        k = 0
        # bounded, so that the store (and each save) stays small however slow the saves are
        while not stop.is_set() and k < 3000:
            try:
                store.setdefault(f"t{k}", torch.zeros(3))
                if k % 3 == 0:
                    del store[f"t{k}"]
            except Exception as e:  # noqa: BLE001  (reported below)
                errors.append(e)
                return
            k += 1

    worker = threading.Thread(target=create)
    worker.start()
    try:
        for _ in range(30):
            store.save(path)
    finally:
        stop.set()
        worker.join()
    assert errors == []
    saved = ember.params.ParamStoreDict()
    saved.load(path)
    for i in range(50):  # every parameter that existed throughout is in every snapshot
        assert torch.equal(saved[f"base{i}"], store[f"base{i}"])


def test_save_through_a_symlink_writes_the_target(store, tmp_path):
    target_dir = tmp_path / "real"
    target_dir.mkdir()
    target = target_dir / "params.pt"
    link = tmp_path / "link.pt"
    os.symlink(target, link)  # dangling until the first save
    ember.param("a", torch.tensor([1.0, 2.0]))
    store.save(link)
    assert os.path.islink(link) and os.readlink(link) == str(target)
    assert target.is_file()
    store["a"] = torch.tensor([3.0, 4.0])
    store.save(link)
    assert os.path.islink(link)
    store.clear()
    store.load(target)
    assert store["a"].tolist() == [3.0, 4.0]
    assert sorted(os.listdir(target_dir)) == ["params.pt"]  # no temp file left behind


def test_new_file_gets_the_umask_mode_and_an_existing_file_keeps_its_mode(store, tmp_path):
    ember.param("a", torch.zeros(2))
    old = os.umask(0o022)
    try:
        path = tmp_path / "new.pt"
        store.save(path)
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o644
        plain = tmp_path / "plain.pt"
        with open(plain, "wb") as f:
            f.write(b"x")
        assert stat.S_IMODE(os.stat(plain).st_mode) == 0o644  # what a plain write gives
        os.umask(0o077)
        other = tmp_path / "other.pt"
        store.save(other)
        assert stat.S_IMODE(os.stat(other).st_mode) == 0o600
        os.chmod(path, 0o640)
        store.save(path)  # overwriting keeps the file's mode, as open(..., "wb") does
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o640
    finally:
        os.umask(old)


def test_save_fsyncs_the_file_before_the_rename_and_the_directory_after(
    store, tmp_path, monkeypatch
):
    ember.param("a", torch.zeros(2))
    events = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        kind = "dir" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file"
        events.append(("fsync", kind))
        return real_fsync(fd)

    def replace(src, dst):
        events.append(("replace", os.path.basename(dst)))
        return real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    store.save(tmp_path / "p.pt")
    assert events == [("fsync", "file"), ("replace", "p.pt"), ("fsync", "dir")]


def _flip_byte_in(path, needle: bytes):
    data = bytearray(path.read_bytes())
    at = data.find(needle)
    assert at >= 0
    data[at + 1] ^= 0x10
    path.write_bytes(bytes(data))


def test_corrupted_tensor_data_is_refused_and_the_store_is_unchanged(store, tmp_path):
    marker = torch.full((16,), 1234.5)
    ember.param("w", marker.clone())
    ember.param("s", torch.tensor(2.0), constraint=constraints.positive)
    path = tmp_path / "params.pt"
    store.save(path)
    store["w"] = torch.zeros(16)
    ember.param("other", torch.ones(1))
    before = {k: v.detach().clone() for k, v in store.items()}

    _flip_byte_in(path, marker.numpy().tobytes()[:8])
    with pytest.raises(ValueError, match=r"corrupted: its checksum \(SHA-256\) does not match"):
        store.load(path)
    after = {k: v.detach() for k, v in store.items()}
    assert sorted(after) == sorted(before)
    for k in before:
        assert torch.equal(after[k], before[k])


def test_truncated_file_is_refused(store, tmp_path):
    ember.param("w", torch.randn(100))
    path = tmp_path / "params.pt"
    store.save(path)
    data = path.read_bytes()
    for cut in (10, 40, len(data) - 1):
        path.write_bytes(data[:cut])
        with pytest.raises(ValueError, match="corrupted|not a readable"):
            store.load(path)
    store.clear()
    path.write_bytes(data)
    store.load(path)
    assert store["w"].shape == (100,)


def test_first_format_files_still_load(store, tmp_path):
    path = tmp_path / "v1.pt"
    torch.save(
        {
            "format": "ember_param_store",
            "version": 1,
            "params": {"loc": torch.tensor([1.0, 2.0]), "s": torch.tensor(0.0)},
            "constraints": {
                "loc": {"name": "real", "args": {}},
                "s": {"name": "positive", "args": {}},
            },
        },
        path,
    )
    store.load(path)
    assert store["loc"].tolist() == [1.0, 2.0]
    assert store["s"].item() == 1.0  # stored unconstrained: exp(0)


def test_pyro_format_file_is_refused_clearly(store, tmp_path):
    path = tmp_path / "pyro.pt"
    torch.save({"params": {"a": torch.zeros(1)}, "constraints": {"a": constraints.real}}, path)
    with pytest.raises(ValueError, match="ember param-store file"):
        store.load(path)
    assert len(store) == 0


def test_set_state_is_all_or_nothing(store):
    ember.param("keep", torch.tensor([1.0]))
    good = torch.tensor([5.0], requires_grad=True)
    bad_states = [
        {"params": {"new": good, "bad": [1.0, 2.0]}},
        {"params": {"new": good, 3: torch.zeros(1)}},
        {"params": {"new": good, "keep": torch.zeros(1)}, "constraints": {"keep": "positive"}},
        {"params": {"new": good, "i": torch.tensor([1, 2])}},
        {"params": {"new": good}, "constraints": ["real"]},
    ]
    for state in bad_states:
        with pytest.raises(ValueError, match="nothing was changed"):
            store.set_state(state)
        assert sorted(store.keys()) == ["keep"]
        assert store["keep"].tolist() == [1.0]


def test_save_load_round_trip_keeps_values_and_constraints(store, tmp_path):
    ember.param("a", torch.tensor([0.25, 0.75]), constraint=constraints.simplex)
    ember.param("b", torch.tensor(0.3), constraint=constraints.interval(0.0, 2.0))
    path = tmp_path / "p.pt"
    store.save(path)
    assert path.read_bytes().startswith(ember.util.CHECKED_FILE_MAGIC)
    values = {k: v.detach().clone() for k, v in store.items()}
    store.clear()
    store.load(path)
    for k, v in values.items():
        assert torch.allclose(store[k], v, atol=1e-6)
    assert type(store._constraints["a"]) is type(constraints.simplex)


# --- the optimizer --------------------------------------------------------------------------


def _trained(steps=3):
    x = torch.zeros(3, requires_grad=True)
    y = torch.zeros(2, requires_grad=True)
    opt = optim.Adam({"lr": 0.1})
    for _ in range(steps):
        x.grad, y.grad = torch.ones(3), torch.ones(2)
        opt([x, y])
    return opt, x, y


def test_optimizer_set_state_is_all_or_nothing():
    opt, x, y = _trained()
    before = opt.get_state()
    other, _, _ = _trained(steps=7)
    state = other.get_state()
    state["_param_1"]["state"][0]["exp_avg"] = torch.zeros(5)  # the wrong shape
    with pytest.raises(ValueError, match=r"'_param_1'.*shape \(5,\).*nothing was changed"):
        opt.set_state(state)
    now = opt.get_state()
    for name in before:
        for key in ("exp_avg", "exp_avg_sq", "step"):
            assert torch.equal(now[name]["state"][0][key], before[name]["state"][0][key])
    state = other.get_state()
    state["later"] = {"state": {0: "oops"}, "param_groups": []}
    with pytest.raises(ValueError, match="'later' is not in the layout"):
        opt.set_state(state)
    assert torch.equal(
        opt.get_state()["_param_0"]["state"][0]["step"], before["_param_0"]["state"][0]["step"]
    )
    assert "later" not in opt.get_state()


def test_optimizer_checkpoint_is_checked_and_atomic(tmp_path):
    opt, x, y = _trained()
    path = tmp_path / "optim.pt"
    opt.save(path)
    assert path.read_bytes().startswith(ember.util.CHECKED_FILE_MAGIC)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o666 & ~_umask()
    fresh, _, _ = _trained(steps=1)
    before = fresh.get_state()
    data = bytearray(path.read_bytes())
    data[-200] ^= 0x01
    bad = tmp_path / "bad.pt"
    bad.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="corrupted"):
        fresh.load(bad)
    assert torch.equal(
        fresh.get_state()["_param_0"]["state"][0]["step"], before["_param_0"]["state"][0]["step"]
    )
    fresh.load(path)
    assert fresh.get_state()["_param_0"]["state"][0]["step"].item() == 3.0
    # a file written without the header (torch.save of the state) still loads
    legacy = tmp_path / "legacy.pt"
    torch.save(opt.get_state(), legacy)
    again, _, _ = _trained(steps=1)
    again.load(legacy)
    assert again.get_state()["_param_1"]["state"][0]["step"].item() == 3.0
