"""Classification lab: backbones, Mixup / Manifold Mixup, FGSM / PGD, and a tiny train -> eval -> ood run."""

import json
import re

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from adaptivemix.classifier import OrthogonalClassifier
from adaptivemix.mixing import MixDraw
from labs.classify import data as data_makers
from labs.classify.attacks import fgsm, pgd
from labs.classify.backbones import make_backbone
from labs.classify.cli import cli
from labs.classify.data import random_crop_flip
from labs.classify.methods import ORTH_SCALE, ImageClassifier, MethodOptions, training_loss
from labs.classify.report import collect, render
from labs.classify.train import load_checkpoint
from labs.common.data import load_images
from tests.conftest import make_image_zip


@pytest.mark.parametrize("name,dim", [("small-cnn", 128), ("preact-resnet18", 512), ("wrn-28-10", 640)])
def test_backbone_feature_shapes(name, dim):
    torch.manual_seed(0)
    net = make_backbone(name, in_channels=3).eval()
    with torch.no_grad():
        assert net(torch.randn(2, 3, 8, 8)).shape == (2, dim)


def _model(method: str) -> ImageClassifier:
    torch.manual_seed(0)
    return ImageClassifier("small-cnn", 1, 3, method, mean=[0.5], std=[0.25]).eval()


def test_manifold_mixup_mixes_the_hidden_batch_of_the_chosen_stage():
    model = _model("manifold-mixup")
    x = torch.rand(4, 1, 16, 16)
    draw = MixDraw(perm=torch.tensor([2, 0, 3, 1]), lam=0.35)
    with torch.no_grad():
        h = (x - 0.5) / 0.25
        h = model.backbone.stages[0](h)
        h = 0.35 * h + 0.65 * h[[2, 0, 3, 1]]
        for stage in model.backbone.stages[1:]:
            h = stage(h)
        torch.testing.assert_close(model.features(x, mix_at=1, draw=draw), h)


@pytest.mark.parametrize("method", ["mixup", "manifold-mixup", "orth-mixup", "orth-manifold-mixup"])
def test_mixup_losses_match_direct_computation(method):
    model = _model(method)
    x, y = torch.rand(6, 1, 16, 16), torch.tensor([0, 1, 2, 0, 1, 2])
    torch.manual_seed(5)
    np.random.seed(5)
    with torch.no_grad():
        loss, logs = training_loss(model, method, x, y, MethodOptions(alpha=2.0))
    torch.manual_seed(5)
    np.random.seed(5)
    perm = torch.randperm(6)
    lam = np.random.beta(2.0, 2.0)
    stages = model.backbone.mix_stages
    mix_at = int(stages[np.random.randint(len(stages))]) if "manifold" in method else 0
    assert logs.get("mix_at", 0.0) == mix_at
    assert isinstance(model.head, OrthogonalClassifier) == method.startswith("orth")
    h = (x - 0.5) / 0.25
    with torch.no_grad():
        for index, stage in enumerate(model.backbone.stages):
            h = lam * h + (1 - lam) * h[perm] if index == mix_at else h
            h = stage(h)
        logp = torch.log_softmax(model.head(h).double(), dim=1)
    expected = -(lam * logp[torch.arange(6), y] + (1 - lam) * logp[torch.arange(6), y[perm]]).mean()
    assert float(loss) == pytest.approx(float(expected), rel=1e-5)


def test_fgsm_is_the_hand_computed_sign_gradient_step_on_a_linear_model():
    torch.manual_seed(0)
    linear = torch.nn.Linear(12, 3).double()
    model = torch.nn.Sequential(torch.nn.Flatten(), linear)
    x = torch.rand(5, 1, 3, 4, dtype=torch.float64)
    y = torch.tensor([0, 1, 2, 1, 0])
    w, b = linear.weight.detach().numpy(), linear.bias.detach().numpy()
    xf = x.reshape(5, 12).numpy()
    z = xf @ w.T + b
    p = np.exp(z - z.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    grad = (p - np.eye(3)[y.numpy()]) @ w  # d CE / d x for softmax regression.
    expected = np.clip(xf + 0.1 * np.sign(grad), 0, 1).reshape(x.shape)
    np.testing.assert_allclose(fgsm(model, x, y, eps=0.1).numpy(), expected, atol=1e-12)


@pytest.mark.parametrize("random_start", [False, True])
def test_pgd_stays_in_the_eps_ball_and_never_lowers_the_start_loss(random_start):
    model = _model("ce")
    x, y = torch.rand(8, 1, 16, 16), torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])
    eps = 0.05
    gen = torch.Generator().manual_seed(3)
    # A large step makes the iterates oscillate, so the last one is often not the best.
    adv = pgd(model, x, y, eps=eps, step_size=eps, steps=5, random_start=random_start, generator=gen)
    assert float((adv - x).abs().max()) <= eps + 1e-6 and adv.min() >= 0 and adv.max() <= 1
    start = x
    if random_start:
        noise = torch.rand(x.shape, generator=torch.Generator().manual_seed(3)) * 2 - 1
        start = torch.min(torch.max(x + eps * noise, (x - eps).clamp(0, 1)), (x + eps).clamp(0, 1))
    with torch.no_grad():
        ce = torch.nn.functional.cross_entropy
        assert torch.all(ce(model(adv), y, reduction="none") >= ce(model(start), y, reduction="none") - 1e-6)
        assert float(ce(model(adv), y)) > float(ce(model(x), y))


def test_random_crop_flip_matches_brute_force_crops():
    x = torch.rand(6, 2, 5, 7)
    torch.manual_seed(4)
    out = random_crop_flip(x, pad=2)
    torch.manual_seed(4)
    top, left, flip = torch.randint(0, 5, (6,)), torch.randint(0, 5, (6,)), torch.rand(6) < 0.5
    padded = torch.zeros(6, 2, 9, 11)
    padded[:, :, 2:7, 2:9] = x
    for i in range(6):
        crop = padded[i, :, top[i] : top[i] + 5, left[i] : left[i] + 7]
        torch.testing.assert_close(out[i], crop.flip(2) if flip[i] else crop)


def test_classes_maker_keeps_the_listed_classes_in_order_and_relabels_them(tmp_path):
    source = str(make_image_zip(tmp_path / "src.zip", num_images=20, resolution=8, channels=1, num_classes=5))
    images, labels = load_images(source, use_labels=True)
    keep = [1, 3, 4]  # '3-4,1' names them out of order and as a range: the same classes, sorted.
    runner = CliRunner()
    for relabel, expected in (("--relabel", {1: 0, 3: 1, 4: 2}), ("--keep-labels", {1: 1, 3: 3, 4: 4})):
        dest = str(tmp_path / f"kept{relabel}.zip")
        result = runner.invoke(
            data_makers.cli, ["classes", f"--source={source}", f"--dest={dest}", "--classes=3-4,1", relabel]
        )
        assert result.exit_code == 0, result.output
        kept, kept_labels = load_images(dest, use_labels=True)
        chosen = [i for i in range(20) if int(labels[i]) in keep]
        assert torch.equal(kept, images[chosen])
        assert kept_labels.tolist() == [expected[int(labels[i])] for i in chosen]
    for bad in ("a", "4-2", "1,,2"):
        result = runner.invoke(
            data_makers.cli, ["classes", f"--source={source}", f"--dest={tmp_path}/x.zip", f"--classes={bad}"]
        )
        assert result.exit_code == 2 and "give classes like 0-5 or 0,2,4" in result.output, (bad, result.output)


def _run(args):
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    return result.exit_code, result.output.strip().splitlines()


def test_train_eval_ood_end_to_end_resume_and_errors(tmp_path):
    data = str(make_image_zip(tmp_path / "train.zip", num_images=24, resolution=16, channels=1, num_classes=3))
    other = str(make_image_zip(tmp_path / "other.zip", num_images=12, resolution=16, channels=1, seed=7))
    run = str(tmp_path / "run")
    common = [
        "train",
        f"--data={data}",
        "--method=orth-adaptivemix",
        "--seed=1",
        f"--outdir={run}",
        "--batch=8",
        "--augment",
    ]
    code, out = _run([*common, "--epochs=1"])
    assert code == 0, out
    ckpt = f"{run}/classifier.pt"
    code, out = _run([*common, "--epochs=2", "--resume"])
    assert code == 0 and any("resuming" in line for line in out), out
    for attack in ("none", "fgsm", "pgd", "cw"):
        code, out = _run(
            ["eval", f"--network={ckpt}", f"--data={data}", f"--attack={attack}", "--eps=8/255", "--steps=2"]
        )
        assert code == 0 and re.fullmatch(r"accuracy \d+\.\d\d%", out[-1]), out
    for score in ("adaptivemix", "msp"):
        code, out = _run(
            [
                "ood",
                f"--network={ckpt}",
                f"--train-data={data}",
                f"--in-data={data}",
                f"--out-data={other},{other}",
                f"--score={score}",
            ]
        )
        assert code == 0 and re.fullmatch(r"AUROC [01]\.\d{4} FPR95 [01]\.\d{4} F1 [01]\.\d{4}", out[-1]), out
    with open(f"{run}/results.jsonl") as f:
        records = [json.loads(line) for line in f]
    assert [r["kind"] for r in records] == ["train", "train", "eval", "eval", "eval", "eval", "ood", "ood"]
    assert records[1]["epoch"] == 2 and records[5]["c"] == 0.01
    tables = render(collect(str(tmp_path)))
    assert "| orth-adaptivemix | 1 | " in tables and "PGD-2 8/255 acc. %" in tables and "| adaptivemix | " in tables
    assert tables.index("PGD-2 8/255 acc. %") < tables.index("CW-2 c=0.01 acc. %")
    assert f"| orth-adaptivemix, orth_scale={ORTH_SCALE}, noise_std=0.05 | 1 | " in render(
        collect(str(tmp_path), ("orth_scale", "noise_std"))
    )
    # A checkpoint from before --orth-scale (no orth_scale in its config) loads as the unscaled head.
    state = torch.load(ckpt, weights_only=True)
    config = json.loads(state["config"])
    del config["orth_scale"]
    state["config"] = json.dumps(config)
    torch.save(state, f"{tmp_path}/old.pt")
    assert load_checkpoint(f"{tmp_path}/old.pt")[1].head.scale == 1.0

    # One clear line for bad input.
    unlabeled = str(make_image_zip(tmp_path / "unlabeled.zip", num_images=4, resolution=16, channels=1, num_classes=0))
    small = str(make_image_zip(tmp_path / "small.zip", num_images=4, resolution=8, channels=1))
    alien = str(tmp_path / "alien.pt")
    torch.save({"weights": torch.zeros(2)}, alien)
    pickled = str(tmp_path / "pickled.pkl")
    torch.save({"obj": MixDraw(torch.zeros(1), 0.5)}, pickled)
    for args, message in [
        (["train", f"--data={unlabeled}", "--method=ce", f"--outdir={tmp_path}/r2"], "no integer class labels"),
        (["eval", f"--network={alien}", f"--data={data}"], "another kind"),
        (["eval", f"--network={pickled}", f"--data={data}"], "not a classification-lab checkpoint"),
        (["eval", f"--network={ckpt}", f"--data={small}"], "trained on 1x16x16"),
        (["eval", f"--network={ckpt}", f"--data={data}", "--eps=eight"], "not a number"),
        ([*common, "--epochs=3"], "pass --resume"),
        ([*common, "--epochs=3", "--resume", "--lr=0.5"], "other settings for lr"),
    ]:
        result = CliRunner().invoke(cli, args)
        assert result.exit_code in (1, 2) and isinstance(result.exception, SystemExit), (args, result.output)
        assert message in result.output and "Traceback" not in result.output, (args, result.output)
