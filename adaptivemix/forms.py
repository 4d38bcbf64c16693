"""The two forms of AdaptiveMix for a GAN discriminator, the one list every command line chooses from.

- `release` (the authors' StyleGAN2 code): every D call is the mixed call of `gan.AdaptiveMixDiscriminatorCall`
  (partners from the same batch, logits J(mix of features) + J(F(mixed input))), with the negative-cosine
  shrinkage term against the detached, noisy mixture of features.
- `paper` (the paper's Eq. 6, `wgan.CrossMixShrinkage`): D scores clean inputs J(F(x)); reals are mixed with
  fakes and the L2 shrinkage term takes its gradient through both sides.

The noise scales (`wgan.NOISE_SCALES`) and shrinkage distances (`mixing.DISTANCES`) are listed beside the code
that uses them and exported with this list from the package.
"""

from __future__ import annotations

FORMS = ("release", "paper")
DEFAULT_FORM = "release"  # train.py's default: the form the authors' StyleGAN2 results were made with.
NOISE_STD = 0.05  # The release's (and the paper's) std sigma of the target noise.
WEIGHT = 1.0  # The release's weight of the shrinkage term in each player's loss.


def check_form(form: str) -> str:
    """`form` if it is one of FORMS, else a ValueError that lists them."""
    if form not in FORMS:
        raise ValueError(f"unknown AdaptiveMix form {form!r}: choose one of {', '.join(FORMS)}")
    return form
