"""Inference: single-scale and multi-scale + flip test-time augmentation, prediction files."""
