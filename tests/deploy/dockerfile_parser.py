"""A small Dockerfile reader for the deployment tests: stages, instructions and COPY sources.

It understands what this project's Dockerfile uses: line continuations, comments,
global and stage ARGs with defaults, `FROM image AS name`, and COPY in shell form
with --from and --chown flags. It is not a general Dockerfile parser.
"""

import fnmatch
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

ARG_REFERENCE = re.compile(r"\$\{(\w+)\}|\$(\w+)")


@dataclass
class Instruction:
    """One instruction with its keyword in upper case and its arguments as written."""

    keyword: str
    arguments: str
    line: int


@dataclass
class Stage:
    """One build stage: the image or stage it starts from, its name and its instructions."""

    base: str
    name: str | None
    line: int
    instructions: list[Instruction] = field(default_factory=list)

    def find(self, keyword: str) -> list[Instruction]:
        return [instruction for instruction in self.instructions if instruction.keyword == keyword]


@dataclass
class Copy:
    """A COPY instruction split into its --from stage (or None for the build context), sources and destination."""

    source_stage: str | None
    sources: list[str]
    destination: str
    line: int


@dataclass
class Dockerfile:
    """The global ARG defaults and the stages of a Dockerfile."""

    global_args: dict[str, str]
    stages: list[Stage]

    def stage(self, name: str) -> Stage:
        for stage in self.stages:
            if stage.name == name:
                return stage
        raise KeyError(f"No stage named {name!r}; stages: {[stage.name for stage in self.stages]}")


def logical_lines(text: str) -> list[tuple[int, str]]:
    """Join continuation lines, drop comments and return (first line number, text) pairs."""
    lines = []
    buffer, start = "", None
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if stripped.startswith("#") or (not stripped and not buffer):
            continue
        if start is None:
            start = number
        if stripped.endswith("\\"):
            buffer += stripped[:-1] + " "
            continue
        lines.append((start, buffer + stripped))
        buffer, start = "", None
    return lines


def parse_dockerfile(path: Path) -> Dockerfile:
    """Read the stages and instructions of the Dockerfile at `path`."""
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for number, line in logical_lines(Path(path).read_text(encoding="utf-8")):
        keyword, _, arguments = line.partition(" ")
        keyword = keyword.upper()
        arguments = arguments.strip()
        if keyword == "FROM":
            parts = arguments.split()
            name = parts[2] if len(parts) == 3 and parts[1].upper() == "AS" else None
            stages.append(Stage(base=parts[0], name=name, line=number))
        elif not stages:
            if keyword == "ARG":
                name, _, default = arguments.partition("=")
                global_args[name] = default
        else:
            stages[-1].instructions.append(Instruction(keyword, arguments, number))
    return Dockerfile(global_args, stages)


def expand(text: str, values: dict[str, str]) -> str:
    """Replace ${NAME} and $NAME with `values`, raising KeyError for an unknown name."""
    return ARG_REFERENCE.sub(lambda match: values[match.group(1) or match.group(2)], text)


def parse_copy(instruction: Instruction) -> Copy:
    """Split a shell-form COPY into its --from stage, sources and destination."""
    tokens = shlex.split(instruction.arguments)
    source_stage = None
    while tokens and tokens[0].startswith("--"):
        flag = tokens.pop(0)
        if flag.startswith("--from="):
            source_stage = flag.removeprefix("--from=")
    return Copy(source_stage, tokens[:-1], tokens[-1], instruction.line)


def read_dockerignore(path: Path) -> list[str]:
    """Return the patterns of a .dockerignore file, without comments and blank lines."""
    if not path.is_file():
        return []
    lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    return [line.lstrip("/") for line in lines if line and not line.startswith("#")]


def ignored_by(relative_path: str, patterns: list[str]) -> str | None:
    """Return the first .dockerignore pattern that excludes `relative_path` or one of its parents."""
    parts = Path(relative_path).parts
    candidates = ["/".join(parts[: index + 1]) for index in range(len(parts))]
    for pattern in patterns:
        if pattern.startswith("!"):
            continue
        bare = pattern.removeprefix("**/")
        for candidate in candidates:
            if fnmatch.fnmatch(candidate, pattern):
                return pattern
            if bare != pattern and fnmatch.fnmatch(Path(candidate).name, bare):
                return pattern
    return None
