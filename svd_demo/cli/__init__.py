"""Command line: `svd-demo SUBCOMMAND` and `python -m svd_demo SUBCOMMAND` (`svd_demo.cli.commands.main`)."""
