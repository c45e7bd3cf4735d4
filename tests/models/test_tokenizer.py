import pytest

from lumos.core.errors import LumosError
from lumos.models.tokenizer import ByteTokenizer, HFTokenizer, load_tokenizer


def test_byte_tokenizer_round_trip_and_specials():
    tok = ByteTokenizer()
    text = "héllo, 世界 ✓"
    ids = tok.encode(text, add_bos=True, add_eos=True)
    assert ids[0] == 257 and ids[-1] == 258 and max(ids[1:-1]) < 256
    assert tok.decode(ids) == text
    assert tok.decode(ids, skip_special_tokens=False) == "<bos>" + text + "<eos>"
    assert len(tok) == 259


def _write_tokenizer_json(path):
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    t = Tokenizer(models.BPE(unk_token="[UNK]"))
    t.pre_tokenizer = pre_tokenizers.Whitespace()
    t.train_from_iterator(["the cat sat on the mat", "the dog sat"] * 20,
                          trainers.BpeTrainer(vocab_size=60, special_tokens=["[UNK]", "[EOS]"]))
    t.save(str(path / "tokenizer.json"))


def test_tokenizer_json_is_used_when_present(tmp_path):
    assert isinstance(load_tokenizer(tmp_path), ByteTokenizer)
    _write_tokenizer_json(tmp_path)
    tok = load_tokenizer(tmp_path)
    assert isinstance(tok, HFTokenizer) and tok.vocab_size <= 60
    ids = tok.encode("the cat sat")
    assert tok.decode(ids) == "the cat sat"
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "tokenizer.json").write_text("{oops")
    with pytest.raises(LumosError, match="not a valid tokenizer.json"):
        HFTokenizer(tmp_path / "bad")
    with pytest.raises(LumosError, match="not found"):
        HFTokenizer(tmp_path / "nothing")


# ------------------------------------------------------------------ a user's own transformers tokenizer
def test_transformers_tokenizer_renders_chat_and_text_prompts():
    from lumos.models.tokenizer import TransformersTokenizer, encode_prompt, render_prompt
    from models._own_model import tiny_tokenizer

    raw = tiny_tokenizer()
    tok = TransformersTokenizer(raw)
    assert (tok.eos_token_id, tok.pad_token_id, len(tok)) == (raw.eos_token_id, raw.pad_token_id, len(raw))
    msgs = [{"role": "user", "content": "What is 4 plus 5?"}]
    # chat messages: exactly what transformers' apply_chat_template gives (TRL's rendering)
    want = raw.apply_chat_template(msgs, add_generation_prompt=True, tokenize=True, return_dict=True)["input_ids"]
    assert encode_prompt(tok, msgs) == list(want)
    # text becomes one user message; a system prompt goes first
    assert encode_prompt(tok, "What is 4 plus 5?") == list(want)
    sys_tok = TransformersTokenizer(raw, system_prompt="Be brief.")
    assert render_prompt(sys_tok, "hi").startswith("<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nhi")
    # no chat template: text as the tokenizer encodes it by default (TRL's text prompts)
    plain = TransformersTokenizer(raw, chat_template=False)
    assert encode_prompt(plain, "What is 4 plus 5?") == raw("What is 4 plus 5?")["input_ids"]
    assert tok.decode(tok.encode("What is 4 plus 5?")) == "What is 4 plus 5?"
    with pytest.raises(LumosError, match="chat messages, but --no-chat-template was given"):
        encode_prompt(plain, msgs)
    with pytest.raises(LumosError, match="the tokenizer has no chat template"):
        encode_prompt(TransformersTokenizer(tiny_tokenizer(chat_template=False)), msgs)
    with pytest.raises(LumosError, match="--system-prompt needs a chat template"):
        TransformersTokenizer(tiny_tokenizer(chat_template=False), system_prompt="x")
    with pytest.raises(LumosError, match="chat messages, but the tokenizer has no chat template"):
        encode_prompt(ByteTokenizer(), msgs)
    assert encode_prompt(ByteTokenizer(), "ab") == [257, 97, 98]


def test_model_tokenizer_refuses_to_guess(tmp_path):
    from lumos.models.tokenizer import TransformersTokenizer, check_tokenizer_fits, model_tokenizer
    from models._own_model import save_model_dir, tiny_qwen, tiny_tokenizer

    good = save_model_dir(tmp_path / "good")
    model = tiny_qwen(len(tiny_tokenizer()))
    assert isinstance(model_tokenizer(good, model), TransformersTokenizer)
    with pytest.raises(LumosError, match="holds no tokenizer"):
        model_tokenizer(save_model_dir(tmp_path / "bare", tokenizer=False), model)
    small = tiny_qwen(27)
    with pytest.raises(LumosError, match="has 300 tokens but the model's embedding has 27 rows"):
        model_tokenizer(good, small)
    check_tokenizer_fits(TransformersTokenizer(tiny_tokenizer()), tiny_qwen(320))   # a padded embedding is fine
    from lumos.models import tiny_hybrid

    assert isinstance(model_tokenizer(tmp_path / "bare", tiny_hybrid(16, 2)), ByteTokenizer)  # lumos's byte models


def test_resolve_tokenizer_needs_one_for_foreign_vocabularies():
    from lumos.models.tokenizer import TransformersTokenizer, resolve_tokenizer
    from models._own_model import tiny_qwen, tiny_tokenizer

    with pytest.raises(LumosError, match="No tokenizer given for a model with a 300-token vocabulary"):
        resolve_tokenizer(None, tiny_qwen(300))
    assert isinstance(resolve_tokenizer(tiny_tokenizer(), tiny_qwen(300)), TransformersTokenizer)
    assert isinstance(resolve_tokenizer(None, tiny_qwen(259)), ByteTokenizer)


def test_a_duck_typed_tokenizer_is_checked_without_len():
    """RLTrainer takes anything with encode/decode: without __len__ the vocabulary size comes from vocab_size, and
    without either only the special ids are checked (no TypeError)."""
    from lumos.core.errors import LumosError
    from lumos.models import tiny_hybrid
    from lumos.models.tokenizer import check_tokenizer_fits

    class Duck:
        eos_token_id, pad_token_id = 1, 0

        def encode(self, text):
            return [2]

        def decode(self, ids):
            return ""

    model = tiny_hybrid(48, 2)
    check_tokenizer_fits(Duck(), model)
    big = Duck()
    big.vocab_size = 10_000
    with pytest.raises(LumosError, match="has 10000 tokens"):
        check_tokenizer_fits(big, model)
    bad = Duck()
    bad.eos_token_id = 10_000
    with pytest.raises(LumosError, match="eos_token_id 10000 out of range"):
        check_tokenizer_fits(bad, model)
