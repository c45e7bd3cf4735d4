import math

import pytest
import torch
from torch import nn

from lumos.core.errors import LumosError
from lumos.models import ByteTokenizer, MiniMaxConfig
from lumos.models.generation import default_pad_id, encode_prompts, filter_logits, generate, left_pad
from lumos.testing import assert_close
from models._factories import tiny_lumos

V = 259


class ScriptedLM(nn.Module):
    """Returns scripted next-token distributions: call c gives row b the log-probs ``script(c, b)``."""

    def __init__(self, script):
        super().__init__()
        self.config = MiniMaxConfig()
        self.script = script
        self.calls = 0

    def new_cache(self, batch_size, capacity=0):
        return {"batch": batch_size}

    def forward(self, input_ids, attention_mask=None, cache=None):
        b, n = input_ids.shape
        rows = [self.script(self.calls, i) for i in range(b)]
        self.calls += 1
        return torch.stack(rows)[:, None].expand(b, n, V)


def peaked(token, p):
    """Log-probs with mass p on ``token``, the rest spread evenly."""
    logp = torch.full((V,), math.log((1 - p) / (V - 1)))
    logp[token] = math.log(p)
    return logp


def test_prefill_then_decode_equals_full_forward_at_every_position():
    model = tiny_lumos([0, 1, 0, 1])  # block_size 4: prefills and decodes cross block boundaries
    ids = torch.randint(0, 256, (2, 13))
    mask = torch.ones(2, 13, dtype=torch.long)
    mask[0, :3] = 0
    with torch.no_grad():
        full = model(ids, attention_mask=mask)
        for prefill in (1, 4, 5, 8):
            if prefill <= 3:
                continue  # row 0 must have a real token in the prefill
            cache = model.new_cache(2, capacity=4)
            steps = [model(ids[:, :prefill], attention_mask=mask[:, :prefill], cache=cache)]
            for t in range(prefill, 13):
                steps.append(model(ids[:, t:t + 1], cache=cache))
            got = torch.cat(steps, 1)
            assert_close(f"prefill {prefill}", got[0, 3:], full[0, 3:], atol=2e-5, rtol=2e-5)
            assert_close(f"prefill {prefill} row 1", got[1], full[1], atol=2e-5, rtol=2e-5)
        assert cache.states[0].shape == (2, 4, 8, 8) and cache.states[0].dtype == torch.float32
        assert cache.states[1] is None and cache.kv[1].length == 13


def test_generate_logprobs_match_full_forward_and_greedy():
    model = tiny_lumos([0, 1, 0, 1])
    ids = torch.randint(0, 256, (2, 6))
    out = generate(model, ids, max_new_tokens=10, eos_token_id=-1, repetition_truncation=None, temperature=0.7)
    assert out.sequences.shape == (2, 16) and out.tokens.shape == (2, 10) and out.finish_reasons == ["length"] * 2
    with torch.no_grad():
        logits = model(out.sequences)[:, 5:-1].float() / 0.7
    lp = torch.log_softmax(logits, -1).gather(2, out.tokens[..., None])[..., 0]
    assert_close("logprobs", out.logprobs, lp, atol=2e-5, rtol=2e-5)
    assert torch.equal(logits.argmax(-1), out.tokens) and out.logprobs.dtype == torch.float32


def test_left_padded_batch_equals_each_sequence_alone():
    model = tiny_lumos([1, 0, 0, 1])
    a, b = torch.randint(0, 256, (1, 3)), torch.randint(0, 256, (1, 9))
    ids = torch.full((2, 9), 256)
    ids[0, 6:], ids[1] = a, b
    mask = (ids != 256).long()
    kw = dict(max_new_tokens=7, eos_token_id=-1, repetition_truncation=None)
    batch = generate(model, ids, attention_mask=mask, **kw)
    for row, alone in ((0, generate(model, a, **kw)), (1, generate(model, b, **kw))):
        assert torch.equal(batch.tokens[row], alone.tokens[0])
        assert_close(f"row {row} logprobs", batch.logprobs[row], alone.logprobs[0], atol=2e-5, rtol=2e-5)


def test_repetition_truncation_fires_exactly_after_n_confident_tokens():
    hi, lo = 0.995, 0.5
    probs = [hi, hi, lo, hi, hi, hi, 0.985, hi, hi, hi, hi, hi]  # 0.985 < 0.99 breaks the run
    model = ScriptedLM(lambda c, b: peaked(7, probs[c]))
    out = generate(model, torch.tensor([[1, 2]]), max_new_tokens=12, repetition_truncation=4,
                   repetition_threshold=0.99)
    # run lengths: 1 2 0 1 2 3 0 1 2 3 4 -> fires at step 10 (the 4th consecutive confident token)
    assert out.finish_reasons == ["repetition"] and out.tokens.shape == (1, 11) and out.mask.all()
    for n in (6, None):  # the longest run is 5
        model.calls = 0
        again = generate(model, torch.tensor([[1, 2]]), max_new_tokens=12, repetition_truncation=n)
        assert again.finish_reasons == ["length"] and int(again.mask.sum()) == 12


def test_eos_stop_strings_callback_and_padding_after_finish():
    tok = ByteTokenizer()
    text = b"xyabcz"

    def script(c, b):
        if b == 0:
            return peaked(258 if c == 2 else 65, 0.9)  # row 0: A A <eos>
        return peaked(text[c] if c < len(text) else 66, 0.9)  # row 1: x y a b c -> stop on "bc"

    seen = []
    out = generate(ScriptedLM(script), torch.tensor([[1], [2]]), max_new_tokens=8, stop_strings=["bc"],
                   tokenizer=tok, callback=lambda step, toks: seen.append((step, toks.tolist())))
    assert out.finish_reasons == ["eos", "stop"]
    assert out.tokens[0, :3].tolist() == [65, 65, 258] and out.mask[0].tolist() == [True] * 3 + [False] * 2
    assert tok.decode(out.tokens[1][out.mask[1]].tolist()) == "xyabc"
    assert [s for s, _ in seen] == list(range(5))  # stops once every row finished
    assert torch.equal(torch.tensor([t for _, t in seen]).T, out.tokens)
    assert out.sequences[0, -2:].tolist() == [256, 256]


def test_sampling_is_seeded_and_follows_the_tempered_distribution():
    logits = torch.tensor([2.0, 1.0, 0.0, -1.0] + [-30.0] * (V - 4))
    model = ScriptedLM(lambda c, b: logits)
    ids = torch.zeros(4000, 1, dtype=torch.long)
    out = generate(model, ids, max_new_tokens=1, do_sample=True, temperature=2.0, seed=3)
    freq = torch.bincount(out.tokens[:, 0], minlength=V)[:4].float() / 4000
    expected = torch.softmax(logits / 2.0, 0)[:4]
    assert_close("frequencies", freq, expected, atol=0.03, rtol=0)
    assert_close("logprobs", out.logprobs[:, 0], torch.log_softmax(logits / 2, 0)[out.tokens[:, 0]], atol=1e-5,
                 rtol=1e-5)
    again = generate(model, ids[:50], max_new_tokens=1, do_sample=True, temperature=2.0,
                     generator=torch.Generator().manual_seed(3))
    assert torch.equal(again.tokens, out.tokens[:50])
    top1 = generate(model, ids[:50], max_new_tokens=1, do_sample=True, top_k=1, seed=1)
    nucleus = generate(model, ids[:50], max_new_tokens=1, do_sample=True, top_p=0.01, seed=2)
    assert (top1.tokens == 0).all() and (nucleus.tokens == 0).all()


def test_filter_logits_matches_sorted_oracle():
    torch.manual_seed(5)
    logits = torch.randn(6, 11)
    for k, p in ((3, None), (None, 0.6), (5, 0.8), (11, 1.0)):
        got = filter_logits(logits, k, p)
        for row in range(6):
            order = torch.argsort(logits[row], descending=True).tolist()
            keep = order[: k or 11]
            if p is not None:
                probs = torch.softmax(logits[row, keep], 0).tolist()  # renormalised after top-k
                mass, nucleus = 0.0, []
                for idx, pr in zip(keep, probs):
                    nucleus.append(idx)
                    mass += pr
                    if mass >= p:
                        break
                keep = nucleus
            assert sorted(torch.isfinite(got[row]).nonzero().flatten().tolist()) == sorted(keep)


def test_bad_arguments():
    model = ScriptedLM(lambda c, b: peaked(1, 0.5))
    with pytest.raises(LumosError, match="LEFT padding"):
        generate(model, torch.tensor([[1, 2]]), attention_mask=torch.tensor([[1, 0]]))
    with pytest.raises(LumosError, match="temperature"):
        generate(model, torch.tensor([[1]]), temperature=0)
    with pytest.raises(LumosError, match="tokenizer"):
        generate(model, torch.tensor([[1]]), stop_strings=["x"])
    with pytest.raises(LumosError, match="max_new_tokens"):
        generate(model, torch.tensor([[1]]), max_new_tokens=0)
    with pytest.raises(LumosError, match="top_p"):
        generate(model, torch.tensor([[1]]), top_p=1.5)
    with pytest.raises(LumosError, match="'callback' parameter of generate must be None or a function"):
        generate(model, torch.tensor([[1]]), callback="print")
    with pytest.raises(LumosError, match="'stop_strings' parameter of generate must be None, a string or"):
        generate(model, torch.tensor([[1]]), stop_strings=[1, 2], tokenizer=ByteTokenizer())
    with pytest.raises(LumosError, match="do_sample=False decoding is already greedy") as exc:
        generate(model, torch.tensor([[1]]), do_sample=False, temperature=0)
    assert "Use do_sample=False" not in str(exc.value)                   # the old, misleading advice
    with pytest.raises(LumosError, match="Greedy decoding is do_sample=False"):
        generate(model, torch.tensor([[1]]), do_sample=True, temperature=0)


def test_lone_stop_string_is_one_string_not_its_characters():
    """stop_strings="bc" stops on "bc"; split into characters it would stop on the first "b" (or "c")."""
    text = b"xbyabcz"
    model = ScriptedLM(lambda c, b: peaked(text[c] if c < len(text) else 66, 0.9))
    tok = ByteTokenizer()
    lone = generate(model, torch.tensor([[2]]), max_new_tokens=8, stop_strings="bc", tokenizer=tok)
    model.calls = 0
    listed = generate(model, torch.tensor([[2]]), max_new_tokens=8, stop_strings=["bc"], tokenizer=tok)
    assert tok.decode(lone.tokens[0][lone.mask[0]].tolist()) == "xbyabc" and lone.finish_reasons == ["stop"]
    assert torch.equal(lone.tokens, listed.tokens)


def test_left_pad_and_encode_prompts():
    ids, mask = left_pad([[5, 6, 7], [9], []], pad_id=1)
    assert ids.tolist() == [[5, 6, 7], [1, 1, 9], [1, 1, 1]]
    assert mask.tolist() == [[1, 1, 1], [0, 0, 1], [0, 0, 0]]
    cfg = MiniMaxConfig(vocab_size=300, pad_token_id=None, eos_token_id=258)
    assert default_pad_id(cfg) == 258 and default_pad_id(cfg, eos_token_id=-1) == 0
    cfg.pad_token_id = 256
    assert default_pad_id(cfg) == 256
    ids, mask = encode_prompts(ByteTokenizer(), ["ab", "xyz"], cfg)
    assert ids.tolist() == [[256, 97, 98], [120, 121, 122]] and mask.tolist() == [[0, 1, 1], [1, 1, 1]]
    with pytest.raises(LumosError, match="prompt 2 is empty"):
        encode_prompts(ByteTokenizer(), ["ab", ""], cfg)
    small = MiniMaxConfig(vocab_size=150, bos_token_id=1, eos_token_id=2, pad_token_id=0)
    with pytest.raises(LumosError, match=r"vocab_size \(150\)"):
        encode_prompts(ByteTokenizer(), ["é"], small)  # UTF-8 bytes 195, 169
