"""The README's parts, for tests that run what it tells users to run, as written."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

README = Path(__file__).resolve().parent.parent.parent / "README.md"


def section(heading: str) -> str:
    """The text under `heading` (e.g. `## Installing`), up to the next heading of any level
    (a `#` line inside a code block is not a heading)."""
    lines = README.read_text(encoding="utf-8").splitlines(keepends=True)
    start = lines.index(f"{heading}\n") + 1
    in_code = False
    for end in range(start, len(lines)):
        if lines[end].startswith("```"):
            in_code = not in_code
        elif not in_code and re.match(r"#{1,6} ", lines[end]):
            return "".join(lines[start:end])
    return "".join(lines[start:])


def code_blocks(text: str, language: str | None = None) -> list[str]:
    """The fenced code blocks of `text`, or only those in `language` (`""`: no language)."""
    blocks: list[str] = []
    fence: str | None = None  # the language of the block being read
    body: list[str] = []
    for line in text.splitlines(keepends=True):
        if fence is None and line.startswith("```"):
            fence, body = line[3:].strip(), []
        elif fence is not None and line.rstrip() == "```":
            if language is None or fence == language:
                blocks.append("".join(body))
            fence = None
        elif fence is not None:
            body.append(line)
    return blocks


def files_in(text: str) -> dict[str, str]:
    """The code blocks of `text` that start with a `# path` comment, by that path."""
    files = {}
    for block in code_blocks(text):
        first = block.partition("\n")[0]
        if first.startswith("# ") and re.fullmatch(r"[\w./-]+", first[2:]):
            files[first[2:]] = block
    return files


def commands(text: str, program: str) -> list[list[str]]:
    """The console commands of `text` that start with `program`, split into arguments,
    without their trailing comments."""
    found = []
    for block in code_blocks(text, "console"):
        for line in block.splitlines():
            words = shlex.split(line, comments=True)
            if words[: len(program.split())] == program.split():
                found.append(words)
    return found
