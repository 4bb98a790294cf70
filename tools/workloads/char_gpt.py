"""A small nanoGPT-style character model and its data: the text of Python's own ``pydoc_data.topics``.

The model follows karpathy/nanoGPT model.py (pre-LayerNorm blocks, causal self-attention, GELU MLP,
weight-tied head), scaled down so it trains in minutes on two CPU cores.

Examples:
    >>> text = pydoc_text()
    >>> tokens, vocab = encode_text(text)
    >>> windows = char_windows(tokens, block_size=64)       # (N, 65)
    >>> model = CharGPT(CharGPTConfig(vocab_size=len(vocab)))
    >>> model(windows[:2, :-1]).shape[-1] == len(vocab)      # logits (B, T, V)
    True
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class CharGPTConfig:
    vocab_size: int = 128  # number of distinct characters; set it to len(vocab) from encode_text
    block_size: int = 64  # context length T in characters
    n_layer: int = 2  # transformer blocks
    n_head: int = 4  # attention heads; must divide n_embd
    n_embd: int = 64  # width C of the residual stream
    dropout: float = 0.0  # dropout on attention weights and residual branches

    def __post_init__(self) -> None:
        for name in ("vocab_size", "block_size", "n_layer", "n_head", "n_embd"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int but got {name}={value!r}")
        if self.n_embd % self.n_head:
            raise ValueError(f"n_head must divide n_embd but got n_embd={self.n_embd}, n_head={self.n_head}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1) but got dropout={self.dropout!r}")


class CausalSelfAttention(nn.Module):
    def __init__(self, config: CharGPTConfig) -> None:
        super().__init__()
        self.n_head = config.n_head
        self.qkv = nn.Linear(config.n_embd, 3 * config.n_embd)
        self.proj = nn.Linear(config.n_embd, config.n_embd)
        self.dropout = config.dropout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = self.qkv(x).split(C, dim=2)  # each (B, T, C)
        D = C // self.n_head
        q, k, v = (t.view(B, T, self.n_head, D).transpose(1, 2) for t in (q, k, v))  # (B, H, T, D)
        y = F.scaled_dot_product_attention(
            q, k, v, is_causal=True, dropout_p=self.dropout if self.training else 0.0
        )  # (B, H, T, D)
        return self.proj(y.transpose(1, 2).reshape(B, T, C))  # (B, T, C)


class Block(nn.Module):
    def __init__(self, config: CharGPTConfig) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(config.n_embd)
        self.attn = CausalSelfAttention(config)
        self.ln2 = nn.LayerNorm(config.n_embd)
        self.mlp = nn.Sequential(
            nn.Linear(config.n_embd, 4 * config.n_embd),
            nn.GELU(),
            nn.Linear(4 * config.n_embd, config.n_embd),
            nn.Dropout(config.dropout),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class CharGPT(nn.Module):
    """Decoder-only transformer over characters: tokens (B, T) -> logits (B, T, V)."""

    def __init__(self, config: CharGPTConfig) -> None:
        super().__init__()
        self.config = config
        self.tok_emb = nn.Embedding(config.vocab_size, config.n_embd)
        self.pos_emb = nn.Embedding(config.block_size, config.n_embd)
        self.drop = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layer))
        self.ln_f = nn.LayerNorm(config.n_embd)
        self.head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        self.head.weight = self.tok_emb.weight  # weight tying (nanoGPT)
        self.apply(self._init_weights)
        for name, p in self.named_parameters():  # GPT-2 scaled init of residual projections
            if name.endswith("proj.weight") or name.endswith("mlp.2.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layer))

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        B, T = idx.shape
        if T > self.config.block_size:
            raise ValueError(f"sequence length must be <= block_size={self.config.block_size} but got {T=}")
        pos = torch.arange(T, device=idx.device)  # (T,)
        x = self.drop(self.tok_emb(idx) + self.pos_emb(pos))  # (B, T, C)
        for block in self.blocks:
            x = block(x)
        return self.head(self.ln_f(x))  # (B, T, V)


def pydoc_text() -> str:
    """The values of ``pydoc_data.topics.topics`` concatenated in sorted key order (~465k characters)."""
    from pydoc_data.topics import topics

    return "".join(topics[key] for key in sorted(topics))


def encode_text(text: str) -> tuple[torch.Tensor, list[str]]:
    """Characters -> (token ids, a LongTensor (N,); vocabulary, the sorted distinct characters)."""
    if not text:
        raise ValueError(f"text must be non-empty but got {text=}")
    vocab = sorted(set(text))
    index = {ch: i for i, ch in enumerate(vocab)}
    return torch.tensor([index[ch] for ch in text], dtype=torch.long), vocab


def char_windows(tokens: torch.Tensor, block_size: int) -> torch.Tensor:
    """Non-overlapping windows (N, block_size + 1) of ``tokens``: x = w[:, :-1], y = w[:, 1:].

    Consecutive windows share no characters; the tail that does not fill a window is dropped.
    """
    if block_size < 1:
        raise ValueError(f"block_size must be >= 1 but got {block_size=}")
    if tokens.dim() != 1:
        raise ValueError(f"tokens must be 1-D but got shape {tuple(tokens.shape)}")
    width = block_size + 1
    n = tokens.numel() // width
    if n == 0:
        raise ValueError(f"need at least {width} tokens for {block_size=} but got {tokens.numel()}")
    return tokens[: n * width].view(n, width).clone()
