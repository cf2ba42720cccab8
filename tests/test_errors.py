"""The exception tree drawn in `frontdesk.errors`' docstring is the real one."""

from __future__ import annotations

import inspect
import re

from frontdesk import errors


def _drawn() -> dict[str, str]:
    """Each error in the drawing, mapped to the error it hangs under."""
    assert errors.__doc__ is not None
    parents: dict[str, str] = {}
    stack: list[tuple[int, str]] = []
    for line in errors.__doc__.splitlines():
        match = re.search(r"[A-Z]\w*Error\b", line)
        if not match or line[: match.start()].strip(" │├└─") or not line.startswith("    "):
            continue  # prose that mentions an error, not a node of the drawing
        depth, name = match.start(), match.group()
        while stack and stack[-1][0] >= depth:
            stack.pop()
        if stack:
            parents[name] = stack[-1][1]
        stack.append((depth, name))
    return parents


def test_the_drawing_lists_every_error_under_its_base() -> None:
    classes = {
        name: cls
        for name, cls in vars(errors).items()
        if inspect.isclass(cls) and issubclass(cls, errors.FrontdeskError)
    }
    drawn = _drawn()
    assert set(drawn) | {"FrontdeskError"} == set(classes)
    for name, parent in drawn.items():
        frontdesk_bases = [b.__name__ for b in classes[name].__bases__ if b.__name__ in classes]
        assert frontdesk_bases == [parent], (name, parent, frontdesk_bases)


def test_validation_error_is_drawn_as_a_value_error() -> None:
    assert issubclass(errors.ValidationError, ValueError)
    assert errors.__doc__ is not None
    assert "ValidationError" in errors.__doc__
