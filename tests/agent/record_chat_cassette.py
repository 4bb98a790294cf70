"""Re-record tests/cassettes/chat-digits-mlp: a chat session against the local planner server.

    python3 tests/agent/record_chat_cassette.py

The probes are real (this machine), the chat LM answers over HTTP from the local
OpenAI-compatible server (tests/agent/openai_server.py). The folder keeps the LM traffic
(cassette.yaml), the trial store with every tool output (trials.db), what was recorded
(recording.json) and the transcript (result.json); test_chat_session.py and test_chat_pty.py
replay it with the network blocked. Re-record after changing what the chat asks the tools or the LM.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
sys.path.insert(0, str(Path(__file__).parent))

from openai_server import PlannerServer  # noqa: E402

CASSETTE = Path(__file__).resolve().parents[1] / "cassettes" / "chat-digits-mlp"
QUESTIONS = ["what learning rate for digits-mlp?", "why does my loss oscillate?"]
PROBE_STEPS = 20  # small probes keep the recording (and the repository) small


def record() -> None:
    import torch

    from trainopt.agent.chat import ChatSession

    torch.set_num_threads(1)
    here = Path.cwd()
    with PlannerServer() as server, tempfile.TemporaryDirectory() as out:
        os.chdir(out)  # a relative output folder: the recording names no path of this machine
        session = ChatSession(
            "digits-mlp",
            lm=f"openai/trainopt-planner@{server.url}",
            probe_steps=PROBE_STEPS,
            device="cpu",
            out_dir="trainopt-out",
            record=CASSETTE,
        )
        try:
            with session:
                for question in QUESTIONS:
                    turn = session.ask(question)
                    print(f"Q: {question}\nA: {turn.answer}\n   tools={turn.tools} answered_by={turn.answered_by}")
        finally:
            os.chdir(here)
        print(f"{len(server.requests)} LM requests recorded in {CASSETTE}")


if __name__ == "__main__":
    record()
