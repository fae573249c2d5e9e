"""End-to-end runs behind the CLI commands: train, prune, measure, write results."""
