"""Recordings hold no credentials: one test per provider style, through vcrpy and a local server."""

import http.server
import json
import threading

import httpx
import pytest

from trainopt.agent.record import META, Recording
from trainopt.agent.redact import redact_text, redact_url

SECRET = "sk-SECRET-0123456789"


class _Echo(http.server.BaseHTTPRequestHandler):
    """Answers every POST with a small JSON body and a session cookie; remembers the headers it got."""

    seen: list[dict] = []

    def do_POST(self):  # noqa: N802 (http.server's name)
        self.rfile.read(int(self.headers.get("content-length", 0)))
        _Echo.seen.append(dict(self.headers))
        body = b'{"ok": true}'
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("set-cookie", f"session={SECRET}; HttpOnly")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def server():
    httpd = http.server.HTTPServer(("127.0.0.1", 0), _Echo)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_port}"
    httpd.shutdown()
    httpd.server_close()


PROVIDER_STYLES = {
    "openai-bearer": ({"Authorization": f"Bearer {SECRET}"}, ""),
    "openrouter-bearer": ({"Authorization": f"Bearer {SECRET}", "HTTP-Referer": "https://example.org"}, ""),
    "anthropic-x-api-key": ({"x-api-key": SECRET, "anthropic-version": "2023-06-01"}, ""),
    "azure-api-key": ({"api-key": SECRET}, "?api-version=2024-06-01"),
    "gemini-header": ({"x-goog-api-key": SECRET}, ""),
    "gemini-query-key": ({}, f"?key={SECRET}"),
    "proxy-query-api_key": ({}, f"?api_key={SECRET}"),
    "proxy-query-api-key": ({}, f"?api-key={SECRET}"),
    "proxy-query-token": ({}, f"?token={SECRET}&model=m"),
    "proxy-query-access_token": ({}, f"?access_token={SECRET}"),
    "bedrock-security-token": ({"Authorization": f"AWS4-HMAC-SHA256 Signature={SECRET}",
                                "X-Amz-Security-Token": SECRET}, ""),
    "cookie": ({"Cookie": f"session={SECRET}"}, ""),
    "custom-x-auth-token": ({"X-Auth-Token": SECRET}, ""),
}


@pytest.mark.parametrize("style", sorted(PROVIDER_STYLES))
def test_the_cassette_holds_no_credential(tmp_path, server, style):
    headers, query = PROVIDER_STYLES[style]
    recording = Recording(tmp_path / "rec", "record")
    with recording.cassette():
        answer = httpx.post(f"{server}/v1/chat/completions{query}", headers=headers, json={"model": "m"})
    text = (tmp_path / "rec" / "cassette.yaml").read_text()
    # the server got the credential (the live request is untouched); the file does not hold it
    assert answer.status_code == 200 and SECRET in json.dumps(_Echo.seen[-1]) + query
    assert SECRET not in text
    assert "/v1/chat/completions" in text  # the request itself was recorded


def test_user_and_password_in_the_url_are_not_recorded(tmp_path, server):
    host = server.removeprefix("http://")
    recording = Recording(tmp_path / "rec", "record")
    with recording.cassette():
        httpx.post(f"http://me:{SECRET}@{host}/v1/chat/completions", json={"model": "m"})
    assert SECRET not in (tmp_path / "rec" / "cassette.yaml").read_text()


def test_a_replay_of_a_scrubbed_cassette_still_matches(tmp_path, server, blocked_network_after):
    recording = Recording(tmp_path / "rec", "record")
    with recording.cassette():
        httpx.post(f"{server}/v1/chat/completions?key={SECRET}", headers={"x-goog-api-key": SECRET},
                   json={"model": "m"})
    blocked_network_after()
    # replay with the same credentials: matched on method, host, path and body, answered from the file
    with _replay(tmp_path / "rec"):
        again = httpx.post(f"{server}/v1/chat/completions?key={SECRET}", headers={"x-goog-api-key": SECRET},
                           json={"model": "m"})
    assert again.json() == {"ok": True}


def _replay(path):
    """The cassette of a recording folder, played back (the other files only need to exist)."""
    (path / "trials.db").touch()
    (path / META).write_text("{}")
    return Recording(path, "replay").cassette()


@pytest.mark.parametrize("spec", [
    f"openai/m@https://me:{SECRET}@llm.example.org/v1",
    f"openai/m@https://llm.example.org/v1?api_key={SECRET}",
    f"gemini/gemini-2.0@https://generativelanguage.googleapis.com/v1beta?key={SECRET}",
])
def test_recording_json_strips_credentials_from_the_lm_spec(tmp_path, spec):
    recording = Recording(tmp_path / "rec", "record")
    recording.write_meta({"workload": "digits-mlp", "lm": spec, "request": {"notes": [spec]}})
    text = (tmp_path / "rec" / META).read_text()
    # the host and path stay (a replay matches on them); the credential is gone
    assert SECRET not in text and "REDACTED" in text
    assert ("llm.example.org/v1" in text) or ("googleapis.com/v1beta" in text)


def test_redaction_keeps_what_is_not_a_credential():
    url = "https://api.example.org/v1/chat?api-version=2024-06-01&model=gpt&max_tokens=5"
    assert redact_url(url) == url
    assert redact_text("offline") == "offline"
    assert redact_url(f"https://h/v1?key={SECRET}&model=m") == "https://h/v1?key=REDACTED&model=m"
