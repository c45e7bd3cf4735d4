"""Tokenizers: a built-in byte-level tokenizer for built-in tasks, and ``tokenizer.json`` for user checkpoints.

``ByteTokenizer`` maps each UTF-8 byte to its value (ids 0..255) and adds three special tokens:
``pad`` = 256, ``bos`` = 257, ``eos`` = 258 (``vocab_size`` = 259).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from lumos.core.errors import LumosError

__all__ = ["ByteTokenizer", "HFTokenizer", "load_tokenizer"]


class ByteTokenizer:
    """Byte-level tokenizer (UTF-8 bytes + pad/bos/eos). Lossless for any text."""

    pad_token_id = 256
    bos_token_id = 257
    eos_token_id = 258
    vocab_size = 259

    def encode(self, text: str, add_bos: bool = False, add_eos: bool = False) -> list[int]:
        ids = list(text.encode("utf-8"))
        if add_bos:
            ids.insert(0, self.bos_token_id)
        if add_eos:
            ids.append(self.eos_token_id)
        return ids

    def decode(self, ids: Sequence[int], skip_special_tokens: bool = True) -> str:
        out = bytearray()
        for i in ids:
            i = int(i)
            if i < 256:
                out.append(i)
            elif not skip_special_tokens:
                out.extend({256: b"<pad>", 257: b"<bos>", 258: b"<eos>"}.get(i, b"<unk>"))
        return out.decode("utf-8", errors="replace")

    def __len__(self) -> int:
        return self.vocab_size


class HFTokenizer:
    """A ``tokenizer.json`` loaded with the ``tokenizers`` library, with the same small interface."""

    def __init__(self, path: str | os.PathLike[str], pad_token_id: int | None = None, bos_token_id: int | None = None,
                 eos_token_id: int | None = None) -> None:
        p = Path(path)
        if p.is_dir():
            p = p / "tokenizer.json"
        if not p.is_file():
            raise LumosError(f"Tokenizer file not found: {p}. Put tokenizer.json in the model directory.")
        try:
            from tokenizers import Tokenizer
        except ImportError:  # pragma: no cover
            raise LumosError("Reading tokenizer.json needs the 'tokenizers' package: pip install 'lumos[hf]'.") from None
        try:
            self._tok = Tokenizer.from_file(str(p))
        except Exception as exc:  # noqa: BLE001
            raise LumosError(f"{p} is not a valid tokenizer.json ({str(exc)[:120]}).") from None
        self.vocab_size = self._tok.get_vocab_size()
        self.pad_token_id = pad_token_id
        self.bos_token_id = bos_token_id
        self.eos_token_id = eos_token_id

    def encode(self, text: str, add_bos: bool = False, add_eos: bool = False) -> list[int]:
        ids = self._tok.encode(text, add_special_tokens=False).ids
        if add_bos and self.bos_token_id is not None:
            ids.insert(0, self.bos_token_id)
        if add_eos and self.eos_token_id is not None:
            ids.append(self.eos_token_id)
        return ids

    def decode(self, ids: Sequence[int], skip_special_tokens: bool = True) -> str:
        return self._tok.decode([int(i) for i in ids], skip_special_tokens=skip_special_tokens)

    def __len__(self) -> int:
        return self.vocab_size


def load_tokenizer(model_dir: str | os.PathLike[str] | None) -> ByteTokenizer | HFTokenizer:
    """``tokenizer.json`` from ``model_dir`` when present, else the built-in byte tokenizer."""
    if model_dir is not None and (Path(model_dir) / "tokenizer.json").is_file():
        return HFTokenizer(model_dir)
    return ByteTokenizer()
