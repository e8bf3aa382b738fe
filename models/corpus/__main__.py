"""`python -m models.corpus`: see `models.corpus.cli`."""

from models.corpus.cli import main

main()
