"""Fork and merge homes: per-file merge drivers for git, the memory merge wake, the report, the orchestrator."""
