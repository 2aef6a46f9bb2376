"""Skills: folders with a SKILL.md (YAML front matter `name`, `description`, optional `when`; body = instructions).

Only name and description enter the cached prefix (the skills index); the body is
read on demand with `read_skill`. Home skills (`<home>/skills/`) override built-in
ones of the same name. A bad SKILL.md is reported with file and line and skipped.
Rules: `name` is lowercase letters, digits and dashes and must match the folder name;
`description` is one or more sentences (a string); `when` is a string or a list of strings.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from agentd.errors import FrontMatterError

NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,63}")


@dataclass(frozen=True)
class Skill:
    name: str
    description: str
    when: tuple[str, ...]
    path: Path  # the skill's folder
    source: str  # "built-in" | "home"

    @property
    def body_path(self) -> Path:
        return self.path / "SKILL.md"

    def body(self) -> str:
        text = self.body_path.read_text(encoding="utf-8", errors="replace")
        return split_front_matter(text, self.body_path)[1].strip()


@dataclass
class SkillSet:
    skills: list[Skill] = field(default_factory=list)
    errors: list[FrontMatterError] = field(default_factory=list)

    def get(self, name: str) -> Skill | None:
        return next((s for s in self.skills if s.name == name), None)

    def index_text(self) -> str:
        """The skills index for the stable prefix: name and description only, sorted, normalized."""
        return "".join(f"- {s.name}: {' '.join(s.description.split())}\n" for s in sorted(self.skills, key=lambda s: s.name))


def builtin_root() -> Path:
    return Path(str(resources.files("agentd.builtin_skills")))


def split_front_matter(text: str, path: Path) -> tuple[dict[str, object], str]:
    """(front matter, body); errors name the file and the line in the file."""
    text = text.removeprefix("\ufeff")  # editors on Windows save UTF-8 with a byte-order mark
    if not text.startswith("---"):
        raise FrontMatterError(path, 1, "expected YAML front matter between '---' lines at the top")
    lines = text.split("\n")
    try:
        end = next(i for i in range(1, len(lines)) if lines[i].strip() == "---")
    except StopIteration:
        raise FrontMatterError(path, 1, "the front matter is not closed with a '---' line") from None
    try:
        data = YAML(typ="safe").load("\n".join(lines[1:end]))
    except MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        raise FrontMatterError(path, (mark.line + 2) if mark else 1, f"invalid YAML: {e.problem or e.context}") from None
    except YAMLError as e:
        raise FrontMatterError(path, 1, f"invalid YAML: {e}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise FrontMatterError(path, 2, "the front matter must be a mapping (name: …, description: …)")
    return data, "\n".join(lines[end + 1 :])


def _line_of(text: str, key: str) -> int:
    for i, line in enumerate(text.split("\n"), 1):
        if line.startswith(f"{key}:"):
            return i
    return 1


def load_skill(folder: Path, source: str) -> Skill:
    path = folder / "SKILL.md"
    text = path.read_text(encoding="utf-8", errors="replace")
    data, _ = split_front_matter(text, path)
    name, desc, when = data.get("name"), data.get("description"), data.get("when", [])
    if not isinstance(name, str) or not name:
        raise FrontMatterError(path, _line_of(text, "name") if "name" in data else 1, "missing `name` (a string)")
    if not NAME.fullmatch(name):
        raise FrontMatterError(path, _line_of(text, "name"), f"name {name!r}: use lowercase letters, digits and dashes")
    if name != folder.name:
        raise FrontMatterError(path, _line_of(text, "name"), f"name {name!r} must match its folder {folder.name!r}")
    if not isinstance(desc, str) or not desc.strip():
        raise FrontMatterError(path, _line_of(text, "description") if "description" in data else 1, "missing `description` (a string)")
    if isinstance(when, str):
        when = [when]
    if not isinstance(when, list) or not all(isinstance(w, str) for w in when):
        raise FrontMatterError(path, _line_of(text, "when"), "`when` must be a string or a list of strings")
    return Skill(name, desc.strip(), tuple(when), folder, source)


def load_skills(home_root: Path) -> SkillSet:
    found: dict[str, Skill] = {}
    out = SkillSet()
    for source, root in (("built-in", builtin_root()), ("home", home_root / "skills")):
        if not root.is_dir():
            continue
        for folder in sorted(p for p in root.iterdir() if p.is_dir() and (p / "SKILL.md").is_file()):
            try:
                skill = load_skill(folder, source)
            except FrontMatterError as e:
                out.errors.append(e)
                continue
            found[skill.name] = skill  # home after built-in: the home's wins
    out.skills = sorted(found.values(), key=lambda s: s.name)
    return out
