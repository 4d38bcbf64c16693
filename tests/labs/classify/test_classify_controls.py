"""Classification lab, issue 21's additions: the scaled orthogonal head, the CW-L2 attack against closed forms,
and the paired-difference table of the report."""

import math

import numpy as np
import pytest
import scipy.stats
import torch

from adaptivemix.classifier import OrthogonalClassifier
from labs.classify.attacks import carlini_wagner_l2
from labs.classify.report import _group, render_paired


@pytest.mark.parametrize("absolute", [False, True])
def test_orthogonal_head_scale_multiplies_the_cosine(absolute):
    torch.manual_seed(0)
    plain = OrthogonalClassifier(10, 4, absolute=absolute, frozen=absolute)
    scaled = OrthogonalClassifier(10, 4, absolute=absolute, frozen=absolute, scale=16.0)
    scaled.weight.data.copy_(plain.weight)
    v = torch.randn(5, 10)
    w = plain.weight.detach()
    cos = (v / v.norm(dim=1, keepdim=True)) @ (w / w.norm(dim=1, keepdim=True)).t()
    torch.testing.assert_close(plain(v), cos.abs() if absolute else cos)
    torch.testing.assert_close(scaled(v), 16.0 * (cos.abs() if absolute else cos))
    with pytest.raises(ValueError, match="scale must be > 0"):
        OrthogonalClassifier(10, 4, scale=0.0)


def test_unscaled_head_bounds_the_softmax_as_the_docstring_says():
    # Logits in [-1, 1]: the best case is cos = 1 for the true class and -1 for the K - 1 others.
    k = 6
    bound = math.e / (math.e + (k - 1) / math.e)
    assert bound == pytest.approx(0.596, abs=1e-3)
    head = OrthogonalClassifier(k, k)
    w = head.weight.detach()
    v = w[0] - w[1:].sum(dim=0) / 1e3  # Aligned with class 0, slightly away from the rest.
    with torch.no_grad():
        assert float(torch.softmax(head(v[None]), dim=1)[0, 0]) <= bound + 1e-6
        head.scale = 16.0  # The scaled head can be confident on the same feature.
        assert float(torch.softmax(head(v[None]), dim=1)[0, 0]) > 0.999


def _binary_linear_case():
    """A 2-class linear model, inputs well inside [0, 1], and the closed-form minimal L2 perturbations."""
    torch.manual_seed(0)
    linear = torch.nn.Linear(12, 2).double()
    model = torch.nn.Sequential(torch.nn.Flatten(), linear)
    x = 0.45 + 0.1 * torch.rand(6, 1, 3, 4, dtype=torch.float64)
    with torch.no_grad():
        z = model(x)
    y = z.argmax(dim=1)
    w = linear.weight.detach()
    g = torch.where(y[:, None] == 0, w[0] - w[1], w[1] - w[0])  # Gradient of the margin z_y - z_other.
    margin = (z[:, 0] - z[:, 1]).abs()
    # The nearest misclassified point is the projection onto the decision hyperplane: x - margin g / |g|^2.
    return model, x, y, g, margin / g.norm(dim=1)


def test_cw_finds_the_closed_form_minimal_perturbation_of_a_linear_model():
    model, x, y, g, d_min = _binary_linear_case()
    adv = carlini_wagner_l2(model, x, y, c=1.0, steps=100)
    delta = (adv - x).flatten(1)
    with torch.no_grad():
        assert torch.all(model(adv).argmax(dim=1) != y)
    # No misclassified point is closer than d_min; CW gets within 0.5 % of it, along -g.
    np.testing.assert_array_less(d_min.numpy() * (1 - 1e-9), delta.norm(dim=1).numpy())
    np.testing.assert_allclose(delta.norm(dim=1).numpy(), d_min.numpy(), rtol=5e-3)
    cosine = -(delta * g).sum(dim=1) / (delta.norm(dim=1) * g.norm(dim=1))
    assert float(cosine.min()) > 0.999


def test_cw_with_c_below_the_closed_form_threshold_returns_the_clean_images():
    # min |d|^2 + c (m + g.d) over the correct side is at d = -(c / 2) g, which stays correct while
    # c < 2 m / |g|^2 = 2 d_min / |g|: CW then finds nothing and returns x unchanged.
    model, x, y, g, d_min = _binary_linear_case()
    threshold = float((2 * d_min / g.norm(dim=1)).min())
    adv = carlini_wagner_l2(model, x, y, c=0.5 * threshold, steps=100)
    assert torch.equal(adv, x)
    with pytest.raises(ValueError, match="steps >= 1"):
        carlini_wagner_l2(model, x, y, c=1.0, steps=0)


def test_paired_differences_are_per_seed_differences_over_common_seeds():
    table = {
        "a": [{"seed": 0, "clean": 90.0}, {"seed": 1, "clean": 88.0}, {"seed": 2, "clean": 91.0}],
        "b": [{"seed": 0, "clean": 89.0}, {"seed": 1, "clean": 85.0}, {"seed": 7, "clean": 10.0}],
    }
    text = render_paired(table, [("a", "b")])
    diffs = [1.0, 3.0]  # Seeds 0 and 1 only.
    mean, sd = np.mean(diffs), np.std(diffs, ddof=1)
    half = scipy.stats.t.ppf(0.975, 1) * sd / np.sqrt(2)  # Paired-t 95 % CI with one degree of freedom.
    p = scipy.stats.ttest_rel([90.0, 88.0], [89.0, 85.0]).pvalue
    assert f"| paired | 0, 1 | {mean:.2f} ± {sd:.2f} [{mean - half:.2f}, {mean + half:.2f}] p={p:.2g} |" in text
    with pytest.raises(ValueError, match="no runs in group 'c'"):
        render_paired(table, [("a", "c")])


def test_report_groups_name_the_orthogonal_head_settings_only_for_orthogonal_methods():
    config = {"method": "ce", "orth_scale": 8.0, "noise_std": 0.05}
    assert _group(config, ("orth_scale", "noise_std")) == "ce, noise_std=0.05"
    assert _group({**config, "method": "orth-mixup"}, ("orth_scale",)) == "orth-mixup, orth_scale=8.0"
    assert _group({"method": "orth"}, ("orth_scale",)) == "orth, orth_scale=-"


def test_paired_differences_include_the_ood_means_of_each_shared_score():
    def row(seed, auroc, fpr95, f1, msp=None):
        r = {"seed": seed, "clean": 80.0, "adaptivemix|mean|auroc": auroc, "adaptivemix|mean|fpr95": fpr95}
        r["adaptivemix|mean|f1"] = f1
        if msp is not None:
            r["msp|mean|auroc"] = msp  # Only one group has msp: no msp row.
        return r

    table = {
        "a": [row(0, 0.90, 0.20, 0.91, msp=0.7), row(1, 0.80, 0.30, 0.85, msp=0.6)],
        "b": [row(0, 0.85, 0.25, 0.90), row(1, 0.79, 0.28, 0.86)],
    }
    text = render_paired(table, [("a", "b")])
    diffs = np.array([0.05, 0.01])
    mean, sd = diffs.mean(), diffs.std(ddof=1)
    half = scipy.stats.t.ppf(0.975, 1) * sd / np.sqrt(2)
    p = scipy.stats.ttest_rel([0.90, 0.80], [0.85, 0.79]).pvalue
    assert "| a − b, OOD score adaptivemix | seeds | AUROC Δ | FPR95 Δ | best F1 Δ |" in text
    assert f"| paired | 0, 1 | {mean:.3f} ± {sd:.3f} [{mean - half:.3f}, {mean + half:.3f}] p={p:.2g} | " in text
    assert "OOD score msp" not in text
