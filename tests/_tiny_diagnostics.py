"""A tiny BERT pruned for 6 steps with PruningDiagnostics attached: real diagnostics with BERT's names."""

from __future__ import annotations

import torch
import transformers

import sevenprune as sp


def tiny_bert_diagnostics(method: str = "seven", seed: int = 0, **options: object):
    """``(pruner, diagnostics)`` after a 6-step window to 50 % on a 2-layer BERT (the pooler excluded)."""
    cfg = transformers.BertConfig(hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32,
                                  vocab_size=50)
    torch.manual_seed(seed)
    model = transformers.BertModel(cfg)
    pruner = sp.Pruner(model, method, 0.5, start_step=0, prune_steps=6, exclude="pooler", **options)
    diag = sp.PruningDiagnostics(pruner, snapshots=3)
    for _ in range(6):
        model(torch.randint(0, 50, (2, 5))).last_hidden_state.sum().backward()
        pruner.step()
        diag.step()
        model.zero_grad()
    return pruner, diag
