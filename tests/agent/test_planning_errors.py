"""ask_lm: a malformed answer is retried then falls back, a transport error falls back, a bug propagates."""

import httpx
import openai
import pytest
from dspy.utils.exceptions import AdapterParseError

from trainopt.agent.lm import offline_lm
from trainopt.agent.planning import ask_lm


def _failing(errors):
    """A call that raises each of ``errors`` in turn, then answers "ok"."""
    remaining = list(errors)
    calls = []

    def call():
        calls.append(1)
        if remaining:
            raise remaining.pop(0)
        return "ok"

    return call, calls


def _parse_error():
    import dspy

    return AdapterParseError(adapter_name="ChatAdapter", signature=dspy.Signature("q -> a"), lm_response="prose")


def test_one_malformed_answer_is_retried():
    call, calls = _failing([_parse_error()])
    answer, fallback = ask_lm(offline_lm(), None, call)
    assert (answer, fallback, len(calls)) == ("ok", None, 2)


def test_two_malformed_answers_fall_back_and_say_so():
    call, _ = _failing([_parse_error(), _parse_error()])
    answer, fallback = ask_lm(offline_lm(), None, call)
    assert answer is None and fallback.startswith("malformed answer (AdapterParseError)")


@pytest.mark.parametrize("error", [
    openai.APIConnectionError(request=httpx.Request("POST", "http://localhost:1")),
    httpx.ConnectError("refused"),
    ConnectionRefusedError("refused"),
], ids=["api", "httpx", "socket"])
def test_a_transport_error_falls_back_without_retry(error):
    call, calls = _failing([error])
    answer, fallback = ask_lm(offline_lm(), None, call)
    assert answer is None and fallback.startswith("LM error") and len(calls) == 1


@pytest.mark.parametrize("bug", [TypeError("unsupported operand"), KeyError("candidates"), ValueError("bad")],
                         ids=["TypeError", "KeyError", "ValueError"])
def test_a_bug_propagates_instead_of_looking_like_a_malformed_answer(bug):
    call, calls = _failing([bug])
    with pytest.raises(type(bug)):
        ask_lm(offline_lm(), None, call)
    assert len(calls) == 1
