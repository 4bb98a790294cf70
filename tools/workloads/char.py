"""``char-gpt``: a nanoGPT-style character model on the text of Python's ``pydoc_data.topics``.

The text is cut into non-overlapping windows of block_size + 1 characters; the first 90% of
the windows train (6,437 at block_size 64), and from the last 10% (fixed, held-out stretches of
text) the first 256 windows validate and the next 256 test.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from trainopt.tools.workloads.base import Workload
from trainopt.tools.workloads.char_gpt import CharGPT, CharGPTConfig, char_windows, encode_text, pydoc_text

VAL_WINDOWS = TEST_WINDOWS = 256  # windows of held-out text; test follows validation


def next_char_loss(model, batch) -> torch.Tensor:
    (windows,) = batch  # (B, T + 1)
    logits = model(windows[:, :-1])  # (B, T, V)
    return F.cross_entropy(logits.reshape(-1, logits.size(-1)), windows[:, 1:].reshape(-1))


def next_char_accuracy(model, batch) -> float:
    (windows,) = batch
    return (model(windows[:, :-1]).argmax(-1) == windows[:, 1:]).float().mean().item()


def char_gpt(block_size: int = 64) -> Workload:
    tokens, vocab = encode_text(pydoc_text())
    windows = char_windows(tokens, block_size)  # (N, block_size + 1)
    cut = int(0.9 * len(windows))
    config = CharGPTConfig(vocab_size=len(vocab), block_size=block_size)
    return Workload(
        name="char-gpt",
        make_model=lambda: CharGPT(config),
        train_data=(windows[:cut],),
        val_data=(windows[cut : cut + VAL_WINDOWS],),
        test_data=(windows[cut + VAL_WINDOWS : cut + VAL_WINDOWS + TEST_WINDOWS],),
        loss_fn=next_char_loss,
        metric_fn=next_char_accuracy,
        metric_name="next-char accuracy",
        default_config={"optimizer": "adamw", "lr": 1e-3, "batch_size": 32, "steps": 300},
        exercises="language modelling, attention, a transformer's LR sensitivity",
    )
