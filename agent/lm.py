"""LM backends: the offline planner engine, or any litellm model / OpenAI-compatible server.

``--lm`` / ``TRAINOPT_LM`` takes:
  offline                        the deterministic planner (default, no network)
  openai/gpt-4o-mini             any litellm model string (keys from the usual environment)
  http://127.0.0.1:8000/v1       an OpenAI-compatible server (model name from TRAINOPT_LM_MODEL)
  openai/my-model@http://host/v1 both at once

litellm LMs use ``engine="litellm"`` (DSPy's default engine talks raw sockets that vcrpy cannot
record), no retries (the agent owns them) and no cache (a replay must see every request).
"""

from __future__ import annotations

import os

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # before dspy: no cost-map download

import dspy  # noqa: E402

from trainopt.agent.offline_engine import OfflinePlannerEngine  # noqa: E402

OFFLINE = "offline"
OFFLINE_MODEL = "trainopt/offline-planner"
DEFAULT_SERVER_MODEL = "openai/trainopt-planner"


def resolve_lm_spec(spec: str | None = None) -> str:
    """The LM to use: the argument, else $TRAINOPT_LM, else offline."""
    spec = spec or os.environ.get("TRAINOPT_LM") or OFFLINE
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError(f"lm must be 'offline', a litellm model string or an http(s) api_base but got {spec=}")
    return spec.strip()


def split_spec(spec: str) -> tuple[str, str | None]:
    """(litellm model, api_base or None) of a non-offline spec."""
    if spec.startswith(("http://", "https://")):
        return os.environ.get("TRAINOPT_LM_MODEL", DEFAULT_SERVER_MODEL), spec
    if "@" in spec:
        model, api_base = spec.split("@", 1)
        if not api_base.startswith(("http://", "https://")):
            raise ValueError(f"the part after '@' must be an http(s) api_base but got {spec=}")
        return model, api_base
    return spec, None


def build_lm(spec: str | dspy.BaseLM | None = None, temperature: float = 0.0) -> dspy.BaseLM:
    """A dspy LM for ``spec`` (see the module docstring); an LM object passes through.

    Examples:
        >>> build_lm("offline").model
        'trainopt/offline-planner'
    """
    if isinstance(spec, dspy.BaseLM):
        return spec
    spec = resolve_lm_spec(spec)
    if spec == OFFLINE:
        return offline_lm()
    model, api_base = split_spec(spec)
    kwargs = {
        "engine": "litellm",
        "num_retries": 0,
        "cache": False,
        "temperature": temperature,
        "max_tokens": 4000,
        # a stalled server must not hang the run: the call fails and the offline planner answers instead
        "timeout": float(os.environ.get("TRAINOPT_LM_TIMEOUT", "120")),
    }
    if api_base is not None:
        kwargs["api_base"] = api_base
        kwargs["api_key"] = os.environ.get("TRAINOPT_LM_API_KEY") or os.environ.get("OPENAI_API_KEY") or "none"
    return dspy.LM(model, **kwargs)


def offline_lm() -> dspy.LM:
    return dspy.LM(OFFLINE_MODEL, engine=OfflinePlannerEngine(), cache=False, num_retries=0)


def lm_name(lm: dspy.BaseLM) -> str:
    """A short name for reports: 'offline' or the litellm model string."""
    return OFFLINE if lm.model == OFFLINE_MODEL else lm.model


def is_offline(lm: dspy.BaseLM) -> bool:
    return lm.model == OFFLINE_MODEL
