"""The synthetic long-tailed LVIS-format benchmark (the embedded default for demo and tests)."""

from tailseg.data.synth.generate import SynthOutput, generate, synth_categories

__all__ = ["SynthOutput", "generate", "synth_categories"]
