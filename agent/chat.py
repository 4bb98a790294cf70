"""A chat session about training a workload: dspy.ReAct over the probe tools, with slash commands.

The session holds the workload, the optimize budget, the history (passed to the TrainingChat
signature on every turn) and every measured tool summary. It runs without a terminal, so the
logic is tested directly; ``trainopt chat`` puts a prompt and rich progress bars around it.

Slash commands: /workload NAME, /budget SECONDS, /report, /help, /quit.

Record and replay as in ``optimize``: ``record=DIR`` keeps the LM traffic (vcrpy cassette) and the
trial store with every tool output; ``replay=DIR`` answers the LM from the cassette and every probe
from the recorded outputs, with no training and no network.

Examples:
    >>> with ChatSession("digits-mlp", probe_steps=20) as chat:              # doctest: +SKIP
    ...     print(chat.ask("what learning rate for digits-mlp?").answer)
"""

from __future__ import annotations

from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dspy
import torch

from trainopt.agent.chat_tools import Announce, ChatProgress, ToolContext, build_chat_tools
from trainopt.agent.lm import build_lm, is_offline, lm_name, offline_lm, resolve_lm_spec
from trainopt.agent.planning import ask_lm
from trainopt.agent.probe_cache import ProbeCache
from trainopt.agent.record import Recording, ReplayStore, atomic_write
from trainopt.agent.signatures import TrainingChat
from trainopt.errors import HyperparameterError, OptimizationError
from trainopt.tools.store import DEFAULT_OUT_DIR, TrialStore, default_storage
from trainopt.tools.trials import resolve_device
from trainopt.tools.workloads import get_workload, workload_names

HELP = """Ask in plain words, for example:
  what learning rate for char-gpt?
  why does my loss oscillate?
  which batch size fits in memory?
  how many steps until it converges?
  optimize digits-cnn in 2 minutes
Commands:
  /workload NAME    switch the workload ({names})
  /budget SECONDS   time budget of an optimization (now {budget:g} s)
  /report           write what was measured in this session to a report
  /help             this text
  /quit             end the session (Ctrl-D too); Ctrl-C stops a running probe"""


def _import_lazy_torch_modules() -> None:
    """Import what torch.optim imports on its first use (torch._dynamo, and sympy through it), now.

    A Ctrl-C that lands inside that 1-2 s import leaves sympy half-initialised, and every later
    probe of the session then fails with "module 'sympy' has no attribute 'printing'".
    """
    import torch._dynamo  # noqa: F401


@dataclass
class ChatTurn:
    """One answered question, with the tools that measured its numbers."""

    question: str
    workload: str
    answer: str
    tools: list[str] = field(default_factory=list)
    answered_by: str = "offline"
    note: str | None = None


@dataclass
class Reply:
    """What the session says to one line of input."""

    text: str
    turn: ChatTurn | None = None
    quit: bool = False


class ChatSession:
    """Questions about training ``workload``, answered by ReAct over the probe tools.

    Args:
        workload: the workload the session starts on (a question may name another one).
        lm: "offline" (default, or $TRAINOPT_LM), a litellm model string, an api_base, or a dspy LM.
        budget_s: time budget of ``optimize_training`` calls.
        probe_steps: size of a chat probe (sweep and check lengths derive from it).
        record / replay: a recording folder (see the module docstring); exclusive.
        progress: ``progress(tool, done, total)`` while a probe trains.
        announce: ``announce(tool, workload, input)`` when a tool starts.
    """

    def __init__(
        self,
        workload: str = "digits-mlp",
        lm: str | dspy.BaseLM | None = None,
        budget_s: float = 60.0,
        probe_steps: int = 60,
        device: str = "auto",
        storage: str | None = None,
        out_dir: str | Path = DEFAULT_OUT_DIR / "chat",
        record: str | Path | None = None,
        replay: str | Path | None = None,
        progress: ChatProgress | None = None,
        announce: Announce | None = None,
        max_iters: int = 4,
    ):
        if record is not None and replay is not None:
            raise HyperparameterError(
                f"record and replay are exclusive but got {record=} and {replay=}",
                {"record": str(record), "replay": str(replay)},
            )
        if budget_s <= 0:
            raise HyperparameterError(f"budget_s must be > 0 but got {budget_s=}", {"budget_s": budget_s})
        if probe_steps < 4:
            raise HyperparameterError(f"probe_steps must be >= 4 but got {probe_steps=}", {"probe_steps": probe_steps})
        self.out_dir = Path(out_dir)
        self.recording: Recording | None = None
        self.replaying = replay is not None
        if replay is not None:
            self.recording = Recording(replay, "replay")
            meta = self.recording.meta
            if meta.get("kind") != "chat":
                raise HyperparameterError(f"replay: {replay} is not a chat recording", {"path": str(replay)})
            storage, device_type = self.recording.storage(), meta["device"]
            store, cache = ReplayStore(storage, device_type), ProbeCache(storage, readonly=True)
            lm = lm if lm is not None else meta["lm"]
            probe_steps, budget_s = meta["probe_steps"], meta["budget_s"]
            local = torch.device("cpu")
        else:
            if record is not None:
                self.recording = Recording(record, "record")
                storage = self.recording.storage()
            storage = storage or default_storage(self.out_dir)
            local = resolve_device(device)
            device_type = local.type
            _import_lazy_torch_modules()
            store, cache = TrialStore(storage), ProbeCache(storage)
            lm = lm if lm is not None else resolve_lm_spec()
        self.lm = build_lm(lm)
        self.offline = self.lm if is_offline(self.lm) else offline_lm()
        if record is not None:
            self.recording.write_meta(
                {
                    "kind": "chat",
                    "workload": get_workload(workload).name,
                    "device": device_type,
                    "lm": lm if isinstance(lm, str) else lm_name(self.lm),
                    "probe_steps": probe_steps,
                    "budget_s": budget_s,
                }
            )
        self.ctx = ToolContext(
            workload=get_workload(workload).name,
            device=local,
            device_type=device_type,
            store=store,
            cache=cache,
            storage=storage,
            out_dir=self.out_dir,
            lm=lm,
            probe_steps=probe_steps,
            budget_s=budget_s,
            progress=progress,
            announce=announce,
        )
        self.react = dspy.ReAct(TrainingChat, tools=build_chat_tools(self.ctx), max_iters=max_iters)
        self.adapter = dspy.ChatAdapter(use_json_adapter_fallback=False)
        self.history: list[dict[str, Any]] = []
        self.turns: list[ChatTurn] = []
        self._stack = ExitStack()

    # ---- lifecycle: the cassette stays open for the whole session -----------------------------------

    def __enter__(self) -> ChatSession:
        if self.recording is not None:
            self._stack.enter_context(self.recording.cassette())
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._stack.close()
        if self.recording is not None:
            if self.recording.mode == "record":
                self.recording.write_result(self.transcript_json())
            self.recording.close()
            self.recording = None

    @property
    def workload(self) -> str:
        return self.ctx.workload

    @property
    def budget_s(self) -> float:
        return self.ctx.budget_s

    # ---- one line of input ----------------------------------------------------------------------------

    def handle(self, line: str) -> Reply:
        """A slash command, or a question for the agent."""
        line = line.strip()
        if not line:
            return Reply("")
        if line.startswith("/"):
            return self.command(line)
        turn = self.ask(line)
        return Reply(turn.answer, turn=turn)

    def command(self, line: str) -> Reply:
        name, _, arg = line.partition(" ")
        arg = arg.strip()
        if name in ("/quit", "/exit", "/q"):
            return Reply("bye", quit=True)
        if name == "/help":
            return Reply(HELP.format(names=", ".join(workload_names()), budget=self.budget_s))
        if name == "/workload":
            if not arg:
                return Reply(f"workload: {self.workload} (known: {', '.join(workload_names())})")
            try:
                self.ctx.workload = get_workload(arg).name
            except OptimizationError as error:
                return Reply(f"error: {error.message}")
            return Reply(f"workload: {self.workload}")
        if name == "/budget":
            try:
                seconds = float(arg)
                if not seconds > 0:
                    raise ValueError
            except ValueError:
                return Reply(f"error: /budget takes seconds > 0 but got {arg!r}")
            self.ctx.budget_s = seconds
            return Reply(f"optimization budget: {seconds:g} s")
        if name == "/report":
            return Reply(self.report())
        return Reply(f"error: unknown command {name!r}; /help lists them")

    def ask(self, question: str) -> ChatTurn:
        """Answer ``question`` with ReAct on the LM; a malformed answer is retried once, then offline."""
        question = question.strip()
        if not question:
            raise ValueError(f"question must be non-empty but got {question=}")
        inputs = {"question": question, "workload": self.workload, "history": dspy.History(messages=list(self.history))}
        prediction, answered_by, note = self._predict(inputs)
        trajectory = prediction.trajectory
        tools = [str(v) for k, v in trajectory.items() if k.startswith("tool_name_") and v != "finish"]
        turn = ChatTurn(
            question=question,
            workload=self.workload,
            answer=str(prediction.answer),
            tools=tools,
            answered_by=answered_by,
            note=note,
        )
        self.history.append({"question": question, "workload": self.workload, "answer": turn.answer})
        self.turns.append(turn)
        return turn

    def _predict(self, inputs: dict[str, Any]) -> tuple[dspy.Prediction, str, str | None]:
        fallback = None
        if not is_offline(self.lm):
            def failed(error: Exception) -> OptimizationError:
                return OptimizationError(f"replay: the LM {lm_name(self.lm)!r} failed: {error}", "convergence",
                                         {"error": repr(error)})

            prediction, fallback = ask_lm(self.lm, self.adapter, lambda: self.react(**inputs),
                                          failed if self.replaying else None)
            if fallback is None:
                return prediction, lm_name(self.lm), None
        with dspy.context(lm=self.offline, adapter=self.adapter):
            return self.react(**inputs), "offline", fallback

    # ---- what the session measured --------------------------------------------------------------------

    def transcript(self) -> dict[str, Any]:
        return {
            "workload": self.workload,
            "budget_s": self.budget_s,
            "lm": lm_name(self.lm),
            "turns": [vars(t) for t in self.turns],
            "measured": list(self.ctx.measured),
        }

    def transcript_json(self) -> str:
        import json

        return json.dumps(self.transcript(), indent=2)

    def report(self) -> str:
        """Write chat-report.md and chat-report.json to out_dir; return a summary with the paths."""
        lines = [f"# trainopt chat: {self.workload}", ""]
        for i, turn in enumerate(self.turns, 1):
            lines += [
                f"## {i}. {turn.question}",
                "",
                turn.answer,
                "",
                f"_tools: {', '.join(turn.tools) or 'none'}; answered by {turn.answered_by}_",
                "",
            ]
        self.out_dir.mkdir(parents=True, exist_ok=True)
        md, js = self.out_dir / "chat-report.md", self.out_dir / "chat-report.json"
        atomic_write(md, "\n".join(lines))
        atomic_write(js, self.transcript_json())
        probes = [
            f"{m['tool']} on {m['workload']}" + (" (interrupted)" if m.get("interrupted") else "")
            for m in self.ctx.measured
        ]
        reports = [m["report_html"] for m in self.ctx.measured if m.get("report_html")]
        text = [
            f"{len(self.turns)} question(s), {len(probes)} tool run(s): {', '.join(probes) or 'none'}",
            f"report: {md}",
            f"data: {js}",
        ]
        text += [f"optimization report: {path}" for path in reports]
        return "\n".join(text)
