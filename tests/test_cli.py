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
        ('"ssh://admin@ws-01:22"', '"ssh://admin@ws-01:22"'),
    ],
    ids=["json-proxy", "apt-conf", "no-credentials", "user-only"],
)
def test_redact_hides_passwords_in_urls(text, expected):
    assert redact(text) == expected
