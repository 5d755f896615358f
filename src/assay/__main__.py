"""`python -m assay …` (and `torchrun … -m assay train …`) runs the CLI."""

from assay.cli.main import main

if __name__ == "__main__":
    main()
