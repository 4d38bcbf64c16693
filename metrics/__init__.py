"""Quality metrics (FID, KID, precision/recall, IS, PPL) and their feature detectors."""
