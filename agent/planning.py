"""The planner program and its boundary: retry a malformed answer once, then the offline planner.

``AdapterParseError`` is not a ``ValueError`` (ReAct does not catch it), so it is caught here,
together with pydantic's errors on a proposal that does not validate: a malformed answer. A
transport error (``TRANSPORT_ERRORS``: the API's errors, a refused or timed-out connection, no
cassette entry) ends the attempts. Nothing else is caught: a ``TypeError`` or ``KeyError`` is a
bug in trainopt or dspy and propagates with its traceback. Every fallback is recorded so the
response can say which LM answered what.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import dspy
import httpx
import openai
from dspy.utils.exceptions import AdapterParseError, LMError
from pydantic import ValidationError
from vcr.errors import CannotOverwriteExistingCassetteException

from trainopt.agent.lm import build_lm, is_offline, lm_name, offline_lm
from trainopt.agent.schemas import LMUsage
from trainopt.agent.signatures import ExplainChoice, ProposeCandidates, RefineCandidates
from trainopt.agent.text import short_text
from trainopt.errors import OptimizationError

PARSE_ERRORS = (AdapterParseError, ValidationError)  # the LM answered, but not in the signature's form
# the LM did not answer: dspy wraps provider errors in LMError (5xx, timeout, auth); openai.OpenAIError is the
# base of litellm's API errors (auth, rate limit, 5xx, timeout, connection); httpx and OSError below it; vcrpy's
# when a replay has no recorded answer
TRANSPORT_ERRORS = (
    LMError, openai.OpenAIError, httpx.HTTPError, OSError, CannotOverwriteExistingCassetteException,
)
T = TypeVar("T")


class Planner(dspy.Module):
    """propose -> refine -> explain, one Predict per signature, over whichever LM is given.

    Examples:
        >>> planner = Planner("offline")
        >>> planner.usage().requested
        'offline'
    """

    def __init__(self, lm: str | dspy.BaseLM | None = None, strict: bool = False):
        super().__init__()
        self.propose = dspy.Predict(ProposeCandidates)
        self.refine = dspy.Predict(RefineCandidates)
        self.explain = dspy.Predict(ExplainChoice)
        self.lm = build_lm(lm)
        self.offline = self.lm if is_offline(self.lm) else offline_lm()
        self.strict = strict  # replay: a transport error means the recording does not match: raise
        self.adapter = dspy.ChatAdapter(use_json_adapter_fallback=False)
        self.answered_by: list[str] = []
        self.fallbacks: list[str] = []
        self._history_start = {id(self.lm): len(self.lm.history), id(self.offline): len(self.offline.history)}

    def ask(self, step: str, **inputs) -> dspy.Prediction:
        """Run the predictor named ``step`` on the LM; retry once on a malformed answer, then offline."""
        predictor = getattr(self, step)
        if not is_offline(self.lm):
            def failed(error: Exception) -> OptimizationError:
                return OptimizationError(f"the LM {lm_name(self.lm)!r} failed during {step}: {error}", "convergence",
                                         {"step": step, "error": repr(error)})

            prediction, fallback = ask_lm(self.lm, self.adapter, lambda: predictor(**inputs),
                                          failed if self.strict else None)
            if fallback is None:
                self.answered_by.append(f"{step}: {lm_name(self.lm)}")
                return prediction
            self.fallbacks.append(f"{step}: {fallback}")
        with dspy.context(lm=self.offline, adapter=self.adapter):
            prediction = predictor(**inputs)
        self.answered_by.append(f"{step}: offline")
        return prediction

    def usage(self) -> LMUsage:
        calls = len(self.lm.history) - self._history_start[id(self.lm)]
        if self.offline is not self.lm:
            calls += len(self.offline.history) - self._history_start[id(self.offline)]
        return LMUsage(
            requested=lm_name(self.lm),
            answered_by=list(self.answered_by),
            calls=calls,
            fallbacks=list(self.fallbacks),
        )


def ask_lm(
    lm: dspy.BaseLM, adapter: dspy.Adapter, call: Callable[[], T],
    strict: Callable[[Exception], OptimizationError] | None = None,
) -> tuple[T | None, str | None]:
    """``call()`` under ``lm``: (its answer, None), or (None, why the offline planner must answer instead).

    A malformed answer (``PARSE_ERRORS``) is retried once; a transport error (refused connection, auth,
    no cassette entry) ends the attempts, or raises ``strict(error)`` when given: in a replay it means
    the recording does not match.
    """
    for _ in range(2):
        try:
            with dspy.context(lm=lm, adapter=adapter):
                return call(), None
        except PARSE_ERRORS as error:
            last_error, kind = error, f"malformed answer ({type(error).__name__})"
        except TRANSPORT_ERRORS as error:
            if strict is not None:
                raise strict(error) from error
            last_error, kind = error, f"LM error ({type(error).__name__})"
            break
    return None, f"{kind} from {lm_name(lm)} -> offline planner ({short_text(last_error)})"

