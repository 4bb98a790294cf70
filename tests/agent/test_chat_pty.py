"""`trainopt chat` driven through a pseudo-terminal: Ctrl-C stops a probe, a question gets a number, /quit."""

from __future__ import annotations

import os
import sys
import time

import pytest

pexpect = pytest.importorskip("pexpect")


@pytest.mark.slow
def test_chat_in_a_terminal(tmp_path):
    env = {**os.environ, "TRAINOPT_LM": "offline", "OMP_NUM_THREADS": "1", "NO_COLOR": "1"}
    args = ["-m", "trainopt.cli", "chat", "--workload", "digits-mlp", "--probe-steps", "6", "--device", "cpu",
            "--out", str(tmp_path)]
    # a Ctrl-C can cut a progress bar's multi-byte character in half: replace it rather than fail on it
    child = pexpect.spawn(sys.executable, args, env=env, encoding="utf-8", codec_errors="replace", timeout=240,
                          dimensions=(40, 400))
    try:
        child.expect("you>")
        # a long optimization, interrupted with Ctrl-C once it trains: the probe stops, the session goes on
        child.sendline("optimize digits-mlp in 10 minutes")
        child.expect("running optimize_training on digits-mlp")
        time.sleep(1.0)
        child.sendintr()
        # Where the interrupt lands decides the message ("Stopped <tool> after N of M steps" inside a
        # probe, "interrupted: the question was dropped" between probes); either way the session goes on.
        landed = child.expect([r"Stopped optimize_training on digits-mlp after \d+ of \d+ steps", "interrupted",
                               "you>"])
        if landed < 2:
            child.expect("you>")
        # a question answered with the number the LR probe measured
        child.sendline("what learning rate for digits-mlp?")
        child.expect("running learning_rate_scheduler on digits-mlp")
        child.expect(r"Use a peak learning rate of ([0-9.e+-]+) on digits-mlp")
        assert float(child.match.group(1)) > 0
        child.expect("you>")
        child.sendline("/quit")
        child.expect(pexpect.EOF)
    finally:
        child.close()
    # the session ended by /quit, not by the interrupt
    assert child.exitstatus == 0
