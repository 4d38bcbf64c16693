"""dnnlib.trust: class names in files resolve only to this project's classes, torch optimizers and modules the
user trusts (--trust-module / $GAN_TRUSTED_MODULES); nothing else is imported or run, by any entry point."""

import os
import pickle
import sys

import pytest
import torch
from click.testing import CliRunner

import calc_metrics
import generate
import train
from dnnlib import trust
from training.checkpoint import safe_load, save_network_pkl
from training.networks import Discriminator, Generator

USER_PACKAGE = "h1_user_networks"
USER_SOURCE = """
import os
import torch
open(os.environ["H1_IMPORT_MARKER"], "w").close()  # Shows whether the module was imported.


class MyG(torch.nn.Module):
    pass


def make_g():
    return MyG()


class UserG(torch.nn.Module):  # A generator of the user's own, built from torch.nn layers.
    z_dim, c_dim = 4, 0

    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(4, 3 * 4 * 4)

    def forward(self, z, c, truncation_psi=1, noise_mode="const"):
        return torch.tanh(self.fc(z.float())).reshape(-1, 3, 4, 4)
"""
# protocol 2: GLOBAL h1_user_networks.MyG, EMPTY_TUPLE, NEWOBJ, STOP (an instance built without __init__).
USER_PICKLE = b"\x80\x02c" + USER_PACKAGE.encode() + b"\nMyG\n)\x81."


@pytest.fixture
def user_package(tmp_path, monkeypatch):
    (tmp_path / f"{USER_PACKAGE}.py").write_text(USER_SOURCE)
    marker = tmp_path / "imported"
    monkeypatch.setenv("H1_IMPORT_MARKER", str(marker))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delenv(trust.TRUSTED_MODULES_ENV, raising=False)
    yield marker
    sys.modules.pop(USER_PACKAGE, None)


@pytest.mark.parametrize(
    "name",
    [
        "os.system",
        "logging.basicConfig",
        "numpy.savez",
        "torch.hub.load",
        "builtins.eval",
        "subprocess.Popen",
        "collections.OrderedDict",
        "training.dataset.os",
        "training.dataset.os.system",
        "training.training_loop.training_loop",
        "dnnlib.util.Logger",
        "torch.optim.lr_scheduler",
        "torch.optim.os",
        "x",
        5,
    ],
)
def test_names_outside_the_allow_list_are_refused(name):
    with pytest.raises(trust.UntrustedNameError, match="refusing"):
        trust.resolve_class_name(name, where="training_options.json")


def test_project_classes_and_optimizers_resolve():
    assert trust.resolve_class_name("training.networks.Generator") is Generator
    assert trust.resolve_class_name("training.dataset.ImageFolderDataset").__name__ == "ImageFolderDataset"
    assert trust.resolve_class_name("torch.optim.Adam") is torch.optim.Adam


def test_user_module_only_on_the_users_word(user_package, monkeypatch):
    with pytest.raises(trust.UntrustedNameError, match=f"--trust-module={USER_PACKAGE}"):
        trust.resolve_class_name(f"{USER_PACKAGE}.MyG")
    with pytest.raises(pickle.UnpicklingError, match="refusing to load global"):
        safe_load(__import__("io").BytesIO(USER_PICKLE))
    assert not user_package.exists() and USER_PACKAGE not in sys.modules  # Never imported.

    monkeypatch.setenv(trust.TRUSTED_MODULES_ENV, f"other,{USER_PACKAGE}")
    cls = trust.resolve_class_name(f"{USER_PACKAGE}.MyG")
    assert cls.__name__ == "MyG" and user_package.exists()
    assert isinstance(trust.resolve_class_name(f"{USER_PACKAGE}.make_g")(), cls)  # Functions too, when trusted.
    assert type(safe_load(__import__("io").BytesIO(USER_PICKLE))) is cls
    with pytest.raises(trust.UntrustedNameError):  # Trusting a module does not trust what it imports.
        trust.resolve_class_name(f"{USER_PACKAGE}.os")


def test_trust_modules_option_extends_the_environment_and_checks_names(monkeypatch):
    monkeypatch.setenv(trust.TRUSTED_MODULES_ENV, "a")
    trust.trust_modules(["b.c", "a"])
    assert trust.trusted_modules() == ("a", "b.c") and trust.is_user_trusted("b.c.d") and not trust.is_user_trusted("b")
    with pytest.raises(ValueError, match="not a Python module name"):
        trust.trust_modules(["os; rm -rf"])


@pytest.mark.parametrize(
    "class_name, kwargs",
    [
        ("logging.basicConfig", dict(filename="LOG")),
        ("numpy.savez", dict(file="LOG", x=[1])),
        ("torch.hub.load", dict(repo_or_dir="DIR", model="m", source="local")),
    ],
)
def test_snapshot_dataset_class_names_run_nothing_in_calc_metrics(tmp_path, class_name, kwargs):
    hub = tmp_path / "hub"
    hub.mkdir()
    (hub / "hubconf.py").write_text(f"open({str(tmp_path / 'LOG')!r}, 'w').close()\ndef m():\n    pass\n")
    kwargs = {k: str(tmp_path / "LOG") if v == "LOG" else str(hub) if v == "DIR" else v for k, v in kwargs.items()}
    G = Generator(
        8, 0, 8, 8, 1, mapping_kwargs=dict(num_layers=1), synthesis_kwargs=dict(channel_base=32, channel_max=8)
    )
    D = Discriminator(0, 8, 1, channel_base=32, channel_max=8)
    network = tmp_path / "snapshot.pkl"
    save_network_pkl(
        network, dict(G=G, D=D, G_ema=G, augment_pipe=None, training_set_kwargs=dict(class_name=class_name, **kwargs))
    )
    result = CliRunner().invoke(calc_metrics.calc_metrics, [f"--network={network}", "--metrics=fid50k_full"])
    assert result.exit_code == 2 and f'refusing "{class_name}"' in result.output, result.output
    assert "or pass --data" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "LOG").exists() and not (tmp_path / "LOG.npz").exists()


def test_generate_and_calc_metrics_take_trust_module(user_package, tmp_path):
    network = tmp_path / "user.pkl"
    network.write_bytes(USER_PICKLE)
    for command, extra in [
        (generate.generate_images, ["--seeds=0", f"--outdir={tmp_path / 'out'}"]),
        (calc_metrics.calc_metrics, ["--metrics=none"]),
    ]:
        refused = CliRunner().invoke(command, [f"--network={network}", *extra])
        assert refused.exit_code == 1 and "refusing to load global" in refused.output, refused.output
        assert f"--trust-module={USER_PACKAGE}" in refused.output and not user_package.exists()
        trusted = CliRunner().invoke(command, [f"--network={network}", f"--trust-module={USER_PACKAGE}", *extra])
        assert "refusing" not in trusted.output and user_package.exists()  # Now it loads (then fails: no dict).
        assert "not a network pickle" in trusted.output, trusted.output
        os.environ.pop(trust.TRUSTED_MODULES_ENV, None)
        user_package.unlink()
        sys.modules.pop(USER_PACKAGE, None)


def test_refusals_never_suggest_trusting_the_standard_library_or_torch():
    for name in ("os.system", "posix.system", "torch.hub.load", "builtins.eval"):
        with pytest.raises(trust.UntrustedNameError) as info:
            trust.resolve_class_name(name)
        assert "--trust-module" not in str(info.value)
    with pytest.raises(pickle.UnpicklingError) as info:
        safe_load(__import__("io").BytesIO(b"\x80\x02cposix\nsystem\n."))
    assert "--trust-module" not in str(info.value)


def test_generate_from_a_users_own_generator_made_of_torch_nn_layers(user_package, tmp_path, monkeypatch):
    monkeypatch.setenv(trust.TRUSTED_MODULES_ENV, USER_PACKAGE)  # Needed to import it and write the snapshot.
    G = trust.resolve_class_name(f"{USER_PACKAGE}.UserG")()
    network = tmp_path / "user-snapshot.pkl"
    save_network_pkl(network, dict(G=G, D=G, G_ema=G, augment_pipe=None, training_set_kwargs=None))
    monkeypatch.delenv(trust.TRUSTED_MODULES_ENV)
    out = tmp_path / "out"
    refused = CliRunner().invoke(
        generate.generate_images,
        [f"--network={network}", "--seeds=0", f"--outdir={out}", f"--trust-module={USER_PACKAGE}"],
    )
    assert refused.exit_code == 1 and "'torch.nn.modules.linear.Linear'" in refused.output, refused.output
    os.environ.pop(trust.TRUSTED_MODULES_ENV, None)
    result = CliRunner().invoke(
        generate.generate_images,
        [f"--network={network}", "--seeds=0", f"--outdir={out}", f"--trust-module={USER_PACKAGE},torch.nn"],
    )
    os.environ.pop(trust.TRUSTED_MODULES_ENV, None)
    assert result.exit_code == 0, result.output
    assert os.listdir(out) == ["seed0000.png"]


@pytest.mark.parametrize(
    "command, required",
    [
        (generate.generate_images, ["--network=N/net.pkl", "--outdir=N/out", "--seeds=0"]),
        (calc_metrics.calc_metrics, ["--network=N/net.pkl"]),
        (train.main, ["--outdir=N/runs"]),
    ],
    ids=["generate", "calc_metrics", "train"],
)
def test_a_bad_trust_module_name_is_a_one_line_usage_error_in_every_script(command, required, monkeypatch, tmp_path):
    monkeypatch.delenv(trust.TRUSTED_MODULES_ENV, raising=False)
    args = [arg.replace("N/", f"{tmp_path}/") for arg in required] + ["--trust-module=ok.name,not a name"]
    result = CliRunner().invoke(command, args)
    assert result.exit_code == 2 and "Traceback" not in result.output, result.output
    assert '--trust-module: "not a name" is not a Python module name' in result.output
    assert os.environ.get(trust.TRUSTED_MODULES_ENV) is None  # Nothing was trusted.
    assert list(tmp_path.iterdir()) == []  # Refused before anything was read or written.
