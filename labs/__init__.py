"""Experiments that let a user see AdaptiveMix and the seed papers' techniques work, each run as
`python -m labs.<lab>`: `toy` (2D mixtures, the paper's Fig. 3 and PacGAN's ring and grid), `dcgan` (DCGAN/WGAN
on an image zip, the paper's Tables 2 and 4, stacked images), `modes` (mode coverage of a stacked `dcgan` run),
`ssl` (Salimans et al.'s semi-supervised GAN), `classify` (classification, adversarial robustness, OOD detection),
`analyze` (Lipschitz ratio and feature compactness of a StyleGAN2 snapshot's D) and `compare` (runs compared on
the same seeds); `common` holds what several labs share (the image loader, losses, objectives, snapshots).
labs/README.md gives each lab's command and the docs page of its results; nothing outside labs/ imports it."""
