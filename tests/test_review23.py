"""Review of issue 23's change: defects found, as strict xfails."""

from __future__ import annotations

import pickle

from eventsource import ConnectError, ReadyState, ResponseError


def test_ready_state_still_formats_as_a_number_with_a_numeric_spec() -> None:
    assert f"{ReadyState.OPEN:d}" == "1"
    assert f"{ReadyState.CLOSED:02d}" == "02"


def test_the_cli_error_line_survives_a_deeply_nested_body() -> None:
    from eventsource._cli._output import describe_error

    error = ResponseError("refused", status_code=400, body="[" * 100_000)
    assert describe_error(error, "http://127.0.0.1:1/").startswith("400 Bad Request")


def test_connect_error_survives_pickling() -> None:
    error = pickle.loads(pickle.dumps(ConnectError("m", detail="certificate verify failed")))
    assert error.detail == "certificate verify failed"
