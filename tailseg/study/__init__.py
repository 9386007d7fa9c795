"""Studies: the report's tables as configs, run over seeds and summarised (`tailseg ablate`)."""
