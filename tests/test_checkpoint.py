"""tl.save / tl.load: atomic writes, pickles refused, clear errors for bad files, exact training resumption."""

import os
import sys
import zipfile

import numpy as np
import pytest

import tinygrad_lstm as tl
from tinygrad_lstm import nn


def test_nested_state_round_trips_with_string_keys(tmp_path):
    state = {
        "model": {"layer.weight": tl.randn(2, 3), "layer.bias": np.arange(3, dtype=np.int32)},
        "optim": {"state": {0: {"step": 5}}, "param_groups": [{"lr": 0.1, "betas": (0.9, 0.99), "params": [0]}]},
        "step": 7,
        "file": np.ones(1),  # names that np.savez would take as its own arguments
        "allow_pickle": np.zeros(1),
    }
    path = tl.save(state, tmp_path / "ck")
    assert path == str(tmp_path / "ck.npz") and os.path.exists(path)
    loaded = tl.load(path)
    np.testing.assert_array_equal(loaded["model"]["layer.weight"], state["model"]["layer.weight"].detach().numpy())
    assert loaded["model"]["layer.bias"].dtype == np.int32
    assert loaded["optim"]["state"]["0"]["step"] == 5  # int keys come back as strings
    group = loaded["optim"]["param_groups"]["0"]  # a list of dicts comes back keyed "0", "1", ...
    assert group["lr"] == 0.1 and group["betas"].tolist() == [0.9, 0.99] and group["params"].tolist() == [0]
    assert loaded["step"] == 7 and "file" in loaded and "allow_pickle" in loaded
    assert tl.load(tmp_path / "ck")["step"] == 7  # ".npz" may be left off, as in save


def test_saved_files_get_the_usual_permissions(tmp_path):
    path = tl.save({"a": np.ones(2)}, tmp_path / "ck.npz")
    umask = os.umask(0)
    os.umask(umask)
    assert os.stat(path).st_mode & 0o777 == 0o666 & ~umask


def test_tensors_on_the_device_are_saved(tmp_path, device):
    t = tl.randn(3, device=device)
    loaded = tl.load(tl.save({"t": t}, tmp_path / "ck"))
    assert isinstance(loaded["t"], np.ndarray)
    np.testing.assert_array_equal(loaded["t"], t.detach().numpy())


def test_bad_states_are_refused_naming_the_key(tmp_path):
    with pytest.raises(ValueError, match=r"key 'a/b' is empty or contains '/'"):
        tl.save({"a/b": np.ones(1)}, tmp_path / "ck")
    with pytest.raises(TypeError, match=r"key 'outer/obj' \(object\) is not an array"):
        tl.save({"outer": {"obj": object()}}, tmp_path / "ck")
    with pytest.raises(ValueError, match="two keys are both written as '1'"):
        tl.save({1: np.ones(1), "1": np.ones(1)}, tmp_path / "ck")
    with pytest.raises(TypeError, match="dict of name -> array"):
        tl.save([np.ones(1)], tmp_path / "ck")
    assert not list(tmp_path.iterdir())


def test_a_crash_mid_save_leaves_the_old_file_intact(tmp_path, monkeypatch):
    path = tl.save({"weights": np.arange(4.0)}, tmp_path / "ck")
    real_write = np.lib.format.write_array
    written = []

    def crash_after_one_member(member, array, **kwargs):
        if written:
            member.write(b"half an array")
            raise OSError("disk full")
        written.append(array)
        real_write(member, array, **kwargs)

    monkeypatch.setattr(np.lib.format, "write_array", crash_after_one_member)
    with pytest.raises(OSError, match="disk full"):
        tl.save({"weights": np.zeros(1000), "more": np.zeros(1000)}, path)
    monkeypatch.undo()
    assert written  # the crash did happen in the middle of the new file
    np.testing.assert_array_equal(tl.load(path)["weights"], np.arange(4.0))
    assert sorted(os.listdir(tmp_path)) == ["ck.npz"]  # no temporary file left behind


def test_pickles_are_refused(tmp_path):
    path = tmp_path / "pickled.npz"
    np.savez(path, objects=np.array([{"evil": 1}, None], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match=r"pickled.npz.*pickled objects, which are refused"):
        tl.load(path)
    plain_pickle = tmp_path / "plain.npy"
    np.save(plain_pickle, np.array([{}], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match=r"plain.npy.*not a .npz checkpoint"):
        tl.load(plain_pickle)


def test_corrupt_truncated_and_foreign_files_raise_naming_the_file(tmp_path):
    good = tl.save({"a": np.arange(100.0), "b": np.ones((5, 5))}, tmp_path / "good")
    raw = open(good, "rb").read()
    cases = {
        "truncated.npz": raw[: len(raw) // 2],
        "garbage.npz": b"this is not a checkpoint at all",
        "empty.npz": b"",
        "flipped.npz": raw[:200] + bytes(b ^ 0xFF for b in raw[200:260]) + raw[260:],
    }
    for name, content in cases.items():
        (tmp_path / name).write_bytes(content)
        with pytest.raises(ValueError, match=name.replace(".", r"\.")):
            tl.load(tmp_path / name)
    with pytest.raises(FileNotFoundError, match="missing.npz"):
        tl.load(tmp_path / "missing.npz")
    with zipfile.ZipFile(tmp_path / "other.npz", "w") as z:
        z.writestr("notes.npy", b"not an npy header")
    with pytest.raises(ValueError, match=r"other\.npz.*corrupt"):
        tl.load(tmp_path / "other.npz")


def make_model(device, seed):
    # no Embedding here: its backward scatters with atomics on the GPU, whose order (and rounding) varies
    tl.manual_seed(seed)
    return nn.Sequential(nn.Linear(6, 8, device=device), nn.Tanh(), nn.Linear(8, 11, device=device))


def train(model, opt, batches, device):
    for inputs, targets in batches:
        logits = model(tl.Tensor(inputs, device=device))
        loss = nn.F.cross_entropy(logits.reshape(-1, 11), tl.Tensor(targets.reshape(-1), device=device))
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 0.5)
        opt.step()


@pytest.mark.parametrize("optimizer", ["Adam", "SGD"])
def test_training_resumed_from_a_checkpoint_continues_exactly(tmp_path, device, optimizer):
    rng = np.random.default_rng(0)
    batches = [(rng.standard_normal((4, 5, 6)).astype(np.float32), rng.integers(0, 11, (4, 5))) for _ in range(8)]

    def make_optimizer(model):
        if optimizer == "Adam":
            return nn.optim.Adam(model.parameters(), lr=0.01, weight_decay=0.01)
        return nn.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True)

    straight = make_model(device, seed=1)
    straight_opt = make_optimizer(straight)
    train(straight, straight_opt, batches, device)

    model = make_model(device, seed=1)
    opt = make_optimizer(model)
    train(model, opt, batches[:4], device)
    path = tl.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "step": 4}, tmp_path / "ck")
    del model, opt

    checkpoint = tl.load(path)
    resumed = make_model(device, seed=2)  # different initial weights: everything must come from the file
    resumed_opt = make_optimizer(resumed)
    resumed.load_state_dict(checkpoint["model"])
    resumed_opt.load_state_dict(checkpoint["optimizer"])
    assert int(checkpoint["step"]) == 4
    train(resumed, resumed_opt, batches[4:], device)

    for name, value in straight.state_dict().items():
        np.testing.assert_array_equal(resumed.state_dict()[name].detach().numpy(), value.detach().numpy(), err_msg=name)
    expected_state = straight_opt.state_dict()["state"]
    for index, entry in resumed_opt.state_dict()["state"].items():
        assert entry.keys() == expected_state[index].keys()
        for key, value in entry.items():
            np.testing.assert_array_equal(np.asarray(value.detach().numpy() if key != "step" else value),
                                          np.asarray(expected_state[index][key].detach().numpy() if key != "step"
                                                     else expected_state[index][key]))


# ---------------------------------------------------------------- names, paths and hand-made files


def test_keys_with_a_nul_character_are_refused(tmp_path):
    """Zip member names end at a NUL: "w\\0a" and "w\\0b" would both load back as "w"."""
    with pytest.raises(ValueError, match=r"key 'w\\x00a' .*NUL"):
        tl.save({"w\0a": np.ones(1), "w\0b": np.zeros(1)}, tmp_path / "ck.npz")
    assert not list(tmp_path.iterdir())


def _handmade_npz(path, members: dict) -> None:
    with zipfile.ZipFile(path, "w") as archive:
        for name, content in members.items():
            with archive.open(name, "w") as member:
                if isinstance(content, bytes):
                    member.write(content)
                else:
                    np.lib.format.write_array(member, content)


def test_handmade_files_whose_names_nest_under_an_array_are_refused(tmp_path):
    for order in (["a.npy", "a/b.npy"], ["a/b.npy", "a.npy"]):
        path = tmp_path / "nest.npz"
        _handmade_npz(path, {name: np.ones(2) for name in order})
        with pytest.raises(ValueError, match=r"nest\.npz.*corrupt.*'a/b'|nest\.npz.*corrupt.*'a'.*also holds"):
            tl.load(path)


def test_an_npy_header_claiming_terabytes_is_corrupt_not_a_memory_error(tmp_path):
    import io

    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f8", "fortran_order": False, "shape": (10**12,)})
    _handmade_npz(tmp_path / "huge.npz", {"w.npy": header.getvalue() + b"\0" * 64})
    with pytest.raises(ValueError, match=r"huge\.npz.*corrupt.*'w' declares shape \(1000000000000,\)"):
        tl.load(tmp_path / "huge.npz")


def test_handmade_files_with_duplicate_or_foreign_members_are_corrupt(tmp_path):
    with pytest.warns(UserWarning, match="Duplicate name"):
        _handmade_npz(tmp_path / "twice.npz", {"a.npy": np.ones(1)} | {"a.npy\0": np.ones(1)})
    with zipfile.ZipFile(tmp_path / "twice.npz", "a") as archive, pytest.warns(UserWarning, match="Duplicate"):
        archive.writestr("a.npy", b"")
    with pytest.raises(ValueError, match=r"twice\.npz.*'a' appears twice"):
        tl.load(tmp_path / "twice.npz")
    _handmade_npz(tmp_path / "notes.npz", {"a.npy": np.ones(1), "README.txt": b"hello"})
    with pytest.raises(ValueError, match=r"notes\.npz.*'README.txt' is not a .npy array"):
        tl.load(tmp_path / "notes.npz")


def test_paths_that_name_no_file_or_an_unknown_format_are_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    state = {"w": np.ones(2)}
    for path in ("", "out/", ".npz", ".safetensors", str(tmp_path)):
        with pytest.raises((ValueError, IsADirectoryError), match="names no file|is a folder"):
            tl.save(state, path)
    with pytest.raises(ValueError, match=r"'m\.pt' asks for a PyTorch pickle.*'m\.safetensors'.*load_file"):
        tl.save(state, "m.pt")
    with pytest.raises(ValueError, match=r"unknown file type '\.ckpt'.*\.npz.*\.safetensors"):
        tl.save(state, "m.ckpt")
    assert sorted(os.listdir(tmp_path)) == []
    assert tl.save(state, "plain") == "plain.npz"  # no suffix at all: ".npz", as documented
    assert tl.save(state, "M.NPZ") == "M.NPZ"


def test_save_never_touches_the_process_umask(tmp_path, monkeypatch):
    """os.umask(0) for a moment would give files other threads create in that moment mode 0666."""
    umask = os.umask(0o022)
    os.umask(umask)

    def forbidden(*args):
        raise AssertionError("tl.save changed the process umask")

    monkeypatch.setattr(os, "umask", forbidden)
    for name in ("ck.npz", "ck.safetensors"):
        path = tl.save({"a": np.ones(2)}, tmp_path / name)
        assert os.stat(path).st_mode & 0o777 == 0o666 & ~umask


def test_stale_temporary_files_are_removed_by_the_next_save_and_live_ones_kept(tmp_path):
    import subprocess
    import sys
    import time

    from tinygrad_lstm.tensor import serialization

    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid, host = int(finished.stdout), serialization._HOST
    names = {
        f".tmp-{host}-{dead_pid}-0123abcd.npz": False,  # its writer is gone: removed
        f".tmp-{host}-{dead_pid}-0123abce.safetensors": False,
        f".tmp-{host}-{os.getpid()}-0123abcf.npz": True,  # this process is alive (another thread may be saving)
        f".tmp-{host}-{os.getppid()}-0123abd0.npz": True,  # a live process
        f".tmp-otherhost-{dead_pid}-0123abd1.npz": True,  # another machine's writer cannot be asked: kept while fresh
        ".tmp-otherhost-77-0123abd2.npz": False,  # ... and removed when untouched for longer than a save takes
        ".tmp-abcd_123.npz": True,  # the naming of older versions: kept while fresh
        ".tmp-efgh_456.npz": False,  # ... removed when old
        ".tmp-notes.txt": True,  # not ours
        "model.npz": True,
    }
    old = time.time() - 2 * serialization._STALE_AFTER_S
    for name in names:
        (tmp_path / name).write_bytes(b"partial")
    for name in (".tmp-otherhost-77-0123abd2.npz", ".tmp-efgh_456.npz", ".tmp-notes.txt", "model.npz"):
        os.utime(tmp_path / name, (old, old))
    tl.save({"a": np.ones(1)}, tmp_path / "new.npz")
    kept = set(os.listdir(tmp_path))
    assert kept == {name for name, keep in names.items() if keep} | {"new.npz"}


# ---------------------------------------------------------------- .safetensors and PyTorch


def _torch_lstm(torch, dtype):
    torch.manual_seed(0)
    return torch.nn.LSTM(3, 4, num_layers=2).to(dtype)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_a_torch_lstm_state_dict_round_trips_both_ways_through_safetensors(torch, tmp_path, dtype):
    safetensors_torch = pytest.importorskip("safetensors.torch")
    source = _torch_lstm(torch, getattr(torch, dtype))
    expected = {k: v.detach().numpy().copy() for k, v in source.state_dict().items()}

    # PyTorch -> tinygrad-lstm
    safetensors_torch.save_file(source.state_dict(), tmp_path / "from_torch.safetensors")
    loaded = tl.load(tmp_path / "from_torch.safetensors")
    assert loaded.keys() == expected.keys()
    for name, value in expected.items():
        assert loaded[name].dtype == value.dtype, name
        np.testing.assert_array_equal(loaded[name], value, err_msg=name)

    # tinygrad-lstm -> PyTorch: safetensors.torch.load_file gives a state_dict that load_state_dict takes unchanged
    tensors = {name: tl.Tensor(value) for name, value in loaded.items()}
    path = tl.save(tensors, tmp_path / "from_tl.safetensors")
    target = torch.nn.LSTM(3, 4, num_layers=2).to(getattr(torch, dtype))
    target.load_state_dict(safetensors_torch.load_file(path))  # strict: every name and shape must match
    for name, value in target.state_dict().items():
        assert value.dtype == getattr(torch, dtype), name
        np.testing.assert_array_equal(value.detach().numpy(), expected[name], err_msg=name)


def test_safetensors_keeps_nesting_dtypes_and_0d_values(tmp_path):
    pytest.importorskip("safetensors")
    state = {"model": {"w": tl.randn(2, 3), "ids": np.arange(3, dtype=np.int32), "mask": np.array([True, False])},
             "step": 7, "lr": np.float64(0.5), "empty": np.zeros((0, 4), dtype=np.float16)}
    loaded = tl.load(tl.save(state, tmp_path / "ck.safetensors"))
    np.testing.assert_array_equal(loaded["model"]["w"], state["model"]["w"].detach().numpy())
    assert loaded["model"]["ids"].dtype == np.int32 and loaded["model"]["mask"].dtype == bool
    assert loaded["step"] == 7 and loaded["lr"].shape == () and loaded["lr"].dtype == np.float64
    assert loaded["empty"].shape == (0, 4) and loaded["empty"].dtype == np.float16
    assert tl.load(tmp_path / "ck")["step"] == 7  # the suffix may be left off when loading


def test_safetensors_refuses_what_it_cannot_hold_naming_the_key(tmp_path, torch):
    safetensors_torch = pytest.importorskip("safetensors.torch")
    with pytest.raises(TypeError, match=r"key 'config/name' holds dtype <U5.*\.npz"):
        tl.save({"config": {"name": "chars"}}, tmp_path / "ck.safetensors")
    with pytest.raises(ValueError, match=r"key '__metadata__' is reserved by the \.safetensors format"):
        tl.save({"__metadata__": np.ones(2)}, tmp_path / "ck.safetensors")
    assert not list(tmp_path.iterdir())
    safetensors_torch.save_file({"w": torch.ones(2, dtype=torch.bfloat16)}, tmp_path / "bf16.safetensors")
    with pytest.raises(ValueError, match=r"bf16\.safetensors.*'w' has dtype BF16.*\.float\(\)"):
        tl.load(tmp_path / "bf16.safetensors")


def test_corrupt_safetensors_files_raise_naming_the_file(tmp_path):
    pytest.importorskip("safetensors")
    good = tl.save({"a": np.arange(100.0), "b": np.ones((5, 5))}, tmp_path / "good.safetensors")
    raw = open(good, "rb").read()
    cases = {"truncated.safetensors": raw[: len(raw) - 50], "garbage.safetensors": b"not a checkpoint at all",
             "empty.safetensors": b"", "header.safetensors": raw[:8] + b"[" + raw[9:]}
    for name, content in cases.items():
        (tmp_path / name).write_bytes(content)
        with pytest.raises(ValueError, match=name.replace(".", r"\.")):
            tl.load(tmp_path / name)


def test_a_crash_mid_safetensors_save_leaves_the_old_file_intact(tmp_path, monkeypatch):
    safetensors_numpy = pytest.importorskip("safetensors.numpy")
    path = tl.save({"w": np.arange(4.0)}, tmp_path / "ck.safetensors")

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(safetensors_numpy, "save", crash)
    with pytest.raises(OSError, match="disk full"):
        tl.save({"w": np.zeros(3)}, path)
    monkeypatch.undo()
    np.testing.assert_array_equal(tl.load(path)["w"], np.arange(4.0))
    assert os.listdir(tmp_path) == ["ck.safetensors"]


def test_without_the_safetensors_package_the_error_names_the_extra(tmp_path, monkeypatch):
    pytest.importorskip("safetensors")
    written = tl.save({"w": np.ones(2)}, tmp_path / "w.safetensors")
    for module in ("safetensors", "safetensors.numpy"):
        monkeypatch.setitem(sys.modules, module, None)  # import then raises ImportError
    with pytest.raises(ImportError, match=r"needs the safetensors package: pip install 'tinygrad-lstm\[safetensors\]'"):
        tl.save({"w": np.ones(2)}, tmp_path / "new.safetensors")
    with pytest.raises(ImportError, match=r"tinygrad-lstm\[safetensors\]"):
        tl.load(written)
    assert os.listdir(tmp_path) == ["w.safetensors"]
    assert tl.load(tl.save({"w": np.ones(2)}, tmp_path / "w.npz"))["w"].tolist() == [1.0, 1.0]  # .npz needs nothing


def test_pytorch_pt_files_get_a_recipe_that_converts_them(torch, tmp_path, monkeypatch):
    pytest.importorskip("safetensors")
    monkeypatch.chdir(tmp_path)
    source = _torch_lstm(torch, torch.float32)
    torch.save(source.state_dict(), "lstm.pt")
    torch.save(source.state_dict(), "legacy.pth", _use_new_zipfile_serialization=False)
    torch.save(source.state_dict(), "renamed.npz")  # the contents, not the name, say what it is
    for path in ("lstm.pt", "legacy.pth", "renamed.npz"):
        with pytest.raises(ValueError, match=rf"{path}.*refused because loading a pickle can run code") as error:
            tl.load(path)
    recipe = [line.strip() for line in str(error.value).splitlines() if line.startswith("    ")]
    assert len(recipe) == 2 and recipe[0] == "import torch, safetensors.torch"
    exec("\n".join(recipe), {})  # the lines the message gives, run as a user would
    loaded = tl.load("renamed.safetensors")
    for name, value in source.state_dict().items():
        np.testing.assert_array_equal(loaded[name], value.detach().numpy(), err_msg=name)


@pytest.mark.parametrize("suffix", [".npz", ".safetensors"])
def test_empty_dicts_come_back(tmp_path, suffix):
    """A fresh optimizer's state is {}: it must not vanish from the file."""
    if suffix == ".safetensors":
        pytest.importorskip("safetensors")
    state = {"optimizer": {"state": {}, "param_groups": [{"lr": 0.1}]}, "empty": {}, "deep": {"er": {}}}
    loaded = tl.load(tl.save(state, tmp_path / f"ck{suffix}"))
    assert loaded["optimizer"]["state"] == {} and loaded["empty"] == {} and loaded["deep"] == {"er": {}}
    assert loaded["optimizer"]["param_groups"]["0"]["lr"] == 0.1


def test_files_numpy_wrote_load(tmp_path):
    weights = np.asfortranarray(np.arange(6.0).reshape(2, 3))
    np.savez(tmp_path / "plain.npz", w=weights, b=np.arange(3, dtype=">i4"))
    np.savez_compressed(tmp_path / "small.npz", w=weights)
    for name in ("plain.npz", "small.npz"):
        loaded = tl.load(tmp_path / name)
        np.testing.assert_array_equal(loaded["w"], weights)
    assert tl.load(tmp_path / "plain.npz")["b"].tolist() == [0, 1, 2]
    with zipfile.ZipFile(tmp_path / "folders.npz", "w") as archive:  # zip tools add folder entries
        archive.writestr(zipfile.ZipInfo("model/"), b"")
        with archive.open("model/w.npy", "w") as member:
            np.lib.format.write_array(member, weights)
    np.testing.assert_array_equal(tl.load(tmp_path / "folders.npz")["model"]["w"], weights)
