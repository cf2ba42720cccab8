"""The SQLSTATE table: what a failed request means for the data, by code and phase."""

from __future__ import annotations

import pytest

from frontdesk import StorageError, StorageUnavailableError
from frontdesk.storage._sqlstate import Phase, classify

UNKNOWN_AT_COMMIT = [
    pytest.param(None, id="no-sqlstate"),
    pytest.param("08006", id="connection-failure"),
    pytest.param("08003", id="connection-does-not-exist"),
    pytest.param("57P01", id="admin-shutdown"),
    pytest.param("57P02", id="crash-shutdown"),
    pytest.param("57P04", id="database-dropped"),
]


@pytest.mark.parametrize("sqlstate", UNKNOWN_AT_COMMIT)
def test_a_connection_that_ended_around_commit_is_an_unknown_outcome(
    sqlstate: str | None,
) -> None:
    failure = classify(sqlstate, Phase.COMMIT)
    assert failure.error is StorageUnavailableError
    assert failure.may_have_applied is True
    assert failure.connection_lost is True


@pytest.mark.parametrize("sqlstate", UNKNOWN_AT_COMMIT)
@pytest.mark.parametrize("phase", [Phase.CONNECT, Phase.TRANSACTION], ids=lambda p: p.value)
def test_before_commit_nothing_applied(sqlstate: str | None, phase: Phase) -> None:
    failure = classify(sqlstate, phase)
    assert failure.error is StorageUnavailableError
    assert failure.may_have_applied is False


def test_statement_completion_unknown() -> None:
    assert classify("40003", Phase.COMMIT).may_have_applied is True
    assert classify("40003", Phase.TRANSACTION).may_have_applied is False
    assert classify("40003", Phase.COMMIT).connection_lost is False


@pytest.mark.parametrize(
    "sqlstate",
    [
        pytest.param("08001", id="cannot-establish"),
        pytest.param("08004", id="server-rejected-connection"),
        pytest.param("57P03", id="cannot-connect-now"),
        pytest.param("57P05", id="idle-session-timeout"),
        pytest.param("25P03", id="idle-in-transaction-timeout"),
    ],
)
def test_connections_that_never_ran_the_request(sqlstate: str) -> None:
    failure = classify(sqlstate, Phase.COMMIT)
    assert (failure.error, failure.may_have_applied) == (StorageUnavailableError, False)
    assert failure.connection_lost is True


@pytest.mark.parametrize(
    "sqlstate",
    [
        pytest.param("40001", id="serialization-failure"),
        pytest.param("40P01", id="deadlock"),
        pytest.param("53100", id="disk-full"),
        pytest.param("53300", id="too-many-connections"),
        pytest.param("57014", id="query-canceled"),
        pytest.param("55P03", id="lock-not-available"),
    ],
)
@pytest.mark.parametrize("phase", list(Phase), ids=lambda p: p.value)
def test_transient_errors_rolled_back(sqlstate: str, phase: Phase) -> None:
    failure = classify(sqlstate, phase)
    assert failure.error is StorageUnavailableError
    assert failure.may_have_applied is False
    assert failure.connection_lost is False


@pytest.mark.parametrize(
    "sqlstate",
    [
        pytest.param("23505", id="unique-violation"),
        pytest.param("22P02", id="invalid-text"),
        pytest.param("42883", id="undefined-function"),
        pytest.param("P0001", id="raise-exception"),
        pytest.param("XX000", id="internal-error"),
        pytest.param("54000", id="program-limit"),
    ],
)
def test_other_errors_are_not_transient_and_rolled_back(sqlstate: str) -> None:
    failure = classify(sqlstate, Phase.COMMIT)
    assert failure.error is StorageError
    assert failure.may_have_applied is False


def test_lower_case_codes_read_the_same() -> None:
    assert classify("57p01", Phase.COMMIT) == classify("57P01", Phase.COMMIT)
