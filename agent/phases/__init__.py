"""An optimization run as a chain of phases over one RunState (docs/architecture.md):

    profile -> probe -> propose + race -> refine + race (while it pays) -> search -> finals -> confirm -> respond
"""

from __future__ import annotations

from trainopt.agent.phases.confirm import confirm
from trainopt.agent.phases.finals import finals
from trainopt.agent.phases.probe import probe
from trainopt.agent.phases.profile import profile
from trainopt.agent.phases.propose import propose, refine
from trainopt.agent.phases.race import race
from trainopt.agent.phases.respond import respond
from trainopt.agent.phases.search import search
from trainopt.agent.phases.spend import another_round, leader, search_trials
from trainopt.agent.phases.state import RunState
from trainopt.agent.schemas import OptimizationResponse

PHASES = ("profile", "probe", "propose", "race", "refine", "search", "finals", "confirm", "respond")


def execute(state: RunState) -> OptimizationResponse:
    profile(state)
    probe(state)
    race(state, propose(state))
    before = None
    while another_round(state, before) and (proposals := refine(state)):
        before = leader(state)
        race(state, proposals)
    state.report("refine", 1, 1, f"{state.rounds} round(s)")
    if (extra := search_trials(state)) is not None:
        search(state, extra)
    state.report("search", 1, 1, "done" if extra is not None else "skipped")
    return respond(state, confirm(state, finals(state)))


__all__ = ["PHASES", "RunState", "execute"]
