"""agentd: a filesystem-native persistent agent daemon."""

__version__ = "0.1.0"
