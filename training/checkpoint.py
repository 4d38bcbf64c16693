"""Network pickles: atomic writing, and reading that never executes code from the file.

Snapshots are standard pickles of a dict (`G`, `D`, `G_ema`, `augment_pipe`, `training_set_kwargs`, ...), so
`pickle.load(f)['G_ema']` works wherever this package is importable. `safe_load` reads the same files, and the
original StyleGAN2-ADA's files (whose networks are records of class name, source text and state, rebuilt as
this project's classes by `training/checkpoint_original.py` without running the source), with a restricted
unpickler: every global the file names is looked up in an allow-list (this project's network and augmentation
classes, classes of modules the user trusts by name through `dnnlib.trust`, local re-implementations of the
tensor/storage/NumPy reconstruction functions, `collections.OrderedDict`, `dnnlib.EasyDict`, sets, ...).
Anything else is refused with `pickle.UnpicklingError` naming the global as `module.name`; nothing from the
file is imported or run. Storage bytes are decoded locally (never through `torch.load`).
"""

from __future__ import annotations

import collections
import copy
import importlib
import io
import os
import pickle
import struct
from collections.abc import Callable
from typing import Any, BinaryIO, NamedTuple

import numpy as np
import torch

import dnnlib
from dnnlib import atomic, trust
from training.checkpoint_original import ORIGINAL_GLOBALS, PersistentRecord, build_module, module_from_record

# Modules whose torch.nn.Module classes may appear in snapshots. Their constructors only allocate tensors, so
# even a constructor call forged by a pickle runs no file, process or network code. Extend with care.
SAFE_CLASS_MODULES = (
    "training.networks",
    "training.networks_layers",
    "training.networks_generator",
    "training.networks_discriminator",
    "training.techniques.minibatch_discrimination",  # --mbdisc=1: a layer of D's epilogue.
    "training.augment",
)
TORCH_CONTAINERS = ("ModuleList", "ModuleDict", "Sequential", "ParameterList", "ParameterDict")
LEGACY_STORAGE_MAGIC = 0x1950A86A20F9469CFC6C
LEGACY_STORAGE_VERSION = 1001
STORAGE_DTYPES = {
    "FloatStorage": torch.float32,
    "HalfStorage": torch.float16,
    "BFloat16Storage": torch.bfloat16,
    "DoubleStorage": torch.float64,
    "LongStorage": torch.int64,
    "IntStorage": torch.int32,
    "ShortStorage": torch.int16,
    "CharStorage": torch.int8,
    "ByteStorage": torch.uint8,
    "BoolStorage": torch.bool,
}
NUMERIC_NUMPY_KINDS = "biufc"
DECODE_ERRORS = (ValueError, TypeError, KeyError, IndexError, AttributeError, OverflowError, RuntimeError, struct.error)


def save_network_pkl(path: str | os.PathLike, data: dict) -> None:
    """Pickle `data` (a snapshot dict) to `path` atomically (`dnnlib.atomic`; a failed write raises WriteError).

    Modules should be on the CPU, in eval mode and without hooks (as the training loop stores them).
    """
    if not isinstance(data, dict):
        raise ValueError(f"a network pickle holds a dict, got {type(data).__name__}")
    path = os.fspath(path)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with atomic.atomic_write(path, "wb") as f:
        pickle.dump(data, f)


# ----------------------------------------------------------------------------
# Local stand-ins for the reconstruction functions named in pickles.


class DecodedStorage:
    """A storage read from a legacy `torch.save` byte string: a 1-D tensor of its elements."""

    def __init__(self, data: torch.Tensor):
        self.data = data


class _StorageType(str):
    """Stand-in for a `torch.<Type>Storage` global inside a storage byte string: its name."""


class StorageReference(NamedTuple):
    """The persistent id of a storage in a legacy stream: type name, key and element count."""

    type_name: str
    key: str
    numel: int


class _StorageUnpickler(pickle.Unpickler):
    """Reads the pickles of a legacy storage stream: only storage-type globals and storage persistent ids."""

    def find_class(self, module: str, name: str) -> Any:
        if module == "torch" and name in STORAGE_DTYPES:
            return _StorageType(name)
        raise pickle.UnpicklingError(f"refusing to load global '{module}.{name}' inside a tensor storage")

    def persistent_load(self, pid: Any) -> StorageReference:
        if not (isinstance(pid, tuple) and len(pid) in (5, 6) and pid[0] == "storage"):
            raise pickle.UnpicklingError(f"unsupported persistent id in a tensor storage: {pid!r:.200}")
        storage_type, key, _location, numel = pid[1:5]
        view = pid[5] if len(pid) == 6 else None
        if not isinstance(storage_type, _StorageType) or not isinstance(key, str) or not isinstance(numel, int):
            raise pickle.UnpicklingError(f"malformed storage reference: {pid!r:.200}")
        if view is not None:
            raise pickle.UnpicklingError("storage views are not supported")
        return StorageReference(str(storage_type), key, numel)


def load_legacy_storage(data: bytes) -> DecodedStorage:
    """Decode the legacy (pre-zip) `torch.save` serialization of one storage, as the original's pickles embed it.

    Layout: five protocol-2 pickles (magic, version 1001, system info, the storage reference, the key list),
    then per key: an int64 element count and the little-endian element bytes.
    """
    if not isinstance(data, (bytes, bytearray)):
        raise pickle.UnpicklingError(f"tensor storage must be bytes, got {type(data).__name__}")
    f = io.BytesIO(data)
    if _StorageUnpickler(f).load() != LEGACY_STORAGE_MAGIC:
        raise pickle.UnpicklingError("tensor storage has a wrong magic number")
    if _StorageUnpickler(f).load() != LEGACY_STORAGE_VERSION:
        raise pickle.UnpicklingError("tensor storage has an unsupported format version")
    sys_info = _StorageUnpickler(f).load()
    if not isinstance(sys_info, dict) or not sys_info.get("little_endian", True):
        raise pickle.UnpicklingError("big-endian tensor storages are not supported")
    reference = _StorageUnpickler(f).load()
    keys = _StorageUnpickler(f).load()
    if not (isinstance(reference, StorageReference) and keys == [reference.key] and reference.numel >= 0):
        raise pickle.UnpicklingError("malformed tensor storage header: expected exactly one storage")
    dtype = STORAGE_DTYPES[reference.type_name]
    (stored_numel,) = struct.unpack("<q", f.read(8))
    nbytes = reference.numel * torch.empty([], dtype=dtype).element_size()
    raw = f.read(nbytes)
    if stored_numel != reference.numel or len(raw) != nbytes or f.read(1):
        raise pickle.UnpicklingError("tensor storage size does not match its header")
    data = torch.frombuffer(bytearray(raw), dtype=torch.uint8) if raw else torch.empty([0], dtype=torch.uint8)
    return DecodedStorage(data.view(dtype))


def rebuild_tensor(
    storage: DecodedStorage,
    storage_offset: int,
    size: tuple,
    stride: tuple,
    requires_grad: bool = False,
    backward_hooks: Any = None,
    metadata: Any = None,
) -> torch.Tensor:
    """Stand-in for `torch._utils._rebuild_tensor_v2`: a strided view of a decoded storage."""
    if not isinstance(storage, DecodedStorage):
        raise pickle.UnpicklingError(f"tensor data must be a storage, got {type(storage).__name__}")
    if backward_hooks or metadata:
        raise pickle.UnpicklingError("tensors with backward hooks or metadata are not supported")
    tensor = storage.data.as_strided(tuple(size), tuple(stride), int(storage_offset))
    if requires_grad:
        tensor.requires_grad_(True)
    return tensor


def rebuild_parameter(data: torch.Tensor, requires_grad: bool, backward_hooks: Any, state: Any = None) -> Any:
    """Stand-in for `torch._utils._rebuild_parameter` (and `_with_state` without extra attributes)."""
    if not isinstance(data, torch.Tensor):
        raise pickle.UnpicklingError(f"parameter data must be a tensor, got {type(data).__name__}")
    if backward_hooks or state:
        raise pickle.UnpicklingError("parameters with hooks or extra attributes are not supported")
    return torch.nn.Parameter(data, requires_grad=bool(requires_grad))


def numpy_dtype(code: Any, align: bool = False, copy: bool = True) -> np.dtype:
    """Stand-in for `numpy.dtype`: plain numeric dtypes only (always a fresh copy, which BUILD may modify)."""
    if not isinstance(code, str):
        raise pickle.UnpicklingError(f"refusing NumPy dtype {code!r:.100}")
    dtype = np.dtype(code, bool(align), True)
    if dtype.kind not in NUMERIC_NUMPY_KINDS or dtype.hasobject:
        raise pickle.UnpicklingError(f"refusing non-numeric NumPy dtype {code!r}")
    return dtype


def numpy_scalar(dtype: np.dtype, data: bytes) -> np.generic:
    """Stand-in for `numpy.core.multiarray.scalar`: a numeric scalar from its raw bytes."""
    if not isinstance(dtype, np.dtype) or dtype.kind not in NUMERIC_NUMPY_KINDS or dtype.hasobject:
        raise pickle.UnpicklingError("refusing a non-numeric NumPy scalar")
    if not isinstance(data, bytes) or len(data) != dtype.itemsize:
        raise pickle.UnpicklingError("malformed NumPy scalar")
    return np.frombuffer(data, dtype=dtype)[0].copy()


def numpy_reconstruct(cls: Any, shape: Any, dtype_code: Any) -> np.ndarray:
    """Stand-in for `numpy.core.multiarray._reconstruct`: an empty ndarray that BUILD then fills."""
    if cls is not np.ndarray:
        raise pickle.UnpicklingError("only plain NumPy arrays are supported")
    return np.ndarray.__new__(np.ndarray, shape, dtype_code)


def numpy_frombuffer(buffer: Any, dtype: np.dtype, shape: tuple, order: str) -> np.ndarray:
    """Stand-in for `numpy._core.numeric._frombuffer` (arrays in protocol-5 pickles): numeric dtypes only."""
    if not isinstance(dtype, np.dtype) or dtype.kind not in NUMERIC_NUMPY_KINDS or dtype.hasobject:
        raise pickle.UnpicklingError("refusing a non-numeric NumPy array")
    if order not in ("C", "F"):
        raise pickle.UnpicklingError(f"malformed NumPy array order {order!r}")
    return np.frombuffer(buffer, dtype=dtype).reshape(shape, order=order).copy(order="K")


def latin1_encode(text: str, encoding: str = "utf-8") -> bytes:
    """Stand-in for `_codecs.encode` (protocol-2 bytes): latin-1 text to bytes only."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError(f"refusing _codecs.encode with encoding {encoding!r}")
    return text.encode("latin1")


SAFE_GLOBALS: dict[tuple[str, str], Any] = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("__builtin__", "set"): set,
    ("__builtin__", "frozenset"): frozenset,
    ("_codecs", "encode"): latin1_encode,
    ("torch._utils", "_rebuild_tensor_v2"): rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): rebuild_parameter,
    ("torch.storage", "_load_from_bytes"): load_legacy_storage,
    ("torch", "device"): torch.device,
    ("numpy", "dtype"): numpy_dtype,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy.core.multiarray", "scalar"): numpy_scalar,
    ("numpy._core.multiarray", "scalar"): numpy_scalar,
    ("numpy.core.multiarray", "_reconstruct"): numpy_reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): numpy_reconstruct,
    ("numpy.core.numeric", "_frombuffer"): numpy_frombuffer,
    ("numpy._core.numeric", "_frombuffer"): numpy_frombuffer,
    ("dnnlib.util", "EasyDict"): dnnlib.EasyDict,
    ("dnnlib", "EasyDict"): dnnlib.EasyDict,
}


def _module_class(module: str, name: str) -> type | None:
    """The `torch.nn.Module` subclass `module.name` defined in one of SAFE_CLASS_MODULES or in a module the user
    trusts (`dnnlib.trust`: --trust-module / $GAN_TRUSTED_MODULES), else None. Untrusted modules are never imported."""
    if not name.isidentifier() or name.startswith("_"):
        return None
    if module in SAFE_CLASS_MODULES:
        allowed = (module,)
    elif trust.is_user_trusted(module):
        allowed = trust.trusted_modules()
    else:
        return None
    try:
        obj = getattr(importlib.import_module(module), name, None)
    except ImportError as err:
        raise pickle.UnpicklingError(f"cannot import trusted module '{module}' for '{module}.{name}': {err}") from None
    defined_in = getattr(obj, "__module__", "")
    if (
        isinstance(obj, type)
        and issubclass(obj, torch.nn.Module)
        and any(defined_in == m or defined_in.startswith(m + ".") for m in allowed)
    ):
        return obj
    return None


class SafeUnpickler(pickle.Unpickler):
    """Unpickler that admits only allow-listed globals (see the module docstring) and no persistent ids.

    `extra_globals` maps `(module, name)` to the object to use, e.g. the original's persistent-object hook.
    """

    def __init__(self, file: BinaryIO, extra_globals: dict[tuple[str, str], Callable] | None = None):
        super().__init__(file)
        self.extra_globals = extra_globals or {}

    def find_class(self, module: str, name: str) -> Any:
        key = (module, name)
        if key in self.extra_globals:
            return self.extra_globals[key]
        if key in SAFE_GLOBALS:
            return SAFE_GLOBALS[key]
        if module == "torch" and isinstance(getattr(torch, name, None), torch.dtype):
            return getattr(torch, name)
        if module == "torch.nn.modules.container" and name in TORCH_CONTAINERS:
            return getattr(torch.nn, name)
        if module.startswith("dnnlib.tflib"):
            raise pickle.UnpicklingError(
                f"'{module}.{name}': TensorFlow network pickles are not supported by this project; "
                "use a PyTorch network pickle"
            )
        cls = _module_class(module, name)
        if cls is not None:
            return cls
        raise pickle.UnpicklingError(
            f"refusing to load global '{module}.{name}': not on the allow-list of safe network pickle contents"
            + trust.trust_hint(module)
        )

    def persistent_load(self, pid: Any) -> Any:
        raise pickle.UnpicklingError("persistent ids are not allowed in network pickles")


def safe_load(f: BinaryIO, extra_globals: dict[tuple[str, str], Callable] | None = None) -> Any:
    """Unpickle one object from the binary file `f` with `SafeUnpickler`.

    Every failure to decode (refused global, truncated or corrupt data) raises `pickle.UnpicklingError`.
    """
    try:
        return SafeUnpickler(f, extra_globals).load()
    except pickle.UnpicklingError:
        raise
    except EOFError:
        raise pickle.UnpicklingError("the network pickle is truncated (unexpected end of file)") from None
    except DECODE_ERRORS as error:
        raise pickle.UnpicklingError(f"corrupt network pickle ({type(error).__name__}: {error})") from None
    except MemoryError:  # A damaged length field asks for gigabytes; a real network fits in memory many times.
        raise pickle.UnpicklingError(
            "corrupt network pickle (a length field asks for more memory than exists)"
        ) from None


# ----------------------------------------------------------------------------
# Loading network pickles (used by the training loop, generate.py, calc_metrics.py; `legacy.py` re-exports it).

NETWORK_KEYS = ("G", "D", "G_ema")
FP16_SETTINGS = dict(num_fp16_res=4, conv_clamp=256)


def load_network_pkl(f: BinaryIO, force_fp16: bool = False) -> dict[str, Any]:
    """Read a network pickle from the binary file `f` without running code from it.

    Objects of the original's format become this project's modules. Missing `training_set_kwargs` and
    `augment_pipe` become None. With `force_fp16`, G/G_ema/D are rebuilt with `num_fp16_res=4, conv_clamp=256`
    (tensors copied) when that changes their constructor arguments.
    Raises `pickle.UnpicklingError` for disallowed content and ValueError for a pickle of the wrong shape.
    """
    data = safe_load(f, extra_globals=ORIGINAL_GLOBALS)
    if not isinstance(data, dict):
        raise ValueError(f"not a network pickle: expected a dict of networks, got {type(data).__name__}")
    data = {key: module_from_record(v) if isinstance(v, PersistentRecord) else v for key, v in data.items()}
    data.setdefault("training_set_kwargs", None)
    data.setdefault("augment_pipe", None)

    missing = [key for key in NETWORK_KEYS if not isinstance(data.get(key), torch.nn.Module)]
    if missing:
        raise ValueError(f"not a network pickle: {', '.join(missing)} missing or not a network")
    if not isinstance(data["training_set_kwargs"], (dict, type(None))):
        raise ValueError("not a network pickle: training_set_kwargs must be a dict or None")
    if not isinstance(data["augment_pipe"], (torch.nn.Module, type(None))):
        raise ValueError("not a network pickle: augment_pipe must be a module or None")

    if force_fp16:
        for key in NETWORK_KEYS:
            data[key] = with_fp16_settings(data[key])
    return data


def load_network_pkl_from_url(url_or_path: str, force_fp16: bool = False, verbose: bool = True) -> dict[str, Any]:
    """`load_network_pkl` for a local path, `file://` or http(s) URL (downloads cached by `dnnlib.util`)."""
    with dnnlib.util.open_url(url_or_path, verbose=verbose) as f:
        return load_network_pkl(f, force_fp16=force_fp16)


def with_fp16_settings(module: torch.nn.Module) -> torch.nn.Module:
    """`module` rebuilt with the fp16 settings of train.py (4 fp16 resolutions, clamp 256), or as is if
    they are already set. Only G (synthesis kwargs) and D (own kwargs) have them."""
    init_kwargs = getattr(module, "init_kwargs", None)
    if not isinstance(init_kwargs, dict):
        raise ValueError(f"force_fp16: {type(module).__name__} does not record its constructor arguments")
    kwargs = copy.deepcopy(init_kwargs)
    if "synthesis_kwargs" in kwargs:
        kwargs["synthesis_kwargs"] = {**(kwargs["synthesis_kwargs"] or {}), **FP16_SETTINGS}
    else:
        kwargs.update(FP16_SETTINGS)
    if kwargs == init_kwargs:
        return module
    tensors = module.state_dict(keep_vars=True)
    return build_module(type(module), (), kwargs, tensors, training=module.training)
