"""The agent's memory: journal, curated memory, full-text search, compaction."""
