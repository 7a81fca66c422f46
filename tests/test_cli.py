"""Controller command helpers: credentials never reach a log or report."""

from __future__ import annotations

import pytest

from dlws.validate.secrets import redact


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


def test_verify_passes_pytest_options_and_keeps_runs_per_inventory(monkeypatch):
    from dlws import cli

    seen = {}
    monkeypatch.setattr(cli, "verify_and_report",
                        lambda inventory, run_dir, extra: seen.update(
                            inventory=inventory, run_dir=run_dir, extra=extra) or 0)
    assert cli.main(["verify", "--inventory", "inventory/mylab.py", "--burn-in-minutes", "2",
                     "-k", "burn_in"]) == 0
    assert seen["extra"] == ["--burn-in-minutes=2.0", "-k", "burn_in"]
    assert seen["run_dir"].parent == cli.ROOT / "reports" / "mylab"


def test_report_diff_goes_through(monkeypatch):
    from dlws import cli, report

    seen = []
    monkeypatch.setattr(report, "main", lambda argv: seen.append(argv) or 0)
    assert cli.main(["report", "--diff", "reports/x/a", "reports/x/b"]) == 0
    assert cli.main(["report", "--since-pass", "reports/x"]) == 0
    assert seen == [["--diff", "reports/x/a", "reports/x/b", "--noise", "0.15"],
                    ["reports/x", "--since-pass", "--noise", "0.15"]]
    with pytest.raises(SystemExit):
        cli.main(["lock", "--inventory", "x", "-k", "y"])  # no pytest options there
