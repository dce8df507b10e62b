"""One module per iopo-eval subcommand."""
