"""The operator tools, each a module with `run(argv)` and `python -m tools.<name>`, and all of
them behind one command with subcommands (`tools.cli`, installed as `deepfake`)."""
