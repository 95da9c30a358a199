"""Review of issue 23's change: defects found, as strict xfails."""

from __future__ import annotations

import pickle

import pytest

from eventsource import ConnectError, ReadyState, ResponseError


@pytest.mark.xfail(
    strict=True,
    reason="ReadyState.__format__ formats the name for every spec: f'{state:d}' raises ValueError",
)
def test_ready_state_still_formats_as_a_number_with_a_numeric_spec() -> None:
    assert f"{ReadyState.OPEN:d}" == "1"
    assert f"{ReadyState.CLOSED:02d}" == "02"


@pytest.mark.xfail(
    strict=True,
    reason="the CLI's _api_message catches ValueError only: a deeply nested JSON body "
    "raises RecursionError out of describe_error",
)
def test_the_cli_error_line_survives_a_deeply_nested_body() -> None:
    from eventsource._cli._output import describe_error

    error = ResponseError("refused", status_code=400, body="[" * 100_000)
    assert describe_error(error, "http://127.0.0.1:1/").startswith("400 Bad Request")


@pytest.mark.xfail(
    strict=True,
    reason="ConnectError's keyword-only detail= is not in args: unpickling raises TypeError",
)
def test_connect_error_survives_pickling() -> None:
    error = pickle.loads(pickle.dumps(ConnectError("m", detail="certificate verify failed")))
    assert error.detail == "certificate verify failed"
