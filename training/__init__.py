"""Training package: networks, losses, the training loop, datasets, augmentation and checkpoints."""
