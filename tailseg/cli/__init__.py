"""The `tailseg` command line."""
