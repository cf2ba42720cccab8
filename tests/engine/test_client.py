"""The model interface's values refuse what no model call can carry, naming the field."""

from __future__ import annotations

from typing import Any

import pytest

from frontdesk import ModelMessage, Usage, ValidationError


@pytest.mark.parametrize("value", [-1, 1.5, True, "10"])
@pytest.mark.parametrize("field", ["input_tokens", "output_tokens"])
def test_usage_refuses_a_count_that_is_not_a_whole_number(field: str, value: Any) -> None:
    with pytest.raises(ValidationError) as caught:
        Usage(**{field: value})

    assert caught.value.field == f"Usage.{field}"
    assert f"must be a whole number >= 0 (tokens the call used), got {value!r}" in str(caught.value)
    assert str(caught.value).endswith("; no Usage was made.")


@pytest.mark.parametrize("role", ["system", "tool", "", None])
def test_a_model_message_is_from_the_user_or_the_assistant(role: Any) -> None:
    with pytest.raises(ValueError, match=r"ModelRequest\.system") as caught:
        ModelMessage(role, "hola")

    assert isinstance(caught.value, ValidationError)
    assert caught.value.field == "ModelMessage.role"
