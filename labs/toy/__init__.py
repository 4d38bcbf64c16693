"""The 2D toy lab (rings, grids, Swiss roll): small MLP GANs, one objective/technique grid per call."""
