"""Shared fixtures: tiny models that make every test fast and deterministic."""

from __future__ import annotations

import os

import pytest
import torch
from torch import nn


def tiny_mlp(seed: int = 0) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 4), nn.ReLU(), nn.Linear(4, 3))


def tiny_bert(seed: int = 0, num_labels: int = 2):  # type: ignore[no-untyped-def]
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(seed)
    config = transformers.BertConfig(
        vocab_size=64, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=32, max_position_embeddings=32, num_labels=num_labels,
    )
    return transformers.BertForSequenceClassification(config)


@pytest.fixture
def mlp() -> nn.Sequential:
    return tiny_mlp()


@pytest.fixture(autouse=True, scope="session")
def _one_thread():  # type: ignore[no-untyped-def]
    """Tiny models on a shared 2-core machine: extra threads only contend (8-25x slower measured).

    ``SEVENPRUNE_TEST_THREADS=N`` runs the suite with N threads instead: CI runs it a second time that
    way, so that an expectation that holds only for one thread count (a reduction order) shows up."""
    threads = torch.get_num_threads()
    torch.set_num_threads(int(os.environ.get("SEVENPRUNE_TEST_THREADS", "1")))
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def _deterministic() -> None:
    torch.manual_seed(1234)
