"""Credentials kept out of recordings: request/response headers, URL query keys, user:password@ in URLs.

What a recording must never hold, by provider style:

    Authorization: Bearer ...     OpenAI, OpenRouter, Mistral, Groq, Together, Hugging Face, Cohere, Ollama proxies
    x-api-key / anthropic-*       Anthropic (x-api-key)
    api-key                       Azure OpenAI
    x-goog-api-key, ?key=         Google Gemini / Vertex (header or query string)
    x-amz-security-token, ...     AWS Bedrock (signed headers: authorization, security token)
    Cookie / Set-Cookie           any gateway behind a session
    ?api_key= ?api-key= ?token=   proxies and self-hosted servers taking the key in the URL
    https://user:pass@host        credentials inside an ``api_base``

Headers are dropped when their name is in ``SECRET_HEADERS`` or matches ``SECRET_NAME``; query
parameters whose name matches ``SECRET_NAME`` keep their name with the value ``REDACTED``; the
userinfo part of a URL becomes ``REDACTED@``. Request bodies are left alone: they are matched on
replay, and no provider above sends its key in the body.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

REDACTED = "REDACTED"
SECRET_HEADERS = (
    "authorization", "proxy-authorization", "api-key", "x-api-key", "x-goog-api-key", "anthropic-api-key",
    "openai-organization", "openai-project", "x-amz-security-token", "cookie", "set-cookie", "x-auth-token",
    "x-access-token",
)
# any header or query parameter name that looks like a credential: key, token, secret, password, signature...
SECRET_NAME = re.compile(r"(^|[-_])(key|apikey|token|secret|password|passwd|pwd|auth|authorization|signature|sig|"
                         r"credential|credentials|session|cookie)($|[-_])|api[-_]?key|access[-_]?token", re.I)
URL = re.compile(r"[a-zA-Z][a-zA-Z0-9+.-]*://[^\s\"'<>]+")


def is_secret_name(name: str) -> bool:
    return name.lower() in SECRET_HEADERS or SECRET_NAME.search(name) is not None


def redact_url(url: str) -> str:
    """``url`` without credentials: ``user:pass@`` -> ``REDACTED@``, secret query values -> ``REDACTED``."""
    try:
        parts = urlsplit(url)
    except ValueError:  # not a URL after all
        return url
    netloc = parts.netloc
    if "@" in netloc:
        netloc = f"{REDACTED}@{netloc.rsplit('@', 1)[1]}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        query = urlencode([(k, REDACTED if is_secret_name(k) else v) for k, v in pairs], safe=":/,")
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def redact_text(text: str) -> str:
    """Every URL inside ``text`` redacted (an ``--lm`` spec such as ``openai/m@https://u:p@host/v1``)."""
    return URL.sub(lambda match: redact_url(match.group(0)), text)


def redact_value(value: Any) -> Any:
    """``redact_text`` on every string of a JSON-like value; a key named like a secret gets ``REDACTED``."""
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, dict):
        return {k: REDACTED if isinstance(k, str) and is_secret_name(k) and v else redact_value(v)
                for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact_value(v) for v in value]
    return value


def scrub_request(request):
    """vcrpy ``before_record_request``: secret headers dropped, the URI redacted."""
    for name in [n for n in request.headers if is_secret_name(n)]:
        del request.headers[name]
    request.uri = redact_url(request.uri)
    return request


def scrub_response(response: dict) -> dict:
    """vcrpy ``before_record_response``: secret headers (Set-Cookie, echoed keys) dropped."""
    headers = response.get("headers") or {}
    for name in [n for n in headers if is_secret_name(n)]:
        del headers[name]
    return response
