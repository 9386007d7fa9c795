"""Pictures: long-tail plots, curves, overlays (matplotlib, headless)."""
