"""tl.save / tl.load: atomic writes, pickles refused, clear errors for bad files, exact training resumption."""

import os
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
    np.testing.assert_array_equal(loaded["model"]["layer.weight"], state["model"]["layer.weight"].numpy())
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
    np.testing.assert_array_equal(loaded["t"], t.numpy())


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
        np.testing.assert_array_equal(resumed.state_dict()[name].numpy(), value.numpy(), err_msg=name)
    expected_state = straight_opt.state_dict()["state"]
    for index, entry in resumed_opt.state_dict()["state"].items():
        assert entry.keys() == expected_state[index].keys()
        for key, value in entry.items():
            np.testing.assert_array_equal(np.asarray(value.numpy() if key != "step" else value),
                                          np.asarray(expected_state[index][key].numpy() if key != "step"
                                                     else expected_state[index][key]))
