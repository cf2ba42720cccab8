"""The validation rules: what each check accepts, what it refuses, and how it says so."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from frontdesk import (
    MAX_CONTENT_LENGTH,
    MAX_ID_LENGTH,
    MAX_INT32,
    MAX_JSON_DEPTH,
    MAX_JSON_SIZE,
    FrontdeskError,
    Role,
    ValidationError,
)
from frontdesk.validation import (
    LISTED,
    READ,
    WRITTEN,
    check_choice,
    check_datetime,
    check_fraction,
    check_id,
    check_int,
    check_json,
    check_json_object,
    check_optional_id,
    check_optional_int,
    check_text,
    check_text_map,
)


def _lists(depth: int) -> Any:
    value: Any = []
    for _ in range(depth - 1):
        value = [value]
    return value


def test_validation_error_is_a_frontdesk_error_and_a_value_error() -> None:
    error = ValidationError("turn_number", "must be an integer, got str '1'", limit="1..5")
    assert isinstance(error, FrontdeskError)
    assert isinstance(error, ValueError)
    assert (error.field, error.limit) == ("turn_number", "1..5")
    assert str(error) == (
        "invalid turn_number: must be an integer, got str '1' (the limit is 1..5); "
        "nothing was written."
    )


@pytest.mark.parametrize(
    "check",
    [
        pytest.param(lambda outcome: check_id("session_id", "", outcome=outcome), id="id"),
        pytest.param(lambda outcome: check_id("session_id", "a\x00", outcome=outcome), id="nul"),
        pytest.param(lambda outcome: check_optional_id("mode", 3, outcome=outcome), id="opt-id"),
        pytest.param(
            lambda outcome: check_text("q", "x" * 9, max_length=3, outcome=outcome), id="text"
        ),
        pytest.param(lambda outcome: check_int("limit", 0, minimum=1, outcome=outcome), id="int"),
        pytest.param(
            lambda outcome: check_optional_int("limit", "1", minimum=0, outcome=outcome),
            id="opt-int",
        ),
        pytest.param(
            lambda outcome: check_datetime("updated_after", datetime(2026, 1, 1), outcome=outcome),
            id="datetime",
        ),
        pytest.param(
            lambda outcome: check_choice("role", "robot", Role, outcome=outcome), id="choice"
        ),
    ],
)
@pytest.mark.parametrize("outcome", [READ, LISTED, WRITTEN])
def test_a_refusal_ends_with_what_the_call_did_not_do(check: Any, outcome: str) -> None:
    with pytest.raises(ValidationError) as caught:
        check(outcome)
    assert str(caught.value).endswith(f"; {outcome}.")
    assert caught.value.outcome == outcome
    assert WRITTEN not in str(caught.value) or outcome == WRITTEN


def test_writes_are_the_default_outcome() -> None:
    with pytest.raises(ValidationError, match=r"; nothing was written\.$"):
        check_id("session_id", "")


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        pytest.param("", "non-empty", id="empty"),
        pytest.param("   ", "non-empty", id="blank"),
        pytest.param(None, "must be a string, got NoneType", id="none"),
        pytest.param(12, "must be a string, got int 12", id="int"),
        pytest.param(b"abc", "must be a string, got bytes", id="bytes"),
        pytest.param("a\x00b", "NUL", id="nul"),
        pytest.param("\udcff", "lone surrogate", id="surrogate"),
        pytest.param("ñ\ud800", "lone surrogate", id="surrogate-after-non-ascii"),
        pytest.param("x" * (MAX_ID_LENGTH + 1), "257 characters", id="too-long"),
    ],
)
def test_ids_refused(value: object, problem: str) -> None:
    with pytest.raises(ValidationError, match=problem) as excinfo:
        check_id("conversation_id", value)
    assert excinfo.value.field == "conversation_id"


def test_ids_accepted() -> None:
    for value in ("c", "x" * MAX_ID_LENGTH, "whatsapp:+34600111222", "🚀" * MAX_ID_LENGTH):
        assert check_id("conversation_id", value) == value


def test_id_length_is_reported_with_its_limit() -> None:
    with pytest.raises(ValidationError) as excinfo:
        check_id("workspace_id", "w" * 10_000)
    assert excinfo.value.limit == f"{MAX_ID_LENGTH} characters"
    assert len(str(excinfo.value)) < 200  # a short repr, never the whole value


def test_text_may_be_empty_but_not_too_long() -> None:
    assert check_text("content", "") == ""
    assert check_text("content", "x" * MAX_CONTENT_LENGTH)
    with pytest.raises(ValidationError, match="characters long"):
        check_text("content", "x" * (MAX_CONTENT_LENGTH + 1))


@pytest.mark.parametrize(
    "value",
    [True, False, 1.0, "1", None, 0, -1, MAX_INT32 + 1, 2**40, float("nan")],
    ids=repr,
)
def test_int_refuses_bools_floats_strings_and_out_of_range(value: object) -> None:
    with pytest.raises(ValidationError) as excinfo:
        check_int("expected_version", value, minimum=1)
    assert excinfo.value.field == "expected_version"


def test_int_accepts_the_range() -> None:
    assert check_int("v", 1, minimum=1) == 1
    assert check_int("v", MAX_INT32, minimum=1) == MAX_INT32


@pytest.mark.parametrize("value", [True, "0.5", -0.1, 1.01, float("nan"), float("inf")], ids=repr)
def test_fraction_refused(value: object) -> None:
    with pytest.raises(ValidationError, match="from 0 to 1"):
        check_fraction("confidence", value)


def test_fraction_accepted() -> None:
    assert check_fraction("confidence", None) is None
    assert check_fraction("confidence", 1) == 1.0
    assert isinstance(check_fraction("confidence", 1), float)
    assert check_fraction("confidence", 0.25) == 0.25


def test_datetimes_must_be_aware_and_come_back_in_utc() -> None:
    madrid = timezone(timedelta(hours=1))
    assert check_datetime("at", datetime(2026, 1, 1, 11, tzinfo=madrid)) == datetime(
        2026, 1, 1, 10, tzinfo=UTC
    )
    with pytest.raises(ValidationError, match="timezone-aware"):
        check_datetime("at", datetime(2026, 1, 1))
    with pytest.raises(ValidationError, match="must be a datetime, got str"):
        check_datetime("at", "2026-01-01T00:00:00Z")
    with pytest.raises(ValidationError, match="out of range"):
        check_datetime("at", datetime(1, 1, 1, tzinfo=madrid))


def test_choices_list_the_valid_values() -> None:
    assert check_choice("role", "user", Role) is Role.USER
    assert check_choice("role", Role.TOOL, Role) is Role.TOOL
    for bad in ("robot", 1, None, ["user"]):
        with pytest.raises(ValidationError) as excinfo:
            check_choice("role", bad, Role)
        assert "must be one of user, assistant, system, tool" in str(excinfo.value)


def test_json_accepts_plain_data() -> None:
    value = {"a": [1, 2.5, None, True, "ñ", {"b": ()}], "big": 2**80}
    assert check_json("data", value) is value
    assert check_json("data", _lists(MAX_JSON_DEPTH)) is not None


@pytest.mark.parametrize(
    ("value", "field", "problem"),
    [
        pytest.param({"x": float("nan")}, "data['x']", "finite", id="nan"),
        pytest.param({"x": [float("-inf")]}, "data['x'][0]", "finite", id="inf"),
        pytest.param({"x": {1: "a"}}, "data['x']", "string keys", id="int-key"),
        pytest.param({"x": {"a\x00": 1}}, "data['x']['a\\x00']", "NUL", id="nul-key"),
        pytest.param({"x": ["ok", "a\x00"]}, "data['x'][1]", "NUL", id="nul-value"),
        pytest.param({"\udcff": 1}, "data['\\udcff']", "surrogate", id="surrogate-key"),
        pytest.param({"x": {1, 2}}, "data['x']", "got set", id="set"),
        pytest.param({"x": b"raw"}, "data['x']", "got bytes", id="bytes"),
        pytest.param({"x": datetime.now(UTC)}, "data['x']", "got datetime", id="datetime"),
        pytest.param({"x": 10**5000}, "data", "not plain JSON", id="huge-int"),
    ],
)
def test_json_refused(value: object, field: str, problem: str) -> None:
    with pytest.raises(ValidationError, match=problem) as excinfo:
        check_json("data", value)
    assert excinfo.value.field == field


@pytest.mark.parametrize("depth", [MAX_JSON_DEPTH + 1, 500, 1200, 100_000])
def test_deep_json_is_refused_without_recursion(depth: int) -> None:
    with pytest.raises(ValidationError, match="nests deeper") as excinfo:
        check_json("data", _lists(depth))
    assert excinfo.value.limit == f"{MAX_JSON_DEPTH} levels"


def test_a_cycle_is_refused_as_too_deep() -> None:
    loop: dict[str, Any] = {}
    loop["self"] = loop
    with pytest.raises(ValidationError, match="nests deeper"):
        check_json("data", loop)


def test_json_size_is_measured_in_utf8_bytes() -> None:
    room = MAX_JSON_SIZE - len('{"x":""}')
    assert check_json("data", {"x": "a" * room})
    with pytest.raises(ValidationError, match="bytes as JSON") as excinfo:
        check_json("data", {"x": "a" * (room + 1)})
    assert excinfo.value.limit == f"{MAX_JSON_SIZE} bytes"
    with pytest.raises(ValidationError, match="bytes as JSON"):
        check_json("data", {"x": "ñ" * (room // 2 + 1)})  # two bytes each


def test_json_objects_and_text_maps() -> None:
    assert check_json_object("data", {"a": 1}) == {"a": 1}
    with pytest.raises(ValidationError, match="must be a mapping, got list"):
        check_json_object("data", [1])
    assert check_text_map("captured_data", {"name": "Ana"}) == {"name": "Ana"}
    with pytest.raises(ValidationError, match="must be a string, got int 1") as excinfo:
        check_text_map("captured_data", {"n": 1})
    assert excinfo.value.field == "captured_data['n']"
    with pytest.raises(ValidationError, match="a key is int"):
        check_text_map("captured_data", {1: "x"})
    with pytest.raises(ValidationError, match="mapping of strings"):
        check_text_map("captured_data", [("a", "b")])
    with pytest.raises(ValidationError, match="NUL"):
        check_text_map("captured_data", {"a": "\x00"})


def test_json_accepts_subclasses_of_the_builtin_types() -> None:
    value = {"role": Role.USER, "items": (1, 2), "nested": [{"k": Role.TOOL}]}
    assert check_json("data", value) is value
