"""The synthetic long-tailed LVIS-format benchmark (the embedded default for demo and tests)."""

from tailseg.data.synth.generate import SynthOutput, generate

__all__ = ["SynthOutput", "generate"]
