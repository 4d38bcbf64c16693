"""PyTorch helpers: shape checks, samplers, parameter copies, training statistics, custom op builds."""
