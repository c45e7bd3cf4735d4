"""The one-token decode step (``HybridLM.decode_step``, compiled by ``lumos.models.fast_decode``) against full forwards.

The oracle of every decode step is a full forward (no cache, the layers' sequence paths) over the prompt plus the
tokens decoded so far. The step run eagerly ("function" backend and ``model(tok, cache=cache)``, which both run
``HybridLM.decode_step``) is checked on many shapes; the compiled step on one tiny model (compiling costs seconds).
"""

import pytest
import torch

from lumos.models import fast_decode
from lumos.models.fast_decode import FastDecoder, fast_path_applies
from lumos.models.generation import generate
from lumos.testing import assert_close
from models._factories import tiny_lumos


def _prefill(model, ids, mask, extra):
    cache = model.new_cache(ids.shape[0], capacity=ids.shape[1] + extra)
    logits = model(ids, attention_mask=mask, cache=cache)[:, -1]
    return cache, logits


def _compare(model, ids, mask=None, steps=5, backend="function", atol=2e-5):
    """Decode ``steps`` greedy tokens through a FastDecoder and through ``model(tok, cache=cache)``; at each step
    both logits equal the last logits of a full forward over everything so far, and at the end the cache (states,
    key mask, positions) equals a prefill of the whole sequence."""
    mask = torch.ones_like(ids) if mask is None else mask
    with torch.no_grad():
        eager_cache, eager = _prefill(model, ids, mask, steps + 1)
        fast_cache, fast = _prefill(model, ids, mask, steps + 1)
        dec = FastDecoder(model, fast_cache, backend=backend)
        for _ in range(steps):
            tok = fast.argmax(-1)
            ids, mask = torch.cat((ids, tok[:, None]), 1), torch.cat((mask, torch.ones_like(mask[:, :1])), 1)
            full = model(ids, attention_mask=mask)[:, -1]
            fast = dec.step(tok)
            eager = model(tok[:, None], cache=eager_cache)[:, -1]
            assert_close("logits", fast.float(), full.float(), atol=atol, rtol=atol)
            assert_close("eager logits", eager.float(), full.float(), atol=atol, rtol=atol)
        ref_cache, _ = _prefill(model, ids, mask, 1)
        for a, b, c in zip(ref_cache.states, fast_cache.states, eager_cache.states):
            if a is not None:
                assert_close("state", b, a, atol=atol, rtol=atol)
                assert_close("eager state", c, a, atol=atol, rtol=atol)
        for cache in (fast_cache, eager_cache):
            assert cache.length == ref_cache.length
            assert torch.equal(cache.key_mask, ref_cache.key_mask)
            assert torch.equal(cache.next_position, ref_cache.next_position)


@pytest.mark.parametrize("layers", [[0, 1, 0, 1], [1, 0], [0, 0, 0], [1], [1, 1, 0]])
def test_step_matches_model_layer_orders(layers):
    model = tiny_lumos(layers, seed=len(layers))
    _compare(model, torch.randint(3, 259, (1, 7), generator=torch.Generator().manual_seed(0)))


@pytest.mark.parametrize("overrides", [
    dict(num_key_value_heads=1), dict(num_key_value_heads=4), dict(rotary_dim=8), dict(rotary_dim=2),
    dict(postnorm=False), dict(head_dim=6, rotary_dim=4), dict(num_local_experts=6, num_experts_per_tok=3),
])
def test_step_matches_model_shapes(overrides):
    model = tiny_lumos([0, 1, 0], seed=3, **overrides)
    _compare(model, torch.randint(3, 259, (1, 9), generator=torch.Generator().manual_seed(1)))


def test_step_left_padded_batch_and_fp32_head():
    model = tiny_lumos([0, 1], seed=4)
    model.lm_head_fp32 = True
    ids = torch.randint(3, 259, (2, 6), generator=torch.Generator().manual_seed(2))
    mask = torch.tensor([[0, 0, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1]])
    assert fast_path_applies(model, 2)
    _compare(model, ids, mask, steps=6)


def test_step_bfloat16_close_to_model():
    model = tiny_lumos([0, 1, 0], seed=5).to(torch.bfloat16)
    _compare(model, torch.randint(3, 259, (1, 8), generator=torch.Generator().manual_seed(3)), atol=0.1)


def _wide_experts():
    """4 experts of top-2 with 6.3 MB each in float32: B·top_k reads beyond 4 exceed FAST_MOE_BYTES."""
    return tiny_lumos([0, 1], intermediate_size=8192)


def test_fast_path_applies_rules():
    wide = _wide_experts()
    assert fast_path_applies(wide, 1) and fast_path_applies(wide, 2)
    assert not fast_path_applies(wide, 3)
    small = tiny_lumos([0, 1])  # cache-resident experts: re-reading them per row is cheap
    assert fast_path_applies(small, 64)
    assert not fast_path_applies(small.double(), 1)


def test_capacity_exhausted_is_an_error():
    model = tiny_lumos([0, 1])
    with torch.no_grad():
        cache, logits = _prefill(model, torch.tensor([[5, 6, 7]]), None, 1)
        dec = FastDecoder(model, cache, backend="function")
        dec.step(logits.argmax(-1))
        with pytest.raises(RuntimeError, match="capacity"):
            dec.step(logits.argmax(-1))


def test_bad_backend():
    model = tiny_lumos([0])
    cache, _ = _prefill(model, torch.tensor([[5, 6]]), None, 1)
    with pytest.raises(ValueError, match="backend"):
        FastDecoder(model, cache, backend="triton")


@pytest.fixture(scope="module")
def compiled_model():
    return tiny_lumos([0, 1], seed=7)  # the architecture of test_cli's model: one compile serves both


def test_compiled_step_matches_model(compiled_model):
    _compare(compiled_model, torch.randint(3, 259, (1, 10), generator=torch.Generator().manual_seed(4)),
             backend="compiled", steps=4)
    # batch size and KV capacity are dynamic: a different batch and length reuse the compiled code
    ids = torch.randint(3, 259, (2, 5), generator=torch.Generator().manual_seed(5))
    _compare(compiled_model, ids, torch.tensor([[0, 1, 1, 1, 1], [1, 1, 1, 1, 1]]), backend="compiled", steps=3)


def test_compiled_step_sees_in_place_weight_updates(compiled_model):
    """RL updates the weights in place between rollouts: the compiled step must read them afresh."""
    ids = torch.randint(3, 259, (1, 6), generator=torch.Generator().manual_seed(9))
    _compare(compiled_model, ids, backend="compiled", steps=2)
    saved = {k: v.clone() for k, v in compiled_model.state_dict().items()}
    try:
        with torch.no_grad():
            for p in compiled_model.parameters():
                p.mul_(0.9).add_(0.01)
        _compare(compiled_model, ids, backend="compiled", steps=2)
    finally:
        compiled_model.load_state_dict(saved)


def test_generate_compile_equals_eager(compiled_model):
    ids = torch.randint(3, 259, (2, 6), generator=torch.Generator().manual_seed(6))
    kw = dict(max_new_tokens=12, eos_token_id=-1, repetition_truncation=None)
    slow = generate(compiled_model, ids, **kw)
    fast = generate(compiled_model, ids, compile=True, **kw)
    assert torch.equal(fast.tokens, slow.tokens)
    assert_close("logprobs", fast.logprobs, slow.logprobs, atol=1e-4, rtol=1e-4)
    # sampled, seeded: same draws
    a = generate(compiled_model, ids, do_sample=True, seed=3, **kw)
    b = generate(compiled_model, ids, do_sample=True, seed=3, compile=True, **kw)
    assert torch.equal(a.tokens, b.tokens)


def test_generate_compile_large_batch_uses_eager_path(monkeypatch):
    def boom(model):
        raise AssertionError("the compiled step must not be built for many reads of large experts")

    monkeypatch.setattr(fast_decode, "compiled_decode_step", boom)
    ids = torch.randint(3, 259, (3, 4), generator=torch.Generator().manual_seed(7))
    out = generate(_wide_experts(), ids, max_new_tokens=3, compile=True)
    assert out.tokens.shape == (3, 3)


def test_compile_failure_falls_back_to_eager(monkeypatch):
    model = tiny_lumos([0, 1], seed=8)

    def broken(model):
        def fn(*args):
            raise RuntimeError("no C++ compiler")
        return fn

    monkeypatch.setattr(fast_decode, "compiled_decode_step", broken)
    monkeypatch.setattr(fast_decode, "_compile_error", None)
    ids = torch.tensor([[5, 6, 7, 8]])
    kw = dict(max_new_tokens=5, eos_token_id=-1, repetition_truncation=None)
    with pytest.warns(RuntimeWarning, match="no C\\+\\+ compiler"):
        out = generate(model, ids, compile=True, **kw)
    assert torch.equal(out.tokens, generate(model, ids, **kw).tokens)
    assert fast_decode._compile_error is not None


def test_compiled_code_is_per_model_and_follows_fp32_head(compiled_model):
    # module and parameter guards are filtered out, so each model must get its own compiled code
    other = tiny_lumos([0, 1], seed=11).to(torch.bfloat16)
    ids = torch.randint(3, 259, (1, 6), generator=torch.Generator().manual_seed(8))
    _compare(other, ids, backend="compiled", steps=3, atol=0.1)
    _compare(compiled_model, ids, backend="compiled", steps=3)
    assert fast_decode.compiled_decode_step(other) is not fast_decode.compiled_decode_step(compiled_model)

    def step_dtype():
        with torch.no_grad():
            cache, logits = _prefill(other, ids, None, 2)
            return FastDecoder(other, cache).step(logits.argmax(-1)).dtype

    assert step_dtype() == torch.bfloat16
    other.lm_head_fp32 = True  # an argument of the compiled step, not a (filtered) attribute guard
    assert step_dtype() == torch.float32
    # a cast builds new code (the filtered parameter guards would not notice it)
    fn = fast_decode.compiled_decode_step(other)
    other.float()
    assert fast_decode.compiled_decode_step(other) is not fn
