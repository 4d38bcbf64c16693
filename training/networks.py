"""StyleGAN2 networks (public import point): layers, Generator and the split Discriminator.

The code lives in three modules with one job each: `networks_layers` (modulated conv, equalized-lr layers,
mapping network), `networks_generator` (synthesis layers/blocks/network, Generator) and
`networks_discriminator` (blocks, minibatch-std, epilogue, Discriminator with `features`/`head`).
Configuration written for the original (`training.networks.Generator`, ...) works unchanged.
"""

from torch_utils.ops import normalize_2nd_moment
from training.networks_discriminator import (
    Discriminator,
    DiscriminatorBlock,
    DiscriminatorEpilogue,
    DiscriminatorFeatures,
    MinibatchStdLayer,
)
from training.networks_generator import Generator, SynthesisBlock, SynthesisLayer, SynthesisNetwork, ToRGBLayer
from training.networks_layers import (
    Conv2dLayer,
    FullyConnectedLayer,
    MappingNetwork,
    modulated_conv2d,
)

__all__ = [
    "Conv2dLayer",
    "Discriminator",
    "DiscriminatorBlock",
    "DiscriminatorEpilogue",
    "DiscriminatorFeatures",
    "FullyConnectedLayer",
    "Generator",
    "MappingNetwork",
    "MinibatchStdLayer",
    "SynthesisBlock",
    "SynthesisLayer",
    "SynthesisNetwork",
    "ToRGBLayer",
    "modulated_conv2d",
    "normalize_2nd_moment",
]
