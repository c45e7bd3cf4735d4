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
