"""Credentials in text: found and replaced by *** before anything is shown, logged or recorded."""

from __future__ import annotations

import re

# Secrets in text: user:password@ (an '@' inside the password too: the userinfo runs to the last
# '@' before the host), a token-only userinfo (https://TOKEN@host), secret query parameters and
# HTTP Authorization headers. Never written to a log, report, lock or deploy.json.
_USERINFO = re.compile(r"(?<=://)[^/\s\"'<>]*@(?=[^/\s\"'<>@]*(?:[/\s\"'<>]|$))")
_QUERY_SECRET = re.compile(
    r"(?i)([?&;](?:token|access_token|auth|key|api_key|apikey|password|passwd|secret|sig|"
    r"signature|x-amz-signature|x-goog-signature)=)[^&#\s\"'<>]+")
_AUTH_HEADER = re.compile(r"(?i)(\b(?:proxy-)?authorization\s*[:=]\s*)(?:(basic|bearer|token)\s+)?"
                          r"[^\s\"'<>,]+")
_NETRC = re.compile(r"(?i)(\bpassword\s+)\S+")


def redact(text: str) -> str:
    """`text` with every credential it carries replaced by ***."""
    text = _USERINFO.sub(lambda m: "***:***@" if ":" in m[0] else "***@", text)
    text = _QUERY_SECRET.sub(r"\1***", text)
    text = _AUTH_HEADER.sub(lambda m: m[1] + (f"{m[2]} " if m[2] else "") + "***", text)
    return _NETRC.sub(r"\1***", text)
