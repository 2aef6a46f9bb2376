"""`python -m agentd` runs the CLI (the background daemon starts itself this way)."""

from agentd.cli import main

main()
