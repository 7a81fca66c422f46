"""Controller command helpers: credentials never reach a log or report."""

from __future__ import annotations

import pytest

from dlws.schema import redact


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('"http://bob:s3cr3t@proxy.lab:3128/"', '"http://***:***@proxy.lab:3128/"'),
        ("Acquire::http::Proxy https://u:p@c:3142;", "Acquire::http::Proxy https://***:***@c:3142;"),
        ('"https://mirror.lab/pypi/simple"', '"https://mirror.lab/pypi/simple"'),
        # A user alone may be a token (https://TOKEN@host): redacted too.
        ('"ssh://admin@ws-01:22"', '"ssh://***@ws-01:22"'),
        ("https://__token__:p@ss@w0rd@pypi.lab/simple", "https://***:***@pypi.lab/simple"),
        ("https://ghp_abc123@pypi.lab/simple", "https://***@pypi.lab/simple"),
        ("https://pypi.lab/simple?token=abc123&x=1", "https://pypi.lab/simple?token=***&x=1"),
        ("Authorization: Bearer abc.def", "Authorization: Bearer ***"),
        ("Proxy-Authorization: Basic dXNlcjpwYXNz", "Proxy-Authorization: Basic ***"),
        ("machine pypi.lab login bob password s3cr3t", "machine pypi.lab login bob password ***"),
    ],
    ids=["json-proxy", "apt-conf", "no-credentials", "user-only", "at-in-password", "token-only",
         "query-token", "bearer", "proxy-basic", "netrc"],
)
def test_redact_hides_passwords_in_urls(text, expected):
    assert redact(text) == expected
