"""AdaptiveMix for classification: training, robustness (attacks) and OOD detection."""
