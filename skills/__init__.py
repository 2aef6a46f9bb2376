"""Built-in skills: one folder per skill with a SKILL.md (package data)."""
