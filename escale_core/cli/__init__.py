"""The ``escale`` command line (typer)."""
