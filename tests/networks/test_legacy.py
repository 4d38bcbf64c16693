"""Snapshot pickles: atomic save, bit-exact round trip, plain `pickle.load` compatibility, refusal of
malicious pickles without side effects, force_fp16, and the converter command line."""

from __future__ import annotations

import io
import os
import pickle
import pickletools
import struct

import numpy as np
import pytest
import torch
from click.testing import CliRunner

import dnnlib
import legacy
from training.augment import AugmentPipe
from training.checkpoint import LEGACY_STORAGE_MAGIC, save_network_pkl
from training.networks import Discriminator, Generator


def tiny_snapshot(seed: int = 0) -> dict:
    torch.manual_seed(seed)
    G = Generator(8, 3, 8, 16, 3, mapping_kwargs=dnnlib.EasyDict(num_layers=2),
                  synthesis_kwargs=dnnlib.EasyDict(channel_base=128, channel_max=16, conv_clamp=256))  # fmt: skip
    D = Discriminator(3, 16, 3, channel_base=128, channel_max=16, block_kwargs=dict(freeze_layers=2),
                      epilogue_kwargs=dict(mbstd_group_size=2))  # fmt: skip
    with torch.no_grad():
        for tensor in list(G.parameters()) + list(G.buffers()):
            tensor.add_(torch.randn(tensor.shape) * 0.1)
    pipe = AugmentPipe(xflip=1, rotate90=1)
    pipe.p.fill_(0.25)
    G_ema = Generator(**G.init_kwargs)
    G_ema.load_state_dict(G.state_dict())
    nets = [net.eval().requires_grad_(False) for net in (G, D, G_ema, pipe)]
    training_set_kwargs = dnnlib.EasyDict(class_name="training.dataset.ImageFolderDataset", path="data.zip")
    return dict(G=nets[0], D=nets[1], G_ema=nets[2], augment_pipe=nets[3], training_set_kwargs=training_set_kwargs)


def assert_same_tensors(a: torch.nn.Module, b: torch.nn.Module) -> None:
    state_a, state_b = a.state_dict(), b.state_dict()
    assert list(state_a) == list(state_b)
    for key in state_a:
        assert state_a[key].dtype == state_b[key].dtype and torch.equal(state_a[key], state_b[key]), key


@pytest.fixture(scope="module")
def snapshot_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("snap") / "network-snapshot-000000.pkl"
    save_network_pkl(path, tiny_snapshot())
    return path


def test_round_trip_is_bit_exact(snapshot_path):
    original = tiny_snapshot()
    with open(snapshot_path, "rb") as f:
        loaded = legacy.load_network_pkl(f)
    assert set(loaded) == {"G", "D", "G_ema", "augment_pipe", "training_set_kwargs"}
    for key in ("G", "D", "G_ema", "augment_pipe"):
        assert type(loaded[key]) is type(original[key])
        assert_same_tensors(loaded[key], original[key])
    assert loaded["training_set_kwargs"] == original["training_set_kwargs"]
    assert isinstance(loaded["training_set_kwargs"], dnnlib.EasyDict)
    assert float(loaded["augment_pipe"].p) == 0.25
    z, c = torch.randn([2, 8]), torch.eye(3)[[0, 2]]
    with torch.no_grad():
        assert torch.equal(loaded["G_ema"](z, c, noise_mode="const"), original["G_ema"](z, c, noise_mode="const"))
    assert loaded["G"].init_kwargs == original["G"].init_kwargs


def test_plain_pickle_load_keeps_working(snapshot_path):
    with open(snapshot_path, "rb") as f:
        G_ema = pickle.load(f)["G_ema"]
    assert isinstance(G_ema, Generator)
    assert_same_tensors(G_ema, tiny_snapshot()["G_ema"])


def test_load_from_path_and_file_url(snapshot_path):
    for url in (str(snapshot_path), snapshot_path.as_uri()):
        data = legacy.load_network_pkl_from_url(url, verbose=False)
        assert isinstance(data["G_ema"], Generator)


def test_save_is_atomic_and_leaves_no_temp_files(tmp_path):
    path = tmp_path / "out.pkl"
    path.write_bytes(b"old")

    class Unpicklable:
        def __reduce__(self):
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        save_network_pkl(path, dict(G=Unpicklable()))
    assert path.read_bytes() == b"old" and os.listdir(tmp_path) == ["out.pkl"]
    with pytest.raises(ValueError, match="dict"):
        save_network_pkl(path, [1, 2])


def test_missing_optional_keys_are_filled_and_networks_checked():
    snap = tiny_snapshot()
    data = legacy.load_network_pkl(io.BytesIO(pickle.dumps(dict(G=snap["G"], D=snap["D"], G_ema=snap["G_ema"]))))
    assert data["augment_pipe"] is None and data["training_set_kwargs"] is None
    with pytest.raises(ValueError, match="D"):
        legacy.load_network_pkl(io.BytesIO(pickle.dumps(dict(G=snap["G"], G_ema=snap["G_ema"]))))
    with pytest.raises(ValueError, match="expected a dict"):
        legacy.load_network_pkl(io.BytesIO(pickle.dumps([1, 2, 3])))


def test_force_fp16_rebuilds_with_fp16_settings(snapshot_path):
    with open(snapshot_path, "rb") as f:
        data = legacy.load_network_pkl(f, force_fp16=True)
    assert data["G"].init_kwargs["synthesis_kwargs"]["num_fp16_res"] == 4
    assert data["G"].synthesis.b16.use_fp16 and data["D"].b16.use_fp16
    assert data["D"].init_kwargs["conv_clamp"] == 256
    assert_same_tensors(data["G_ema"], tiny_snapshot()["G_ema"])
    assert_same_tensors(data["D"], tiny_snapshot()["D"])


def test_converter_cli(snapshot_path, tmp_path):
    dest = tmp_path / "converted.pkl"
    result = CliRunner().invoke(legacy.convert_network_pickle, ["--source", str(snapshot_path), "--dest", str(dest)])
    assert result.exit_code == 0, result.output
    assert "Done." in result.output
    with open(dest, "rb") as f:
        assert_same_tensors(legacy.load_network_pkl(f)["G"], tiny_snapshot()["G"])
    result = CliRunner().invoke(legacy.convert_network_pickle, ["--source", str(tmp_path / "nope.pkl"), "--dest", "x"])
    assert result.exit_code == 1 and "cannot load" in result.output


# ----------------------------------------------------------------------------
# Malicious pickles are refused before anything runs.


class RunsShellCommand:
    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


class CreatesFile:
    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return open, (self.marker, "w")


def malicious_storage_bytes(marker: str) -> bytes:
    """A legacy storage stream whose inner pickle would run a shell command."""
    buf = io.BytesIO()
    for obj in (LEGACY_STORAGE_MAGIC, 1001, dict(protocol_version=1001, little_endian=True)):
        pickle.dump(obj, buf, protocol=2)
    pickle.dump(RunsShellCommand(marker), buf, protocol=2)
    pickle.dump(["0"], buf, protocol=2)
    buf.write(struct.pack("<q", 0))
    return buf.getvalue()


class TensorWithMaliciousStorage:
    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        from torch.storage import _load_from_bytes  # Only named as a pickle global, never called here.

        return _load_from_bytes, (malicious_storage_bytes(self.marker),)


@pytest.mark.parametrize(
    "payload, offending",
    [
        (RunsShellCommand, f"{os.system.__module__}.system"),
        (CreatesFile, "io.open"),
        (TensorWithMaliciousStorage, f"{os.system.__module__}.system"),
    ],
)
@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_malicious_pickle_is_refused_without_side_effects(tmp_path, payload, offending, protocol):
    marker = tmp_path / "pwned"
    snap = tiny_snapshot()
    blob = pickle.dumps(dict(G=snap["G"], D=snap["D"], G_ema=payload(str(marker))), protocol=protocol)
    with pytest.raises(pickle.UnpicklingError, match=offending.replace(".", r"\.")):
        legacy.load_network_pkl(io.BytesIO(blob))
    assert not marker.exists()


@pytest.mark.parametrize(
    "module, name",
    [("builtins", "eval"), ("torch", "load"), ("legacy", "load_network_pkl"),
     ("training.checkpoint", "save_network_pkl"),
     ("torch.nn.modules.linear", "Linear"), ("training.networks_layers", "torch"),
     ("training.loss", "StyleGAN2Loss"), ("training.networks", "Generator.__init__")],
)  # fmt: skip
def test_non_allow_listed_globals_are_named_in_the_error(module, name):
    blob = b"\x80\x02c" + f"{module}\n{name}\n".encode() + b"."
    with pytest.raises(pickle.UnpicklingError, match=f"'{module}.{name}'"):
        legacy.load_network_pkl(io.BytesIO(blob))


def test_tensorflow_pickles_are_refused_with_a_clear_error():
    blob = b"\x80\x02cdnnlib.tflib.network\nNetwork\n)\x81."
    with pytest.raises(pickle.UnpicklingError, match="TensorFlow network pickles are not supported"):
        legacy.load_network_pkl(io.BytesIO(blob))


def test_corrupt_and_truncated_pickles_raise_unpickling_errors(snapshot_path):
    blob = snapshot_path.read_bytes()
    rng = np.random.RandomState(0)
    cases = [blob[: len(blob) // 2], blob[:100], b"", rng.bytes(200), b"\x80\x04" + rng.bytes(300)]
    # Flipped bytes inside the opcode stream (not inside a tensor's raw bytes, which no pickle can check).
    opcode_starts = [pos for op, _arg, pos in pickletools.genops(blob) if pos > 40]
    for start in opcode_starts[:: max(1, len(opcode_starts) // 3)][:3]:
        damaged = bytearray(blob)
        damaged[start : start + 40] = rng.bytes(40)
        cases.append(bytes(damaged))
    for data in cases:
        with pytest.raises(pickle.UnpicklingError):
            legacy.load_network_pkl(io.BytesIO(data))


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_plain_extra_entries_load_at_every_protocol(protocol):
    snap = tiny_snapshot()
    grid = np.arange(12, dtype=np.float32).reshape(3, 4)
    extra = dict(grid=grid, fortran=np.asfortranarray(grid), step=np.int64(7), lr=np.float64(2.5e-3), names={"a", "b"},
                 dtype=torch.float16, device=torch.device("cpu"), view=torch.arange(6.0)[2:])  # fmt: skip
    blob = pickle.dumps(dict(G=snap["G"], D=snap["D"], G_ema=snap["G_ema"], extra=extra), protocol=protocol)
    loaded = legacy.load_network_pkl(io.BytesIO(blob))["extra"]
    assert np.array_equal(loaded["grid"], grid) and np.array_equal(loaded["fortran"], grid)
    assert loaded["step"] == 7 and loaded["lr"] == 2.5e-3 and loaded["names"] == {"a", "b"}
    assert loaded["dtype"] == torch.float16 and loaded["device"] == torch.device("cpu")
    assert torch.equal(loaded["view"], torch.tensor([2.0, 3.0, 4.0, 5.0]))
    with pytest.raises(pickle.UnpicklingError, match="non-numeric"):
        legacy.load_network_pkl(io.BytesIO(pickle.dumps(dict(x=np.array(["text"])), protocol=protocol)))
