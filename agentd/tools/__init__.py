"""The agent's tools: shell, files, memory, reply."""
