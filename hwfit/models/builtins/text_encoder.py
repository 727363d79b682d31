"""Hugging Face text encoders as sentence-embedding models: token ids and mask in, pooled embedding out."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from hwfit.core import ModelSourceError
from hwfit.models.model import Model, hash_bytes_of_file
from hwfit.models.spec import BATCH, InputSpec, TensorSpec

DEFAULT_SEQUENCE_LENGTH = 128
SEQ = "S"


def _pooling_config(folder: Path) -> tuple[str, bool]:
    """Pooling mode and whether a Normalize module follows, from a sentence-transformers layout."""
    modules_file = folder / "modules.json"
    if not modules_file.exists():
        return "mean", False
    modules = json.loads(modules_file.read_text())
    normalize = any(m.get("type", "").endswith("Normalize") for m in modules)
    pooling = "mean"
    for module in modules:
        config = folder / module.get("path", "") / "config.json"
        if module.get("type", "").endswith("Pooling") and config.exists():
            settings = json.loads(config.read_text())
            if settings.get("pooling_mode_cls_token"):
                pooling = "cls"
    return pooling, normalize


def _weights_hash(folder: Path) -> str:
    for name in ("model.safetensors", "pytorch_model.bin"):
        if (folder / name).exists():
            return hash_bytes_of_file(folder / name)
    raise ModelSourceError(f"{folder} has no model.safetensors or pytorch_model.bin")


def _make_encoder(folder: Path, pooling: str, normalize: bool):
    import torch
    from transformers import AutoModel

    class SentenceEncoder(torch.nn.Module):
        """Transformer + pooling (+ L2 normalisation), as sentence-transformers computes embeddings."""

        def __init__(self, transformer):
            super().__init__()
            self.transformer = transformer

        def forward(self, input_ids, attention_mask):
            hidden = self.transformer(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
            if pooling == "cls":
                pooled = hidden[:, 0]
            else:
                mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            if normalize:
                pooled = torch.nn.functional.normalize(pooled, p=2.0, dim=-1)
            return pooled

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()  # hwfit shows its own progress
    try:
        transformer = AutoModel.from_pretrained(str(folder), local_files_only=True)
    except Exception as error:
        raise ModelSourceError(f"could not load a Hugging Face model from {folder}: {error}") from error
    return SentenceEncoder(transformer).eval()


SENTENCES_FILE = Path(__file__).parent / "data" / "sentences.txt"


def tokenized_sentences(folder: Path, count: int, sequence_length: int) -> dict[str, np.ndarray]:
    """`count` real English sentences (cycled) tokenized with the model's own tokenizer.json."""
    from tokenizers import Tokenizer

    tokenizer_file = folder / "tokenizer.json"
    if not tokenizer_file.exists():
        raise ModelSourceError(f"{folder} has no tokenizer.json to tokenize real sentences with")
    tokenizer = Tokenizer.from_file(str(tokenizer_file))
    tokenizer.enable_truncation(sequence_length)
    tokenizer.enable_padding(length=sequence_length)
    sentences = [line for line in SENTENCES_FILE.read_text().splitlines() if line.strip()]
    encoded = tokenizer.encode_batch([sentences[i % len(sentences)] for i in range(count)])
    return {
        "input_ids": np.array([e.ids for e in encoded], dtype=np.int64),
        "attention_mask": np.array([e.attention_mask for e in encoded], dtype=np.int64),
    }


def text_encoder_model(folder: Path, name: str, source: str, kind: str, description: str = "") -> Model:
    config = json.loads((folder / "config.json").read_text())
    vocab_size = int(config.get("vocab_size", 30522))
    pooling, normalize = _pooling_config(folder)
    inputs = InputSpec(
        (
            TensorSpec("input_ids", "int64", (BATCH, SEQ), fill="token_ids", low=1000, high=vocab_size),
            TensorSpec("attention_mask", "int64", (BATCH, SEQ), fill="mask"),
        ),
        default_sizes={SEQ: DEFAULT_SEQUENCE_LENGTH},
    )
    return Model(
        name=name,
        source=source,
        kind=kind,
        inputs=inputs,
        output_names=("sentence_embedding",),
        content_hash=_weights_hash(folder),
        task="embedding",
        description=description
        or f"{config.get('model_type', 'transformer')} encoder, {pooling} pooling"
        + (", L2-normalised" if normalize else ""),
        module_factory=lambda: _make_encoder(folder, pooling, normalize),
        real_inputs_factory=_real_inputs(folder),
    )


def _real_inputs(folder: Path):
    if not (folder / "tokenizer.json").exists():
        return None
    try:
        import tokenizers  # noqa: F401 - imported only to check that it is installed and imports
    except ImportError:
        return None
    return lambda count: tokenized_sentences(folder, count, DEFAULT_SEQUENCE_LENGTH)
