"""AdaptiveMix (Liu et al., CVPR 2023): feature-space shrinkage for discriminators and classifiers.

A network is split into a feature extractor F and a head J. Mixing pairs of inputs with a weight
lambda ~ Beta(alpha, alpha) and pulling F(mix) towards the same mix of the two features shrinks
the feature space. `mixing` holds the tensor-level pieces; `gan` the discriminator plug-in.
"""

from .gan import AdaptiveMixDiscriminatorCall, MixedCallResult, split_features
from .mixing import MixDraw, draw_mix, mix, shrinkage_loss

__all__ = [
    "AdaptiveMixDiscriminatorCall",
    "MixDraw",
    "MixedCallResult",
    "draw_mix",
    "mix",
    "shrinkage_loss",
    "split_features",
]
