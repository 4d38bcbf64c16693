"""Reading pickles in the ORIGINAL StyleGAN2-ADA format, written here from a description of that format.

Each network is a call `torch_utils.persistence._reconstruct_persistent_obj(meta)` carrying the module's
source text, the class name and the instance `__dict__`; tensors are `_rebuild_tensor_v2` over storages given
as legacy `torch.save` byte strings. The embedded source text would create a file if it were executed.
"""

from __future__ import annotations

import collections
import io
import pickle
import struct
import sys
import types

import numpy as np
import pytest
import torch

import dnnlib
import legacy
from training.augment import AugmentPipe
from training.networks import Discriminator, Generator

MAGIC = 0x1950A86A20F9469CFC6C
HOOK_DICTS = ("_backward_hooks", "_forward_hooks", "_forward_pre_hooks", "_state_dict_hooks",
              "_load_state_dict_pre_hooks")  # fmt: skip


class StorageBytes:
    """Pickles as `torch.storage._load_from_bytes(<legacy storage stream>)`: the legacy `torch.save` layout, five
    protocol-2 pickles (magic number, format version 1001, system info, the storage as a persistent id
    ('storage', type, key, location, count, None), the list of keys), then the element count and the raw bytes."""

    def __init__(self, values: torch.Tensor):
        self.values = values.detach().flatten().to(torch.float32)

    def stream(self) -> bytes:
        buf = io.BytesIO()
        sys_info = dict(protocol_version=1001, little_endian=True, type_sizes=dict(short=2, int=4, long=4))
        for obj in (MAGIC, 1001, sys_info):
            pickle.dump(obj, buf, protocol=2)
        numel = self.values.numel()

        class StoragePickler(pickle.Pickler):
            def persistent_id(self, obj):
                return ("storage", torch.FloatStorage, "140243", "cpu", numel, None) if obj == "STORAGE" else None

        StoragePickler(buf, protocol=2).dump("STORAGE")
        pickle.dump(["140243"], buf, protocol=2)
        buf.write(struct.pack("<q", numel))
        buf.write(self.values.numpy().astype("<f4").tobytes())
        return buf.getvalue()

    def __reduce__(self):
        from torch.storage import _load_from_bytes  # Named as a pickle global only.

        return _load_from_bytes, (self.stream(),)


class TensorRef:
    """Pickles as `torch._utils._rebuild_tensor_v2(storage, offset, size, stride, False, OrderedDict())`.

    4-D tensors are stored channels-last after 3 junk elements, so the offset and strides must be honoured.
    """

    def __init__(self, tensor: torch.Tensor):
        self.tensor = tensor.detach()

    def __reduce__(self):
        from torch._utils import _rebuild_tensor_v2

        t = self.tensor
        if t.ndim == 4:
            nhwc = t.contiguous(memory_format=torch.channels_last)
            storage = torch.cat([torch.full([3], 99.0), t.permute(0, 2, 3, 1).flatten()])
            return _rebuild_tensor_v2, (StorageBytes(storage), 3, tuple(t.shape), nhwc.stride(), False,
                                        collections.OrderedDict())  # fmt: skip
        return _rebuild_tensor_v2, (StorageBytes(t), 0, tuple(t.shape), t.stride(), False, collections.OrderedDict())


class ParameterRef:
    def __init__(self, tensor: torch.Tensor):
        self.tensor = tensor

    def __reduce__(self):
        from torch._utils import _rebuild_parameter

        return _rebuild_parameter, (TensorRef(self.tensor), False, collections.OrderedDict())


MODULE_SRC = "import pathlib\npathlib.Path({marker!r}).touch()\nclass Generator: pass\n"


class PersistentObject:
    """Pickles as `torch_utils.persistence._reconstruct_persistent_obj(meta)`, with meta = {type: 'class',
    version: 6, module_src, class_name, state (the instance `__dict__`)}, as the original writes each network."""

    def __init__(self, module: torch.nn.Module, module_src: str, init_kwargs: dict | None = None):
        self.module, self.module_src, self.init_kwargs = module, module_src, init_kwargs

    def __reduce__(self):
        module = self.module
        state = dict(training=False)
        state["_parameters"] = collections.OrderedDict((n, ParameterRef(p)) for n, p in module._parameters.items())
        state["_buffers"] = collections.OrderedDict(
            (n, TensorRef(b) if b is not None else None) for n, b in module._buffers.items()
        )
        state["_non_persistent_buffers_set"] = set()
        state.update({name: collections.OrderedDict() for name in HOOK_DICTS})
        state["_modules"] = collections.OrderedDict(
            (n, PersistentObject(m, self.module_src)) for n, m in module._modules.items()
        )
        for name in ("weight_gain", "act_gain"):
            if name in vars(module):  # NumPy float64 scalars in the original.
                state[name] = np.float64(vars(module)[name])
        state["_init_args"] = ()
        state["_init_kwargs"] = self.init_kwargs if self.init_kwargs is not None else {}
        meta = dict(type="class", version=6, module_src=self.module_src, class_name=type(module).__name__,
                    state=state)  # fmt: skip
        return sys.modules["torch_utils.persistence"]._reconstruct_persistent_obj, (meta,)


@pytest.fixture()
def fake_persistence_module(monkeypatch):
    """Lets pickle name `torch_utils.persistence._reconstruct_persistent_obj` while writing the test file."""
    fake = types.ModuleType("torch_utils.persistence")

    def _reconstruct_persistent_obj(meta):  # Never called: the loader must use its own stand-in.
        raise AssertionError("the real reconstruct function must not run")

    _reconstruct_persistent_obj.__module__ = "torch_utils.persistence"
    _reconstruct_persistent_obj.__qualname__ = "_reconstruct_persistent_obj"
    fake._reconstruct_persistent_obj = _reconstruct_persistent_obj
    monkeypatch.setitem(sys.modules, "torch_utils.persistence", fake)


def original_networks() -> dict:
    torch.manual_seed(3)
    G_kwargs = dict(z_dim=8, w_dim=8, mapping_kwargs=dnnlib.EasyDict(num_layers=2), c_dim=2, img_resolution=16,
                    img_channels=3, synthesis_kwargs=dnnlib.EasyDict(channel_base=128, channel_max=16,
                                                                     num_fp16_res=2, conv_clamp=256))  # fmt: skip
    D_kwargs = dict(block_kwargs=dnnlib.EasyDict(freeze_layers=2, fp16_channels_last=True),
                    mapping_kwargs=dnnlib.EasyDict(num_layers=2), epilogue_kwargs=dnnlib.EasyDict(mbstd_group_size=4),
                    channel_base=128, channel_max=16, num_fp16_res=2, conv_clamp=256, architecture="skip", c_dim=2,
                    img_resolution=16, img_channels=3)  # fmt: skip
    nets = dict(G=Generator(**G_kwargs), D=Discriminator(**D_kwargs), G_ema=Generator(**G_kwargs),
                augment_pipe=AugmentPipe(xflip=1, rotate90=1, xint=1))  # fmt: skip
    with torch.no_grad():
        for net in nets.values():
            for tensor in list(net.parameters()) + list(net.buffers()):
                tensor.copy_(torch.randn(tensor.shape))
    kwargs = dict(G=G_kwargs, D=D_kwargs, G_ema=G_kwargs, augment_pipe=dict(xflip=1, rotate90=1, xint=1))
    return nets, kwargs


def write_original_pickle(protocol: int, marker: str) -> tuple[bytes, dict]:
    nets, kwargs = original_networks()
    networks_src = MODULE_SRC.format(marker=marker)
    data = dict(training_set_kwargs=dict(class_name="training.dataset.ImageFolderDataset", path="~/data.zip"))
    for key in ("G", "D", "G_ema", "augment_pipe"):
        src = networks_src if key != "augment_pipe" else "# augment source\n"
        data[key] = PersistentObject(nets[key], src, kwargs[key])
    return pickle.dumps(data, protocol=protocol), nets


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_original_pickle_loads_into_equal_modules(fake_persistence_module, tmp_path, protocol):
    marker = tmp_path / "module_src_was_executed"
    blob, expected = write_original_pickle(protocol, str(marker))
    if protocol == 2:
        assert b"_codecs" in blob and b"__builtin__" in blob
    sys.modules.pop("torch_utils.persistence")  # Loading must not depend on it.
    rng_before = torch.get_rng_state()
    data = legacy.load_network_pkl(io.BytesIO(blob))
    assert torch.equal(torch.get_rng_state(), rng_before)  # Rebuilding consumed no random numbers.
    assert not marker.exists()
    assert data["training_set_kwargs"]["path"] == "~/data.zip"
    for key, net in expected.items():
        loaded = data[key]
        assert type(loaded) is type(net) and not loaded.training
        ours, theirs = loaded.state_dict(), net.state_dict()
        assert list(ours) == list(theirs)
        for name in theirs:
            assert torch.equal(ours[name], theirs[name]), (key, name)
        assert all(not p.requires_grad for p in loaded.parameters())
    assert data["D"].b16.fromrgb.weight.is_contiguous()  # Channels-last storage copied into our layout.
    assert "weight" in dict(data["D"].b16.conv0.named_buffers())  # Freeze-D layer (index 1) stayed frozen.
    z, c = torch.randn([2, 8]), torch.eye(2)
    with torch.no_grad():
        img = data["G_ema"](z, c, noise_mode="const")
        assert torch.equal(img, expected["G_ema"].eval()(z, c, noise_mode="const"))
        assert torch.equal(data["D"](img, c), expected["D"].eval()(img, c))


def test_original_pickle_with_wrong_tensors_is_rejected(fake_persistence_module):
    nets, kwargs = original_networks()
    kwargs["G"] = dict(kwargs["G"], w_dim=16)  # Constructor arguments that do not fit the stored tensors.
    data = {key: PersistentObject(nets[key], "", kwargs[key]) for key in ("G", "D", "G_ema")}
    blob = pickle.dumps(data, protocol=4)
    with pytest.raises(ValueError, match="do not fit Generator"):
        legacy.load_network_pkl(io.BytesIO(blob))


def test_original_pickle_with_unknown_class_is_rejected(fake_persistence_module):
    class Unknown(torch.nn.Module):
        pass

    blob = pickle.dumps(dict(G=PersistentObject(Unknown(), "")), protocol=4)
    with pytest.raises(ValueError, match="'Unknown'"):
        legacy.load_network_pkl(io.BytesIO(blob))
