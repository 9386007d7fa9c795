"""tailseg: large-vocabulary, long-tailed instance segmentation (LVIS Challenge 2021 recipe)."""

__version__ = "0.1.0"
