"""The character GPT workload: config validation, text, encoding, windows, model shapes."""

from __future__ import annotations

import pytest
import torch

from trainopt.tools.workloads.char_gpt import CharGPT, CharGPTConfig, char_windows, encode_text, pydoc_text


def test_pydoc_text_is_the_sorted_topics():
    from pydoc_data.topics import topics

    text = pydoc_text()
    # The first topic in sorted key order opens the text, and nothing is lost.
    assert text.startswith(topics[sorted(topics)[0]])
    assert len(text) == sum(len(v) for v in topics.values())


def test_encode_text_round_trips():
    tokens, vocab = encode_text("hello world")
    assert vocab == sorted(set("hello world"))
    assert tokens.dtype == torch.long
    assert "".join(vocab[i] for i in tokens.tolist()) == "hello world"


def test_char_windows_are_non_overlapping():
    tokens = torch.arange(23)
    windows = char_windows(tokens, block_size=4)  # width 5: 4 full windows, tail of 3 dropped
    assert windows.shape == (4, 5)
    assert windows[1].tolist() == [5, 6, 7, 8, 9]
    x, y = windows[:, :-1], windows[:, 1:]
    assert torch.equal(x[:, 1:], y[:, :-1])  # y is x shifted by one character


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"n_head": 3}, "n_head=3"), ({"block_size": 0}, "block_size=0"), ({"dropout": 1.0}, "dropout=1.0")],
)
def test_config_rejects_bad_values(kwargs, message):
    with pytest.raises(ValueError, match=message):
        CharGPTConfig(**kwargs)


def test_char_windows_rejects_short_input():
    with pytest.raises(ValueError, match="block_size=8"):
        char_windows(torch.arange(5), block_size=8)


def test_model_returns_logits_and_learns():
    config = CharGPTConfig(vocab_size=11, block_size=8, n_layer=1, n_head=2, n_embd=16)
    model = CharGPT(config)
    x = torch.randint(0, 11, (4, 8))
    assert model(x).shape == (4, 8, 11)  # (B, T, V)
    with pytest.raises(ValueError, match="T=9"):
        model(torch.randint(0, 11, (1, 9)))
    # A few steps on one repeated batch lower the loss: the model is trainable end to end.
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    y = torch.roll(x, -1, dims=1)
    losses = []
    for _ in range(20):
        loss = torch.nn.functional.cross_entropy(model(x).reshape(-1, 11), y.reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0]
