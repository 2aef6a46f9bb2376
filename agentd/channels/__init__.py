"""Chat channels' plumbing that is not a daemon service: text shaping and runtime records."""
