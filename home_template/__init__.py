"""The template that `agentd init` copies into a new home (package data; this file is not copied)."""
