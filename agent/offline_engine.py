"""The offline planner as a DSPy LM engine: ``complete(Request) -> Response``.

It reads the ChatAdapter-formatted request (field names from the system message, field values
from the ``[[ ## name ## ]]`` sections of the last user message), answers the signature with the
deterministic rules in ``trainopt.agent.planner``, and writes the answer in the same format.
The local OpenAI-compatible test server serves ``answer_chat`` over HTTP, so a litellm LM and
the offline engine run one and the same DSPy program.

The chat agent's signatures come from ``trainopt.agent.offline_chat.CHAT_HANDLERS`` (that module
imports nothing from this one); others plug in with ``register_handler``.

Examples:
    >>> import dspy
    >>> lm = dspy.LM("trainopt/offline", engine=OfflinePlannerEngine(), cache=False, num_retries=0)
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from dspy.clients.engines.base import validate_request
from dspy.lm15 import Message, Response, TextPart, Usage

from trainopt.agent import explanation, planner
from trainopt.agent.digest import MeasuredResult, ProbeDigest
from trainopt.agent.offline_chat import CHAT_HANDLERS

# handler(inputs: dict of parsed input values) -> dict of output values
Handler = Callable[[dict[str, Any]], dict[str, Any]]
_FIELD = re.compile(r"\[\[ ## (\w+) ## \]\]\n(.*?)(?=\n\n\[\[ ## \w+ ## \]\]|\n\nRespond with|\Z)", re.S)


def _propose(inputs: dict[str, Any]) -> dict[str, Any]:
    digest = ProbeDigest.model_validate(inputs["evidence"])
    candidates, rationale = planner.propose(digest, int(inputs["num_candidates"]))
    return {"candidates": [c.model_dump() for c in candidates], "rationale": rationale}


def _refine(inputs: dict[str, Any]) -> dict[str, Any]:
    digest = ProbeDigest.model_validate(inputs["evidence"])
    results = [MeasuredResult.model_validate(r) for r in inputs["results"]]
    candidates, rationale = planner.refine(digest, results, int(inputs["num_candidates"]))
    return {"candidates": [c.model_dump() for c in candidates], "rationale": rationale}


def _explain(inputs: dict[str, Any]) -> dict[str, Any]:
    digest = ProbeDigest.model_validate(inputs["evidence"])
    winner = MeasuredResult.model_validate(inputs["winner"])
    comparison = inputs["comparison"]
    if "challenger_val_loss" not in comparison:  # an older comparison without the held-out figures
        return {"explanation": planner.explain(digest, winner, comparison)}
    return {"explanation": explanation.explain(digest, winner, comparison)}


# (input field names that must be present, output field names) -> handler; first match wins
_HANDLERS: list[tuple[frozenset[str], frozenset[str], Handler]] = [
    *CHAT_HANDLERS,  # the chat agent's ReAct signatures (trainopt.agent.offline_chat)
    (frozenset({"evidence", "results"}), frozenset({"candidates", "rationale"}), _refine),
    (frozenset({"evidence"}), frozenset({"candidates", "rationale"}), _propose),
    (frozenset({"evidence", "winner"}), frozenset({"explanation"}), _explain),
]


def register_handler(inputs: set[str], outputs: set[str], handler: Handler) -> None:
    """Teach the offline planner another signature (matched by its input and output field names)."""
    _HANDLERS.insert(0, (frozenset(inputs), frozenset(outputs), handler))


def _field_names(system: str, heading: str) -> list[str]:
    """Field names listed under 'Your input fields are:' / 'Your output fields are:'."""
    match = re.search(rf"Your {heading} fields are:\n(.*?)(?:\nYour |\nAll interactions)", system, re.S)
    return re.findall(r"^\d+\. `(\w+)`", match.group(1), re.M) if match else []


def _parse_value(text: str) -> Any:
    text = text.strip()
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _format_value(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def answer_chat(system: str, user: str) -> str:
    """The ChatAdapter-format answer to one request (system message, last user message)."""
    inputs_wanted = set(_field_names(system, "input"))
    outputs = _field_names(system, "output")
    sections = {name: _parse_value(text) for name, text in _FIELD.findall(user)}
    values = {name: value for name, value in sections.items() if name in inputs_wanted}
    values["_sections"] = sections  # every section, nested ones too (a ReAct trajectory's observation_i)
    for required, produced, handler in _HANDLERS:
        if produced == set(outputs) and required <= set(values):
            answer = handler(values)
            parts = [f"[[ ## {name} ## ]]\n{_format_value(answer[name])}" for name in outputs]
            return "\n\n".join([*parts, "[[ ## completed ## ]]"])
    raise ValueError(
        f"the offline planner has no answer for a signature with inputs {sorted(values)} and outputs {outputs}"
    )


def _text(content) -> str:
    if content is None:
        return ""
    return content if isinstance(content, str) else "".join(getattr(p, "text", "") or "" for p in content)


class OfflinePlannerEngine:
    """A DSPy custom LM engine answering the planner signatures deterministically from the evidence."""

    def complete(self, request) -> Response:
        validate_request(request)
        user = next((m for m in reversed(request.messages) if m.role == "user"), None)
        text = answer_chat(_text(request.system), user.text if user is not None else "")
        return Response(
            id=None,
            model="offline",
            message=Message.assistant([TextPart(text)]),
            finish_reason="stop",
            usage=Usage(input_tokens=0, output_tokens=0, total_tokens=0),
        )

    def close(self) -> None:
        pass

