"""`agentd search`, `reindex` and `skills`: the home's memory and skills."""

from __future__ import annotations

from agentd.home import Home


def search(home: Home, query: str, k: int) -> list[str]:
    from memory.search import SearchIndex

    index = SearchIndex(home.root)
    index.update()
    hits = index.search(query, k)
    return [f"{h.path}:{h.line}: {h.snippet}" for h in hits] or ["no matches"]


def reindex(home: Home) -> str:
    from memory.search import SearchIndex

    n = SearchIndex(home.root).rebuild()
    return f"search index rebuilt ({n} files)"


def skills_lines(home: Home) -> list[str]:
    from agentd.skills import load_skills

    s = load_skills(home.root)
    lines = [f"{sk.name:20} {sk.source:9} {sk.description}" for sk in s.skills]
    lines += [f"error: {e}" for e in s.errors]
    return lines or ["no skills"]
