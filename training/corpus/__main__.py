"""`python -m training.corpus`: see `training.corpus.cli`."""

from training.corpus.cli import main

main()
