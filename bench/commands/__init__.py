"""One module per ``bench`` subcommand, each with ``configure(parser)`` and ``run(args) -> int``."""
