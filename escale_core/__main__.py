"""``python -m escale_core``: the same as the ``escale`` command."""

from escale_core.cli.main import main

if __name__ == "__main__":
    main()
