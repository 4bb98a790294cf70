"""The planner program and its boundary: retry a malformed answer once, then the offline planner.

``AdapterParseError`` is not a ``ValueError`` (ReAct does not catch it), so it is caught here,
together with pydantic's errors on a proposal that does not validate. Every fallback is
recorded so the response can say which LM answered what.
"""

from __future__ import annotations

import dspy
from dspy.utils.exceptions import AdapterParseError
from pydantic import ValidationError

from trainopt.agent.lm import build_lm, is_offline, lm_name, offline_lm
from trainopt.agent.schemas import LMUsage
from trainopt.agent.signatures import ExplainChoice, ProposeCandidates, RefineCandidates
from trainopt.errors import OptimizationError

PARSE_ERRORS = (AdapterParseError, ValidationError, ValueError, TypeError, KeyError)


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
        last_error: Exception | None = None
        if not is_offline(self.lm):
            for attempt in range(2):
                try:
                    with dspy.context(lm=self.lm, adapter=self.adapter):
                        prediction = predictor(**inputs)
                    self.answered_by.append(f"{step}: {lm_name(self.lm)}")
                    return prediction
                except PARSE_ERRORS as error:
                    last_error = error
                    kind = f"malformed answer ({type(error).__name__})"
                    if attempt == 0:
                        continue
                except Exception as error:  # transport: refused connection, auth, missing cassette entry
                    if self.strict:
                        raise OptimizationError(
                            f"the LM {lm_name(self.lm)!r} failed during {step}: {error}",
                            "convergence",
                            {"step": step, "error": repr(error)},
                        ) from error
                    last_error, kind = error, f"LM error ({type(error).__name__})"
                    break
            self.fallbacks.append(f"{step}: {kind} from {lm_name(self.lm)} -> offline planner ({_short(last_error)})")
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


def _short(error: Exception | None, limit: int = 160) -> str:
    text = " ".join(str(error).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
