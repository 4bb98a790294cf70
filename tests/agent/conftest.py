"""Fixtures of the agent tests: a probe digest, the local planner server, no network by default."""

from __future__ import annotations

import socket

import pytest
from openai_server import PlannerServer

from trainopt.agent.digest import ProbeDigest


@pytest.fixture
def digest() -> ProbeDigest:
    """Evidence as the probes report it on digits-mlp (numbers from a real probe run)."""
    return ProbeDigest(
        workload="digits-mlp",
        parameters=26122,
        num_train=1437,
        metric_name="accuracy",
        steps_per_candidate=120,
        baseline={"optimizer": "adamw", "lr": 1e-3, "batch_size": 64, "schedule": "constant"},
        optimizer_options=["adamw", "sgd"],
        lr_suggested=3e-3,
        lr_rule="valley: lands within 2x of the best grid LR",
        lr_safe_range=(1e-5, 2e-2),
        batch_range=(8, 512),
        batch_recommended=64,
        batch_knee=128,
        batch_noise_scale=40.0,
        grad_findings=["warning 0.weight: exploding norm spikes -> clip"],
        grad_clip_suggested=2.5,
    )


@pytest.fixture
def planner_server():
    with PlannerServer() as server:
        yield server


@pytest.fixture
def blocked_network(monkeypatch):
    """Refuse every internet socket connection, localhost included: a replay must not need one."""
    real_connect = socket.socket.connect

    def refuse(self, address):
        if self.family in (socket.AF_INET, socket.AF_INET6):
            raise OSError(f"network blocked in tests: connect to {address!r}")
        return real_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", refuse)


@pytest.fixture
def blocked_network_after(monkeypatch):
    """Call it to block the network from that point on (record first, then replay offline)."""
    real_connect = socket.socket.connect

    def block() -> None:
        def refuse(self, address):
            if self.family in (socket.AF_INET, socket.AF_INET6):
                raise OSError(f"network blocked in tests: connect to {address!r}")
            return real_connect(self, address)

        monkeypatch.setattr(socket.socket, "connect", refuse)

    return block


@pytest.fixture
def no_network(monkeypatch):
    """Refuse every socket connection except to 127.0.0.1 (what CI's blocked network looks like)."""
    real_connect = socket.socket.connect

    def guarded(self, address):
        host = address[0] if isinstance(address, tuple) else address
        if host not in ("127.0.0.1", "localhost", "::1") and not isinstance(address, str | bytes):
            raise OSError(f"network blocked in tests: connect to {address!r}")
        return real_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", guarded)
