"""A small Dockerfile parser (there is no Docker engine here): the instructions, the image's environment, its CMD
and HEALTHCHECK as argument lists."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

DOCKERFILE = Path(__file__).resolve().parents[1] / "Dockerfile"


def parse_dockerfile(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs: continuation lines joined, comment and blank lines dropped (also inside a
    continuation, as Docker does)."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1].rstrip() + " "
            continue
        full = pending + line
        pending = ""
        keyword, _, args = full.partition(" ")
        instructions.append((keyword.upper(), args.strip()))
    assert not pending, "the Dockerfile ends inside a line continuation"
    return instructions


def expand_variables(value: str, variables: dict[str, str]) -> str:
    return re.sub(r"\$(?:\{(\w+)\}|(\w+))", lambda m: variables.get(m.group(1) or m.group(2), ""), value)


def key_values(args: str, variables: dict[str, str]) -> dict[str, str]:
    """ENV / ARG arguments: `K=V K2="V 2"` or the legacy `K V` form."""
    words = shlex.split(args)
    if words and "=" not in words[0]:
        return {words[0]: expand_variables(" ".join(words[1:]), variables)}
    pairs = {}
    for word in words:
        key, _, value = word.partition("=")
        pairs[key] = expand_variables(value, {**variables, **pairs})
    return pairs


def env_of(instructions: list[tuple[str, str]]) -> dict[str, str]:
    """The environment the image sets (ENV after the last FROM)."""
    start = max(i for i, (kw, _) in enumerate(instructions) if kw == "FROM")
    env: dict[str, str] = {}
    for keyword, args in instructions[start:]:
        if keyword == "ENV":
            env.update(key_values(args, env))
    return env


def exec_form(args: str) -> list[str]:
    assert args.startswith("["), f"not exec (JSON) form: {args}"
    argv = json.loads(args)
    assert isinstance(argv, list) and all(isinstance(a, str) for a in argv)
    return argv


def only(instructions: list[tuple[str, str]], keyword: str) -> str:
    found = [args for kw, args in instructions if kw == keyword]
    assert len(found) == 1, f"expected one {keyword}, found {found}"
    return found[0]


def healthcheck_command(instructions: list[tuple[str, str]]) -> list[str]:
    match = re.fullmatch(r"((?:--\S+\s+)*)CMD\s+(.+)", only(instructions, "HEALTHCHECK"), flags=re.S)
    assert match, "HEALTHCHECK needs options followed by CMD [...]"
    return exec_form(match.group(2))
