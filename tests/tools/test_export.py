"""training.export: safetensors round trip into the Generator without pickle; ONNX against PyTorch (onnxruntime)."""

import importlib.util
import os

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from test_style_mixing import write_snapshot

from training import export
from training.networks import Generator

needs_safetensors = pytest.mark.skipif(
    importlib.util.find_spec("safetensors") is None, reason="safetensors not installed"
)
needs_onnx = pytest.mark.skipif(
    any(importlib.util.find_spec(m) is None for m in ("onnx", "onnxscript", "onnxruntime")),
    reason="onnx/onnxscript/onnxruntime not installed",
)


def _generator(c_dim: int = 0) -> Generator:
    torch.manual_seed(1)
    G = Generator(
        8,
        c_dim,
        8,
        8,
        3,
        mapping_kwargs=dict(num_layers=2),
        synthesis_kwargs=dict(channel_base=64, channel_max=8, conv_clamp=256),
    )
    with torch.no_grad():
        G.mapping.w_avg.normal_()
        for name, buf in G.named_buffers():
            if name.endswith("noise_const"):
                buf.normal_()
    return G.eval().requires_grad_(False)


@needs_safetensors
@pytest.mark.parametrize("c_dim", [0, 3])
def test_safetensors_round_trip_restores_every_tensor_and_output(tmp_path, c_dim):
    G = _generator(c_dim)
    paths = export.save_safetensors(G, str(tmp_path))
    assert sorted(os.listdir(tmp_path)) == ["generator.json", "generator.safetensors"] and len(paths) == 2
    H = export.load_exported_generator(str(tmp_path))
    assert type(H) is Generator and H.init_kwargs == G.init_kwargs
    for (name, a), (name_b, b) in zip(G.state_dict().items(), H.state_dict().items(), strict=True):
        assert name == name_b and torch.equal(a, b), name
    z = torch.randn([4, 8])
    c = torch.eye(3)[[0, 1, 2, 0]] if c_dim else None
    torch.testing.assert_close(
        H(z, c, truncation_psi=0.7, noise_mode="const"), G(z, c, truncation_psi=0.7, noise_mode="const"), rtol=0, atol=0
    )


@needs_safetensors
def test_cli_exports_a_snapshot_and_bad_folders_say_so(tmp_path):
    G = _generator()
    network = write_snapshot(str(tmp_path / "net.pkl"), G)
    result = CliRunner().invoke(
        export.main, [f"--network={network}", "--format=safetensors", f"--outdir={tmp_path / 'out'}"]
    )
    assert result.exit_code == 0, result.output + repr(result.exception)
    z = torch.randn([2, 8])
    torch.testing.assert_close(
        export.load_exported_generator(str(tmp_path / "out"))(z, None), G(z, None), rtol=0, atol=0
    )
    with pytest.raises(ValueError, match="not a readable export config"):
        export.load_exported_generator(str(tmp_path))


def test_missing_optional_package_gives_the_install_command(tmp_path, monkeypatch):
    real_import = importlib.import_module
    monkeypatch.setattr(
        importlib,
        "import_module",
        lambda name: (_ for _ in ()).throw(ImportError(name)) if name.startswith("safetensors") else real_import(name),
    )
    network = write_snapshot(str(tmp_path / "net.pkl"), _generator())
    result = CliRunner().invoke(
        export.main, [f"--network={network}", "--format=safetensors", f"--outdir={tmp_path / 'out'}"]
    )
    assert result.exit_code == 1 and "pip install .[export]" in result.output and "Traceback" not in result.output


@needs_onnx
@pytest.mark.slow
def test_onnx_export_matches_pytorch_at_another_batch_size_and_psi(tmp_path):
    G = _generator(c_dim=3)
    (path,) = export.save_onnx(G, str(tmp_path))
    z = np.random.default_rng(0).standard_normal([5, 8]).astype(np.float32)  # The example batch was 2.
    c = np.eye(3, dtype=np.float32)[[2, 0, 1, 1, 0]]
    got = export.run_onnx(path, z, 0.6, c)
    with torch.no_grad():
        want = G(torch.from_numpy(z), torch.from_numpy(c), truncation_psi=0.6, noise_mode="const").numpy()
    assert got.shape == want.shape == (5, 3, 8, 8)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-4)
