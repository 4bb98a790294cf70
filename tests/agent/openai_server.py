"""A local OpenAI-compatible chat-completions server that serves trainopt's planner.

It answers DSPy ChatAdapter requests the way a model would: it reads the evidence in the prompt
and writes the output fields in ChatAdapter format, computed by the planner rules in
``trainopt.agent.offline_engine.answer_chat``. It can misbehave like a real model: ``malformed=N``
makes the first N answers unparseable, and ``script`` lists one behaviour per request (then it
behaves), each one of

    "ok"         the planner's answer
    "malformed"  prose, no ChatAdapter fields
    "untidy"     the planner's candidates buried in a list three times too long: duplicates, NaN and
                 negative LRs, an unknown optimizer, prose where numbers belong, an LR far out of range
    "error"      HTTP 500
    "stall:S"    the planner's answer after S seconds

Run it by hand:  python3 tests/agent/openai_server.py --port 8765
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from trainopt.agent.offline_engine import answer_chat


def _content(message: dict) -> str:
    content = message.get("content") or ""
    if isinstance(content, list):
        return "".join(part.get("text", "") for part in content if isinstance(part, dict))
    return content


class PlannerServer(ThreadingHTTPServer):
    """``with PlannerServer() as server: server.url`` -> http://127.0.0.1:PORT/v1, served in a thread."""

    daemon_threads = True

    def __init__(self, port: int = 0, malformed: int = 0, script: list[str] | None = None):
        super().__init__(("127.0.0.1", port), _Handler)
        self.malformed = malformed
        self.script = list(script or [])
        self.requests: list[dict] = []
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"

    def __enter__(self) -> PlannerServer:
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.shutdown()
        self.server_close()

    def answer(self, body: dict) -> str:
        with self._lock:
            self.requests.append(body)
            behaviour = self.script.pop(0) if self.script else "ok"
            if self.malformed > 0:
                self.malformed -= 1
                behaviour = "malformed"
        if behaviour == "malformed":
            return "I think a learning rate of about 3e-3 would be good."  # no ChatAdapter fields
        if behaviour == "error":
            raise ServerError("the model is overloaded")
        if behaviour.startswith("stall:"):
            time.sleep(float(behaviour.split(":", 1)[1]))
        messages = body["messages"]
        system = "\n".join(_content(m) for m in messages if m["role"] == "system")
        user = next(_content(m) for m in reversed(messages) if m["role"] == "user")
        text = answer_chat(system, user)
        return _untidy(text) if behaviour == "untidy" else text


class ServerError(RuntimeError):
    """Answered as HTTP 500, like an overloaded API."""


_CANDIDATES = re.compile(r"(\[\[ ## candidates ## \]\]\n)(.*?)(\n\n\[\[ ## )", re.S)


def _untidy(text: str) -> str:
    """The answer with its candidate list made three times longer and full of what real models return."""
    match = _CANDIDATES.search(text)
    if match is None:
        return text
    good = json.loads(match.group(2))
    first = good[0]
    junk = [
        dict(first),  # a duplicate
        {**first, "lr": float("nan")},
        {**first, "lr": -0.01},
        {**first, "optimizer": "adamx"},
        {**first, "lr": "about three times the suggestion"},
        {**first, "lr": 50.0, "why": "far above anything sane"},
        "use a larger batch",
    ]
    untidy = (junk + good * 3)[: 3 * len(good) + len(junk)]
    return text[: match.start(2)] + json.dumps(untidy) + text[match.end(2):]


class _Handler(BaseHTTPRequestHandler):
    server: PlannerServer

    def do_POST(self) -> None:  # noqa: N802 (http.server naming)
        if not self.path.rstrip("/").endswith("/chat/completions"):
            self._send(404, {"error": {"message": f"no route {self.path}"}})
            return
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
        try:
            text = self.server.answer(body)
        except ServerError as error:
            self._send(500, {"error": {"message": str(error), "type": "server_error"}})
            return
        except Exception as error:  # the planner could not answer: a 400 like a real API
            self._send(400, {"error": {"message": str(error), "type": "invalid_request_error"}})
            return
        words = sum(len(_content(m).split()) for m in body["messages"])
        self._send(
            200,
            {
                "id": f"chatcmpl-{len(self.server.requests)}",
                "object": "chat.completion",
                "created": 0,
                "model": body.get("model", "trainopt-planner"),
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
                "usage": {
                    "prompt_tokens": words,
                    "completion_tokens": len(text.split()),
                    "total_tokens": words + len(text.split()),
                },
            },
        )

    def _send(self, status: int, payload: dict) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # a client that gave up on a stall
            self.wfile.write(data)

    def log_message(self, *args) -> None:
        pass


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8765)
    args = parser.parse_args()
    with PlannerServer(args.port) as server:
        print(f"serving the trainopt planner at {server.url}")
        threading.Event().wait()
