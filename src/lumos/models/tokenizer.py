"""Tokenizers: a built-in byte-level tokenizer for lumos's own models, and a model's own tokenizer for the rest.

:class:`TransformersTokenizer` wraps ``AutoTokenizer`` (special tokens, pad/eos/bos ids, chat template);
:func:`model_tokenizer` loads the tokenizer saved beside a model and checks it against the model's embedding.
Prompts (text or chat messages) become ids through :func:`encode_prompt`.

``ByteTokenizer`` maps each UTF-8 byte to its value (ids 0..255) and adds three special tokens:
``pad`` = 256, ``bos`` = 257, ``eos`` = 258 (``vocab_size`` = 259).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeGuard

from lumos.core.errors import LumosError, one_line

__all__ = ["ByteTokenizer", "HFTokenizer", "TransformersTokenizer", "load_tokenizer", "model_tokenizer", "resolve_tokenizer",
           "check_tokenizer_fits", "encode_prompt", "render_prompt", "has_tokenizer_files", "is_chat_messages"]


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
    """``tokenizer.json`` from ``model_dir`` when present, else the built-in byte tokenizer.

    For a model loaded from a directory prefer :func:`model_tokenizer`, which never falls back silently."""
    if model_dir is not None and (Path(model_dir) / "tokenizer.json").is_file():
        return HFTokenizer(model_dir)
    return ByteTokenizer()


# ------------------------------------------------------------------------------------------ prompts and models
def is_chat_messages(prompt: object) -> TypeGuard[list[dict[str, str]]]:
    """Whether ``prompt`` is chat messages: a non-empty list of dicts with text ``role`` and ``content``."""
    return isinstance(prompt, list) and bool(prompt) and all(
        isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str) for m in prompt)


def _message_list(prompt: object) -> list[dict[str, str]] | None:
    """``prompt`` as chat messages (a list of ``{"role", "content"}`` dicts), or None when it is text."""
    if isinstance(prompt, str):
        return None
    if is_chat_messages(prompt):
        return prompt
    raise LumosError(f"A prompt must be text or a non-empty list of chat messages {{'role': str, 'content': str}}; "
                     f"got {one_line(repr(prompt), 80)}.")


class TransformersTokenizer:
    """A transformers tokenizer (``AutoTokenizer``) behind lumos's small interface, with its chat template.

    ``encode``/``decode`` add no special tokens of their own (``add_bos``/``add_eos`` do it explicitly).
    Prompts go through :meth:`encode_prompt`:

    - chat messages (``[{"role": "user", "content": ...}]``) are rendered with the tokenizer's chat template
      (``add_generation_prompt=True``), as TRL does, then encoded without further special tokens;
    - text, when ``chat_template`` is on and the tokenizer has a template, becomes one user message (TRL feeds
      plain text raw: pass ``chat_template=False`` for that, e.g. for base models);
    - text with ``chat_template=False`` (or no template) is encoded as the tokenizer does by default
      (``tokenizer(text)``, which adds a BOS token where the tokenizer is configured to).

    ``system_prompt`` (with the chat template) is prepended as a system message unless the prompt has one.
    Conversational prompts without a chat template, or a system prompt without one, are one-line errors.

    Args:
        tokenizer: a ``transformers.PreTrainedTokenizerBase``.
        chat_template: render prompts with the tokenizer's chat template (default True).
        system_prompt: an optional system message.
    """

    def __init__(self, tokenizer: Any, *, chat_template: bool = True, system_prompt: str | None = None) -> None:
        self.tok = tokenizer
        self.vocab_size = len(tokenizer)
        self.eos_token_id = tokenizer.eos_token_id
        self.bos_token_id = tokenizer.bos_token_id
        self.pad_token_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        self.has_chat_template = bool(getattr(tokenizer, "chat_template", None))
        self.use_chat_template = bool(chat_template) and self.has_chat_template
        if self.eos_token_id is None:
            raise LumosError("The tokenizer has no eos_token; set one (tokenizer.eos_token = ...) and save it "
                             "with the model, so that generation knows where a response ends.")
        if system_prompt is not None and not self.use_chat_template:
            raise LumosError("--system-prompt needs a chat template, but " + (
                "--no-chat-template was given" if self.has_chat_template else "the tokenizer has none")
                + ". Drop --system-prompt, or write the instruction into the prompt text.")
        self.system_prompt = system_prompt

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike[str], **kw: Any) -> TransformersTokenizer:
        """``AutoTokenizer.from_pretrained(path)`` (local files only), wrapped."""
        try:
            from transformers import AutoTokenizer
        except ImportError:  # pragma: no cover
            raise LumosError("Loading a model's tokenizer needs transformers: pip install 'lumos[hf]'.") from None
        try:
            tok = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
        except Exception as exc:  # noqa: BLE001 - any failure means the tokenizer files are unusable
            tok = None
            if (Path(path) / "tokenizer.json").is_file():     # a model type transformers does not know (MiniMax-M1
                try:                                           # release configs): the fast tokenizer class itself
                    from transformers import PreTrainedTokenizerFast

                    tok = PreTrainedTokenizerFast.from_pretrained(str(path), local_files_only=True)
                except Exception:  # noqa: BLE001
                    tok = None
            if tok is None:
                raise LumosError(f"Cannot load the tokenizer of {path} ({one_line(exc, 160)}). Save it beside the "
                                 "model with tokenizer.save_pretrained(DIR).") from None
        return cls(tok, **kw)

    def encode(self, text: str, add_bos: bool = False, add_eos: bool = False) -> list[int]:
        ids = list(self.tok(text, add_special_tokens=False)["input_ids"])
        if add_bos and self.bos_token_id is not None:
            ids.insert(0, self.bos_token_id)
        if add_eos:
            ids.append(self.eos_token_id)
        return ids

    def decode(self, ids: Sequence[int], skip_special_tokens: bool = True) -> str:
        return self.tok.decode([int(i) for i in ids], skip_special_tokens=skip_special_tokens)

    def render_prompt(self, prompt: str | list[dict[str, str]]) -> str:
        """The prompt as the model sees it (chat template applied where it is used)."""
        messages = _message_list(prompt)
        if isinstance(prompt, str) and not self.use_chat_template:
            return prompt
        if not self.use_chat_template:
            raise LumosError("A prompt is a list of chat messages, but " + (
                "--no-chat-template was given" if self.has_chat_template else "the tokenizer has no chat template")
                + ". Give prompts as text, or use a tokenizer with a chat_template.")
        messages = [{"role": "user", "content": prompt}] if messages is None else messages
        if self.system_prompt is not None and messages[0]["role"] != "system":
            messages = [{"role": "system", "content": self.system_prompt}, *messages]
        try:
            return self.tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        except Exception as exc:  # noqa: BLE001 - the template is user code (Jinja)
            raise LumosError(f"The tokenizer's chat template failed on a prompt ({one_line(exc, 160)}). "
                             "Fix the template or the prompt's messages.") from None

    def encode_prompt(self, prompt: str | list[dict[str, str]]) -> list[int]:
        """Token ids of the prompt (see the class docstring)."""
        text = self.render_prompt(prompt)
        if self.use_chat_template:
            return self.encode(text)               # the template carries its own special tokens
        return list(self.tok(text)["input_ids"])   # the tokenizer's defaults (a BOS where it adds one)

    def __len__(self) -> int:
        return self.vocab_size


def render_prompt(tokenizer: Any, prompt: str | list[dict[str, str]]) -> str:
    """``tokenizer.render_prompt(prompt)``; tokenizers without one take text prompts only."""
    if hasattr(tokenizer, "render_prompt"):
        return tokenizer.render_prompt(prompt)
    if not isinstance(prompt, str):
        _message_list(prompt)   # a malformed prompt gets its own message
        raise LumosError("A prompt is a list of chat messages, but the tokenizer has no chat template. Give "
                         "prompts as text, or load the model's own tokenizer (with its chat_template).")
    return prompt


def encode_prompt(tokenizer: Any, prompt: str | list[dict[str, str]]) -> list[int]:
    """Prompt ids: ``tokenizer.encode_prompt(prompt)``, else BOS + ``tokenizer.encode(text)``."""
    if hasattr(tokenizer, "encode_prompt"):
        return tokenizer.encode_prompt(prompt)
    return tokenizer.encode(render_prompt(tokenizer, prompt), add_bos=True)


_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json")


def has_tokenizer_files(path: str | os.PathLike[str]) -> bool:
    """Whether a model directory holds a tokenizer (``tokenizer.json``, ``tokenizer_config.json``, ...)."""
    return any((Path(path) / name).is_file() for name in _TOKENIZER_FILES)


def embedding_rows(model: Any) -> int | None:
    """Rows of the model's input embedding (the largest token id + 1 it accepts), or None when unknown."""
    get = getattr(model, "get_input_embeddings", None)
    emb = get() if callable(get) else None
    if emb is None:
        inner = getattr(model, "model", None)
        emb = getattr(inner, "embed_tokens", None)
    weight = getattr(emb, "weight", None)
    if weight is not None and weight.ndim == 2:
        return int(weight.shape[0])
    vocab = getattr(getattr(model, "config", None), "vocab_size", None)
    return int(vocab) if isinstance(vocab, int) else None


def check_tokenizer_fits(tokenizer: Any, model: Any, where: str = "the model") -> None:
    """A tokenizer whose ids do not all fit the model's embedding is one clear error (the wrong tokenizer).

    Every id the tokenizer can produce (``len(tokenizer)``, added tokens included) and its eos/pad/bos ids must be
    below the embedding's row count; a larger embedding (vocabularies padded to a multiple of 64) is fine.
    """
    rows = embedding_rows(model)
    if rows is None:
        return
    # len() counts added tokens (transformers); a duck-typed tokenizer may only have vocab_size, or neither
    size = len(tokenizer) if hasattr(tokenizer, "__len__") else getattr(tokenizer, "vocab_size", None)
    size = size if isinstance(size, int) and not isinstance(size, bool) else 0   # unknown: check the special ids
    specials = {n: getattr(tokenizer, n, None) for n in ("eos_token_id", "pad_token_id", "bos_token_id")}
    bad = {n: v for n, v in specials.items() if v is not None and not 0 <= int(v) < rows}
    if size > rows or bad:
        what = (f"has {size} tokens" if size > rows else
                ", ".join(f"{n} {v}" for n, v in bad.items()) + " out of range")
        raise LumosError(f"The tokenizer of {where} {what} but the model's embedding has {rows} rows: the model and "
                         "its tokenizer disagree. Save the model's own tokenizer beside it (or resize the embedding "
                         "with model.resize_token_embeddings(len(tokenizer)) and save both).")


def model_tokenizer(path: str | os.PathLike[str], model: Any, *, chat_template: bool = True,
                    system_prompt: str | None = None) -> ByteTokenizer | TransformersTokenizer:
    """The tokenizer saved beside the model in ``path``, checked against ``model``'s embedding.

    A transformers directory must hold its tokenizer (``AutoTokenizer``). A lumos (MiniMax) checkpoint uses its
    tokenizer files when present; without any it must have lumos's byte vocabulary (``vocab_size`` 259, the only
    vocabulary lumos builds itself), which is read with :class:`ByteTokenizer`. Anything else is one clear error:
    no tokenizer is guessed.
    """
    path = Path(path)
    if has_tokenizer_files(path):
        tok: Any = TransformersTokenizer.from_pretrained(path, chat_template=chat_template,
                                                         system_prompt=system_prompt)
    else:
        lumos_model = any(c.__module__.startswith("lumos.") for c in type(model).__mro__)
        if not (lumos_model and getattr(getattr(model, "config", None), "vocab_size", None) == ByteTokenizer.vocab_size):
            raise LumosError(f"{path} holds no tokenizer (tokenizer.json / tokenizer_config.json). Save the model's "
                             "tokenizer beside it: tokenizer.save_pretrained(DIR).")
        if system_prompt is not None:
            raise LumosError("--system-prompt needs a chat template; lumos's byte tokenizer has none.")
        tok = ByteTokenizer()
    check_tokenizer_fits(tok, model, str(path))
    return tok


def resolve_tokenizer(tokenizer: Any, model: Any) -> Any:
    """The tokenizer a trainer uses for ``model``, checked with :func:`check_tokenizer_fits`.

    A transformers tokenizer is wrapped in :class:`TransformersTokenizer` (chat template on); ``None`` means
    :class:`ByteTokenizer` and is accepted only for a model with lumos's byte vocabulary (an embedding of
    259 rows, as lumos's built-in models have); any other model without its tokenizer is an error.
    """
    from torch import nn

    net = model if isinstance(model, nn.Module) else getattr(model, "model", model)   # a Policy holds .model
    if tokenizer is None:
        rows = embedding_rows(net)
        if rows != ByteTokenizer.vocab_size:
            raise LumosError(f"No tokenizer given for a model with a {rows}-token vocabulary; lumos's byte tokenizer "
                             f"fits only its own {ByteTokenizer.vocab_size}-token models. Pass the model's tokenizer "
                             "(tokenizer=AutoTokenizer.from_pretrained(DIR)).")
        return ByteTokenizer()
    try:
        from transformers import PreTrainedTokenizerBase
    except ImportError:  # pragma: no cover
        PreTrainedTokenizerBase = ()
    if isinstance(tokenizer, PreTrainedTokenizerBase):
        tokenizer = TransformersTokenizer(tokenizer)
    check_tokenizer_fits(tokenizer, net)
    return tokenizer
