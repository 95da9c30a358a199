"""A ConnectError carries why it was raised (_errors.ConnectReason), set where
_httpx classifies the failure; the command line picks its advice by that
reason, never by the words of ``detail``."""

from __future__ import annotations

import pickle
import ssl
from pathlib import Path

import httpx
import pytest

from eventsource import ConnectError
from eventsource._cli._output import describe_error
from eventsource._errors import ConnectReason, connect_error, reason_of
from eventsource._httpx import HTTPCORE, classify

URL = "https://127.0.0.1:1/stream"


def _ssl_error(reason: str) -> ssl.SSLError:
    error = ssl.SSLError(1, f"[SSL: {reason}] ({reason.lower()})")
    error.reason = reason  # type: ignore[misc]
    return error


def _speaks_tls(proxy: bool) -> Exception:
    # As _backend makes it: the core's SpeaksTLSError, marked when a proxy answered.
    error = HTTPCORE.speaks_tls("it answered with TLS")
    error.proxy = proxy
    return error


@pytest.mark.parametrize(
    ("cause", "reason"),
    [
        (ssl.SSLCertVerificationError("certificate verify failed"), ConnectReason.CERTIFICATE),
        (_ssl_error("WRONG_VERSION_NUMBER"), ConnectReason.NOT_TLS),
        (_ssl_error("TLSV1_ALERT_PROTOCOL_VERSION"), ConnectReason.NO_SHARED_VERSION),
        (_ssl_error("TLSV13_ALERT_CERTIFICATE_REQUIRED"), ConnectReason.REFUSED),
        (_speaks_tls(proxy=False), ConnectReason.ANSWERED_TLS),
        (_speaks_tls(proxy=True), ConnectReason.PROXY_ANSWERED_TLS),
    ],
)
def test_the_classification_names_the_reason(cause: Exception, reason: ConnectReason) -> None:
    exc = httpx.ConnectError("handshake")
    exc.__cause__ = cause
    result = classify(exc, sending=True, opened=False)
    assert result is not None
    error, fatal = result
    assert fatal and isinstance(error, ConnectError)
    assert reason_of(error) is reason
    assert str(error).startswith(f"{error.detail}: ")  # the library's advice follows


@pytest.mark.parametrize(
    ("reason", "advice"),
    [
        (ConnectReason.CERTIFICATE, "use --cacert FILE, or -k to skip verification"),
        (ConnectReason.NOT_TLS, "check the URL's scheme (http:// or https://)"),
        (ConnectReason.ANSWERED_TLS, "check the URL's scheme (http:// or https://)"),
        (ConnectReason.PROXY_ANSWERED_TLS, "use an https:// URL for that proxy"),
        (ConnectReason.NO_SHARED_VERSION, "not ones this Python's OpenSSL allows"),
        (ConnectReason.REFUSED, "the server may require a client certificate"),
    ],
)
def test_the_command_line_advises_by_the_reason_not_the_words(
    reason: ConnectReason, advice: str
) -> None:
    error = connect_error("reworded: advice", detail="reworded", reason=reason)
    line = describe_error(error, URL)
    assert line.startswith(f"cannot connect to {URL}: reworded: ")
    assert advice in line


def test_every_reason_has_advice_on_the_command_line() -> None:
    lines = {
        describe_error(connect_error("x", detail="x", reason=reason), URL)
        for reason in ConnectReason
    }
    assert len(lines) == len(ConnectReason) - 1  # NOT_TLS and ANSWERED_TLS share theirs


def test_a_connect_error_without_a_reason_gets_the_scheme_advice() -> None:
    error = ConnectError("certificate words: advice", detail="certificate words")
    assert reason_of(error) is None
    assert describe_error(error, URL).endswith("check the URL's scheme (http:// or https://)")


def test_the_reason_survives_pickling() -> None:
    error = connect_error("x: y", detail="x", reason=ConnectReason.REFUSED)
    assert reason_of(pickle.loads(pickle.dumps(error))) is ConnectReason.REFUSED


def test_an_unloadable_ca_bundle_is_its_own_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from eventsource._request import ssl_context_for
    from eventsource._stack import HTTPX

    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "missing.pem"))
    with pytest.raises(ConnectError) as caught:
        ssl_context_for(True, HTTPX)
    assert reason_of(caught.value) is ConnectReason.CA_BUNDLE
    assert "SSL_CERT_FILE" in caught.value.detail
    assert str(caught.value).endswith(": fix or unset them")
