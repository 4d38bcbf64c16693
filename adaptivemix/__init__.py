"""AdaptiveMix (Liu et al., CVPR 2023): feature-space shrinkage for discriminators and classifiers.

A network is split into a feature extractor F and a head J. Mixing pairs of inputs with a weight
lambda ~ Beta(alpha, alpha) and pulling F(mix) towards the same mix of the two features shrinks
the feature space. `mixing` holds the tensor-level pieces; `gan` the discriminator plug-in of the authors'
release; `wgan` the paper's WGAN form (Eq. 6: reals mixed with fakes, L2, no stop-gradient, J = mean); `forms`
the names of those two forms (FORMS), with the noise scales and distances they take.
"""

from .forms import DEFAULT_FORM, FORMS, NOISE_STD, WEIGHT, check_form
from .gan import AdaptiveMixDiscriminatorCall, MixedCallResult, split_features
from .mixing import DISTANCES, MixDraw, draw_mix, mix, shrinkage_loss
from .wgan import NOISE_SCALES, CrossMixShrinkage, mean_head, target_noise

__all__ = [
    "AdaptiveMixDiscriminatorCall",
    "CrossMixShrinkage",
    "DEFAULT_FORM",
    "DISTANCES",
    "FORMS",
    "MixDraw",
    "MixedCallResult",
    "NOISE_SCALES",
    "NOISE_STD",
    "WEIGHT",
    "check_form",
    "draw_mix",
    "mean_head",
    "mix",
    "shrinkage_loss",
    "split_features",
    "target_noise",
]
