"""The orthogonal head, the mixed classification losses, and the OOD score/metrics, against direct computations."""

import numpy as np
import pytest
import scipy.stats
import torch

from adaptivemix.classifier import (
    AdaptiveMixClassifierLoss,
    OrthogonalClassifier,
    mixup_cross_entropy,
)
from adaptivemix.mixing import MixDraw
from adaptivemix.ood import (
    angle_score,
    auroc,
    best_f1,
    class_representatives,
    fpr_at_tpr,
    msp_score,
)


def _log_softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def test_orthogonal_head_initial_orthonormal_rows_and_cosine_scores():
    torch.manual_seed(0)
    head = OrthogonalClassifier(feature_dim=12, num_classes=5)
    w = head.weight.detach().double().numpy()
    np.testing.assert_allclose(w @ w.T, np.eye(5), atol=1e-6)  # w_k . w_l = 0 for k != l, unit rows.
    v = torch.randn(7, 12) * 3
    expected = np.array(
        [[vi @ wk / (np.linalg.norm(vi) * np.linalg.norm(wk)) for wk in w] for vi in v.double().numpy()]
    )
    np.testing.assert_allclose(head(v).detach().numpy(), expected, atol=1e-6)
    assert sum(p.numel() for p in head.parameters()) == 5 * 12  # No bias.
    # Scores are scale-free (the "norm ball") and bounded by 1.
    np.testing.assert_allclose(head(v * 10).detach().numpy(), expected, atol=1e-6)
    assert head(v).abs().max() <= 1 + 1e-6


def test_orthogonal_head_release_form_is_frozen_absolute_cosine():
    head = OrthogonalClassifier(8, 3, absolute=True, frozen=True)
    assert list(head.parameters()) == [] and "weight" in dict(head.named_buffers())
    v = torch.randn(4, 8)
    signed = OrthogonalClassifier(8, 3)
    signed.weight.data.copy_(head.weight)
    torch.testing.assert_close(head(v), signed(v).abs())
    with pytest.raises(ValueError, match="feature_dim >= 9"):
        OrthogonalClassifier(8, 9)


def test_mixup_cross_entropy_matches_direct_formula():
    torch.manual_seed(1)
    logits, y = torch.randn(6, 4), torch.tensor([0, 1, 2, 3, 1, 0])
    draw = MixDraw(perm=torch.tensor([3, 0, 5, 1, 2, 4]), lam=0.3)
    logp = _log_softmax(logits.double().numpy())
    n = np.arange(6)
    y_b = y.numpy()[draw.perm.numpy()]
    expected = -(0.3 * logp[n, y.numpy()] + 0.7 * logp[n, y_b]).mean()
    assert float(mixup_cross_entropy(logits, y, draw)) == pytest.approx(expected, rel=1e-6)


def test_adaptivemix_classifier_loss_matches_direct_computation():
    torch.manual_seed(2)
    proj = torch.randn(10, 6, dtype=torch.float64, requires_grad=True)
    head = OrthogonalClassifier(6, 3).double()
    x, y = torch.randn(5, 10, dtype=torch.float64), torch.tensor([0, 1, 2, 1, 0])

    def features(inp):
        return torch.nn.functional.normalize(torch.tanh(inp @ proj), dim=1)

    torch.manual_seed(3)
    np.random.seed(3)
    loss, result, shrink = AdaptiveMixClassifierLoss(noise_std=0.05, alpha=1.0)(features, head, x, y)

    # Same draws by hand, in the same order: permutation (torch), lambda (NumPy), target noise (torch).
    torch.manual_seed(3)
    np.random.seed(3)
    perm = torch.randperm(5).numpy()
    lam = np.random.beta(1.0, 1.0)
    noise = (torch.randn(5, 6, dtype=torch.float32) * 0.05).double().numpy()
    xn, pn = x.numpy(), proj.detach().numpy()

    def feat(a):
        h = np.tanh(a @ pn)
        return h / np.linalg.norm(h, axis=1, keepdims=True)

    w = head.weight.detach().numpy()
    w = w / np.linalg.norm(w, axis=1, keepdims=True)

    def cos_head(v):
        return (v / np.linalg.norm(v, axis=1, keepdims=True)) @ w.T

    v_hat = feat(lam * xn + (1 - lam) * xn[perm])
    v_a = feat(xn)
    m = lam * v_a + (1 - lam) * v_a[perm]
    logits = cos_head(m) + cos_head(v_hat)
    logp = _log_softmax(logits)
    ce = -(lam * logp[np.arange(5), y.numpy()] + (1 - lam) * logp[np.arange(5), y.numpy()[perm]]).mean()
    mse = ((v_hat - (m + noise)) ** 2).mean()
    assert result.draw.lam == pytest.approx(lam) and result.draw.perm.tolist() == perm.tolist()
    np.testing.assert_allclose(result.logits.detach().numpy(), logits, atol=1e-10)
    assert float(shrink.detach()) == pytest.approx(mse, rel=1e-9)
    assert float(loss.detach()) == pytest.approx(ce + mse, rel=1e-9)
    # Stop-gradient: the shrinkage term sends no gradient into the target mixture's features.
    grad_target = torch.autograd.grad(shrink, result.target, allow_unused=True)[0]
    assert grad_target is None or float(grad_target.abs().sum()) == 0


def test_class_representative_is_numpy_first_singular_vector_and_angle_score_brute_force():
    rng = np.random.default_rng(0)
    feats = rng.normal(size=(40, 5))
    preds = rng.integers(0, 3, size=40)
    preds[preds == 2] = 1  # Class 2 is never predicted: no representative.
    reps = class_representatives(torch.from_numpy(feats).float(), torch.from_numpy(preds), num_classes=3)
    assert reps.shape == (2, 5)
    for row, k in zip(reps.numpy(), (0, 1)):
        vt0 = np.linalg.svd(feats[preds == k], full_matrices=False)[2][0]
        assert abs(float(row @ vt0)) == pytest.approx(1.0, abs=1e-5)  # Same line (sign is arbitrary).
    test = rng.normal(size=(9, 5))
    brute = [
        min(np.arccos(min(1.0, abs(t @ r) / np.linalg.norm(t))) for r in reps.numpy().astype(np.float64)) for t in test
    ]
    np.testing.assert_allclose(angle_score(torch.from_numpy(test).float(), reps).numpy(), brute, atol=1e-5)
    # A feature on a class line scores 0, whatever its length or sign.
    assert float(angle_score(-3 * reps[:1], reps)[0]) == pytest.approx(0.0, abs=1e-3)


def test_msp_score_is_negative_max_softmax():
    logits = torch.tensor([[2.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    np.testing.assert_allclose(msp_score(logits).numpy(), [-np.exp(2) / (np.exp(2) + 2), -1 / 3], rtol=1e-6)


def _brute_force(in_scores, out_scores):
    """AUROC by pairs, FPR95 and best F1 by trying every threshold (flag OOD iff score >= t)."""
    pairs = [(o > i) + 0.5 * (o == i) for o in out_scores for i in in_scores]
    auc = sum(pairs) / len(pairs)
    candidates = sorted(set(in_scores) | set(out_scores) | {np.inf}, reverse=True)
    fpr95, f1 = None, 0.0
    for t in candidates:
        tp = sum(o >= t for o in out_scores)
        fp = sum(i >= t for i in in_scores)
        fn = len(out_scores) - tp
        if fpr95 is None and tp / len(out_scores) >= 0.95:
            fpr95 = fp / len(in_scores)
        if tp:
            f1 = max(f1, 2 * tp / (2 * tp + fp + fn))
    return auc, fpr95, f1


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_detection_metrics_match_brute_force_and_mann_whitney(seed):
    rng = np.random.default_rng(seed)
    in_scores = list(np.round(rng.normal(0, 1, size=37), 1))  # Rounded: many ties.
    out_scores = list(np.round(rng.normal(0.8, 1, size=23), 1))
    auc, fpr95, f1 = _brute_force(in_scores, out_scores)
    assert auroc(in_scores, out_scores) == pytest.approx(auc, abs=1e-12)
    u = scipy.stats.mannwhitneyu(out_scores, in_scores).statistic
    assert auroc(in_scores, out_scores) == pytest.approx(u / (len(in_scores) * len(out_scores)), abs=1e-12)
    assert fpr_at_tpr(in_scores, out_scores) == pytest.approx(fpr95, abs=1e-12)
    assert best_f1(in_scores, out_scores) == pytest.approx(f1, abs=1e-12)


def test_detection_metrics_hand_made_values():
    in_scores, out_scores = [0.1, 0.2, 0.3, 0.9], [0.4, 0.8, 1.0]
    # Pairs with out > in: 0.4 beats 3, 0.8 beats 3, 1.0 beats 4 -> 10 / 12.
    assert auroc(in_scores, out_scores) == pytest.approx(10 / 12)
    # Flagging all 3 OOD needs t <= 0.4: in-dist 0.9 is flagged -> FPR 1/4.
    assert fpr_at_tpr(in_scores, out_scores) == pytest.approx(0.25)
    # t = 0.4: TP 3, FP 1, FN 0 -> F1 = 6 / 7 (the best).
    assert best_f1(in_scores, out_scores) == pytest.approx(6 / 7)
    assert auroc([0.0, 0.0], [1.0]) == 1.0 and auroc([1.0], [0.0, 0.0]) == 0.0
    with pytest.raises(ValueError, match="at least one"):
        auroc([], [1.0])
