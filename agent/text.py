"""Text for notes and answers, without importing the rest of the agent (offline_chat loads during lm's import)."""

from __future__ import annotations

from typing import Any


def short_text(value: Any, limit: int = 160) -> str:
    """``value`` as one line of at most ``limit`` characters."""
    text = " ".join(str(value).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
