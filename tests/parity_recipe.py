"""The weights of the parity models, as a recipe instead of a file: every tensor of a state dict
is drawn from NumPy's PCG64 seeded by (seed, its position), in float64, scaled by its role.

`benchmarks/parity/make_fixtures.py` fills mmdetection's models with it (in mmdetection's own
environment) and the tests fill the same mmdetection-keyed state dict without mmdetection: the
fixture stores only the keys, shapes and seed. NumPy's uniform doubles are integer arithmetic on
the generator's output, so the weights are the same bits on every machine.

The scales keep a random network's activations in range, so that its outputs are not ties:
weights of variance 1 / fan-in, the residual branches' last norms small (a deep stack of random
residual blocks otherwise grows without bound), and the output layers small enough that
objectness and class scores stay off 0 and 1 and box deltas near 0, while mask logits (no bias,
full scale) vary around 0 so that masks are neither empty nor full.
"""

from __future__ import annotations

import math
import re

import numpy as np
import torch

CLASSIFIERS = r"(rpn_cls|fc_cls|fc_mask_iou|semantic_logits)\.weight"
MASK_LOGITS = r"(conv_logits|instance_logits|final_instance_logits)\.(weight|bias)"
REGRESSORS = r"(rpn_reg|fc_reg)\.weight"
RESIDUAL_END = r"(bn3|downsample\.1)\.weight"  # ResNet: the norm that ends a residual branch


def recipe_tensor(key: str, shape: tuple[int, ...], seed: int, position: int) -> torch.Tensor:
    """One float64 tensor of the recipe."""
    rng = np.random.Generator(np.random.PCG64([seed, position]))
    u = rng.uniform(-1.0, 1.0, size=shape)
    name = key.rsplit(".", 1)[-1]
    if re.search(MASK_LOGITS, key) and name == "bias":
        values = np.zeros(shape)  # masks of all sizes: logits around 0, not all of one sign
    elif name == "running_var":
        values = 1.0 + 0.5 * u
    elif name in ("running_mean", "bias"):
        values = 0.05 * u
    elif re.search(RESIDUAL_END, key) and len(shape) == 1:
        values = 0.3 + 0.1 * u
    elif len(shape) == 1:  # norm scales
        values = 1.0 + 0.2 * u
    elif name == "relative_position_bias_table":
        values = 0.1 * u
    else:
        bound = math.sqrt(3.0 / math.prod(shape[1:]))  # uniform with variance 1 / fan_in
        if re.search(CLASSIFIERS, key):
            bound *= 0.2
        elif re.search(REGRESSORS, key):
            bound *= 0.02
        values = bound * u
    return torch.from_numpy(values)


def recipe_state(shapes: dict[str, tuple[int, ...]], seed: int) -> dict[str, torch.Tensor]:
    """Every tensor of `shapes` (in its order) from the recipe."""
    return {k: recipe_tensor(k, tuple(s), seed, i) for i, (k, s) in enumerate(shapes.items())}
