"""Weights from other toolkits: mmdetection 3.x, and CBNetV2's and RefineMask's (mmdetection 2.x)
checkpoints. Every source key is mapped to a tailseg key (with its tensor transform) or dropped
with a reason; anything else is an error naming the key."""
