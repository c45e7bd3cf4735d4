"""A user's own tiny transformers model for the RL tests: a 2-layer Qwen2 (hidden 32), a byte-level BPE tokenizer
trained with ``tokenizers`` on a few sentences, wrapped in ``PreTrainedTokenizerFast`` with a ChatML-style chat
template, saved with ``save_pretrained`` into a directory (no network)."""

from __future__ import annotations

from pathlib import Path

CHAT_TEMPLATE = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
                 "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
SENTENCES = ["What is 4 plus 5? The answer is 9.", "What is 2 plus 3? 5", "Capital of France? Paris.",
             "user assistant system", "0 1 2 3 4 5 6 7 8 9 plus minus is"]


def tiny_tokenizer(chat_template: bool = True, vocab_size: int = 300):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(SENTENCES * 4, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                   chat_template=CHAT_TEMPLATE if chat_template else None)


def tiny_qwen(vocab_size: int, seed: int = 0, eos: int = 2, pad: int = 0):
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(seed)
    cfg = Qwen2Config(vocab_size=vocab_size, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512, eos_token_id=eos,
                      pad_token_id=pad, tie_word_embeddings=True)
    return Qwen2ForCausalLM(cfg)


def save_model_dir(path: Path, *, chat_template: bool = True, tokenizer: bool = True, model_vocab: int | None = None,
                   seed: int = 0) -> Path:
    """A model directory: config.json + model.safetensors (+ tokenizer files with the chat template)."""
    from lumos.models.transformers_lm import quiet_transformers

    tok = tiny_tokenizer(chat_template)
    model = tiny_qwen(model_vocab or len(tok), seed=seed, eos=tok.eos_token_id, pad=tok.pad_token_id)
    with quiet_transformers():
        model.save_pretrained(path)
    if tokenizer:
        tok.save_pretrained(path)
    return Path(path)
