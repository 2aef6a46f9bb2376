"""What the CLI commands do, one module per command group, so the commands stay thin and the logic testable."""
