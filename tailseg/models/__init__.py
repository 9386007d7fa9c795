"""Models: backbones, necks, heads, losses, target assignment and the HTC detector."""
