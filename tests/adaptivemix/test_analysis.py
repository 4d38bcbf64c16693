"""adaptivemix.analysis and labs.analyze against direct computations."""

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from conftest import make_image_zip

from adaptivemix.analysis import cycle_partners, feature_compactness, lipschitz_ratio, lipschitz_table, pair_ratios
from labs import analyze
from training.checkpoint import save_network_pkl
from training.networks import Discriminator, Generator


def test_lipschitz_ratio_of_linear_map_equals_direct_formula():
    torch.manual_seed(0)
    w = torch.randn(3, 5)
    a, b = torch.randn(6, 5), torch.randn(6, 5)
    want = np.mean(
        [np.linalg.norm(w.numpy() @ (a[i] - b[i]).numpy()) / np.linalg.norm((a[i] - b[i]).numpy()) for i in range(6)]
    )
    assert lipschitz_ratio(lambda x: x @ w.T, a, b, batch_size=4) == pytest.approx(want, rel=1e-5)
    # A scaled identity has ratio exactly its scale; features given as a tuple use the first entry.
    assert lipschitz_ratio(lambda x: (2.5 * x, None), a, b) == pytest.approx(2.5, rel=1e-6)


def test_pair_ratios_skip_identical_pairs():
    x_a, x_b = torch.tensor([[0.0, 0.0], [1.0, 0.0]]), torch.tensor([[0.0, 0.0], [0.0, 0.0]])
    f_a, f_b = torch.tensor([[7.0], [3.0]]), torch.tensor([[0.0], [0.0]])
    assert pair_ratios(x_a, x_b, f_a, f_b).tolist() == [3.0]  # the first pair has ||a - b|| = 0


def test_cycle_partners_has_no_fixed_point():
    p = cycle_partners(9, torch.Generator().manual_seed(1))
    assert sorted(p.tolist()) == list(range(9)) and all(p[i] != i for i in range(9))
    # One cycle: following partners from 0 visits every sample.
    seen, i = set(), 0
    while i not in seen:
        seen.add(i)
        i = int(p[i])
    assert len(seen) == 9


def test_lipschitz_table_kinds_against_brute_force():
    torch.manual_seed(1)
    w = torch.randn(4, 2, 3, 3)
    real, fake = torch.randn(8, 2, 3, 3), torch.randn(8, 2, 3, 3) + 1

    def features(x):
        return torch.tanh((x[:, None] * w[None]).sum(dim=(2, 3, 4)))

    table = lipschitz_table(features, real, fake, seed=3)
    gen = torch.Generator().manual_seed(3)
    lam = torch.rand(8, generator=gen).view(8, 1, 1, 1)
    mixed = lam * real + (1 - lam) * fake

    def brute(xa, xb):
        return np.mean(
            [
                ((features(xa[i : i + 1]) - features(xb[i : i + 1])).norm() / (xa[i] - xb[i]).norm()).item()
                for i in range(8)
            ]
        )

    perms = [cycle_partners(8, gen) for _ in range(3)]
    assert table["real"] == pytest.approx(brute(real, real[perms[0]]), rel=1e-5)
    assert table["generated"] == pytest.approx(brute(fake, fake[perms[1]]), rel=1e-5)
    assert table["mixed"] == pytest.approx(brute(mixed, mixed[perms[2]]), rel=1e-5)
    assert table["both"] == pytest.approx(brute(real, fake), rel=1e-5)


def test_feature_compactness_against_numpy():
    rng = np.random.default_rng(0)
    feats = np.concatenate([rng.normal(0, 1.0, (20, 3)), rng.normal(5, 0.1, (10, 3))]).astype(np.float32)
    labels = np.array([0] * 20 + [1] * 10)
    result = feature_compactness(torch.from_numpy(feats), labels)
    for k in (0, 1):
        group = feats[labels == k].astype(np.float64)
        assert result.per_class[k] == pytest.approx(np.sqrt(((group - group.mean(0)) ** 2).mean()), rel=1e-6)
    assert result.mean_class == pytest.approx(np.mean([result.per_class[0], result.per_class[1]]))
    assert result.total == pytest.approx(np.sqrt(((feats - feats.mean(0)) ** 2).mean()), rel=1e-5)
    assert result.per_class[1] < result.per_class[0] < result.total
    with pytest.raises(ValueError, match="labels"):
        feature_compactness(torch.from_numpy(feats), labels[:5])


def test_labs_analyze_end_to_end(tmp_path):
    torch.manual_seed(0)
    G = Generator(
        8, 0, 8, 16, 3, mapping_kwargs=dict(num_layers=2), synthesis_kwargs=dict(channel_base=128, channel_max=16)
    )
    D = Discriminator(0, 16, 3, channel_base=128, channel_max=16)
    pkl = tmp_path / "snap.pkl"
    save_network_pkl(pkl, dict(G=G, D=D, G_ema=G, augment_pipe=None, training_set_kwargs=None))
    data = make_image_zip(tmp_path / "d.zip", num_images=12, num_classes=3)
    out = tmp_path / "analysis.json"
    result = CliRunner().invoke(
        analyze.main, ["--network", str(pkl), "--data", str(data), "--num", "12", "--device", "cpu", "--json", str(out)]
    )
    assert result.exit_code == 0, result.output
    numbers = json.loads(out.read_text())
    assert set(numbers["lipschitz"]) == {"real", "generated", "both", "mixed"}
    assert set(numbers["compactness_per_class"]) == {"0", "1", "2"}
    assert "Lipschitz ratio" in result.output
    # The same numbers directly from the library.
    reals, labels, classes = analyze.load_reals(analyze.ImageFolderDataset(str(data), use_labels=True), 12)
    direct = analyze.analyze(D, G, reals, labels, classes, seed=0)
    assert numbers["lipschitz"]["both"] == pytest.approx(direct["lipschitz"]["both"], rel=1e-5)
    assert numbers["relative"]["lipschitz_both"] == pytest.approx(
        direct["lipschitz"]["both"] / direct["compactness"]["total"], rel=1e-5
    )
    # F multiplied by 3: the absolute measures triple, the relative ones stay.
    features = D.features  # (feature map, the rest the epilogue needs): scale the map.
    D.features = lambda x, c: (3 * features(x, c)[0], *features(x, c)[1:])
    tripled = analyze.analyze(D, G, reals, labels, classes, seed=0)
    for kind in ("real", "generated", "both", "mixed"):
        assert tripled["lipschitz"][kind] == pytest.approx(3 * direct["lipschitz"][kind], rel=1e-4)
    for name, value in direct["relative"].items():
        assert tripled["relative"][name] == pytest.approx(value, rel=1e-4)
    assert direct["relative"]["real_mean_class"] == pytest.approx(
        direct["compactness"]["real_mean_class"] / direct["compactness"]["real"]
    )
    bad = CliRunner().invoke(
        analyze.main,
        ["--network", str(pkl), "--data", str(make_image_zip(tmp_path / "e.zip", resolution=8)), "--device", "cpu"],
    )
    assert bad.exit_code == 2 and "expects 3x16^2" in bad.output
