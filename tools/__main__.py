"""`python -m tools <command> [flags]`: the same as `deepfake <command> [flags]`."""

import sys

from tools.cli import main

sys.exit(main())
