"""Experiments that let a user see AdaptiveMix and the seed papers' techniques work: `python -m labs.<name>`."""
