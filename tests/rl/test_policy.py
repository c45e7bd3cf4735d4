"""Policy adapters: cached sampling == the no-cache twin; training log-probs == sampler log-probs; padding."""

from __future__ import annotations

import pytest
import torch

from lumos.core.errors import LumosError, LumosTypeError
from lumos.models.tokenizer import ByteTokenizer
from lumos.rl.policy import HFPolicy, left_pad, make_policy, sample_reference
from lumos.testing import assert_close

transformers = pytest.importorskip("transformers")
TOK = ByteTokenizer()


def tiny_llama(seed=0):
    torch.manual_seed(seed)
    cfg = transformers.LlamaConfig(vocab_size=TOK.vocab_size, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                   num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
                                   bos_token_id=TOK.bos_token_id, eos_token_id=TOK.eos_token_id,
                                   pad_token_id=TOK.pad_token_id)
    return transformers.LlamaForCausalLM(cfg).eval()


def tiny_gpt2(seed=0):
    torch.manual_seed(seed)
    cfg = transformers.GPT2Config(vocab_size=TOK.vocab_size, n_embd=32, n_layer=2, n_head=4, n_positions=128,
                                  bos_token_id=TOK.bos_token_id, eos_token_id=TOK.eos_token_id)
    return transformers.GPT2LMHeadModel(cfg).eval()


def _prompts():
    return left_pad([TOK.encode(p, add_bos=True) for p in ["12+7=", "3+4=", "100+23="]], TOK.pad_token_id)


@pytest.mark.parametrize("build", [tiny_llama, tiny_gpt2])
def test_cached_sampling_matches_no_cache_twin_and_training_logprobs(build):
    policy = make_policy(build())
    assert isinstance(policy, HFPolicy) and policy.pad_token_id in (TOK.pad_token_id, TOK.eos_token_id)
    ids, mask = _prompts()
    gens = lambda: [torch.Generator().manual_seed(10 + i) for i in range(3)]  # noqa: E731
    fast = policy.generate(ids, mask, max_new_tokens=12, temperature=1.3, generators=gens())
    slow = sample_reference(policy, ids, mask, max_new_tokens=12, temperature=1.3, generators=gens())
    assert torch.equal(fast.response_ids, slow.response_ids) and torch.equal(fast.response_mask, slow.response_mask)
    assert_close("sampler logprobs", fast.logprobs, slow.logprobs, atol=1e-5, rtol=1e-5)
    # the training forward over prompt + response reproduces the sampler's log-probs at real tokens
    logp, ent = policy.token_logprobs(fast, temperature=1.3)
    m = fast.response_mask
    assert_close("train vs rollout logp", logp[m], fast.logprobs[m], atol=1e-5, rtol=1e-5)
    assert bool((ent[m] > 0).all())
    # a row's sample does not depend on its batch-mates (per-row generators)
    solo = policy.generate(ids[1:2], mask[1:2], max_new_tokens=12, temperature=1.3,
                           generators=[torch.Generator().manual_seed(11)])
    n = int(solo.response_mask.sum())
    assert torch.equal(solo.response_ids[0, :n], fast.response_ids[1, :n])


def test_eos_masks_rest_and_greedy():
    policy = make_policy(tiny_llama())
    ids, mask = _prompts()
    ro = policy.generate(ids, mask, max_new_tokens=8, do_sample=False)
    again = policy.generate(ids, mask, max_new_tokens=8, do_sample=False)
    assert torch.equal(ro.response_ids, again.response_ids)
    for i, reason in enumerate(ro.finish_reasons):
        row = ro.response_ids[i][ro.response_mask[i]]
        assert (reason == "eos") == bool((row == TOK.eos_token_id).any())
        assert bool((ro.response_ids[i][~ro.response_mask[i]] == policy.pad_token_id).all())


def test_make_policy_rejects_unknown_models():
    with pytest.raises(LumosTypeError, match="make_policy needs"):
        make_policy(torch.nn.Linear(2, 2))


def test_hybrid_policy_without_token_ids_is_a_clear_error():
    # no id given and none in the model's config: a LumosError naming the id (was AttributeError / TypeError)
    from types import SimpleNamespace

    from lumos.rl.policy import HybridPolicy

    with pytest.raises(LumosError, match="eos_token_id"):
        HybridPolicy(torch.nn.Linear(2, 2))
    model = torch.nn.Linear(2, 2)
    model.config = SimpleNamespace(eos_token_id=1, pad_token_id=None)
    with pytest.raises(LumosError, match="pad_token_id"):
        HybridPolicy(model)
    assert HybridPolicy(model, pad_token_id=0).pad_token_id == 0


def test_hybrid_policy_logprobs_and_group_sampling():
    from lumos.models import tiny_hybrid

    policy = make_policy(tiny_hybrid(32, 2, seed=1))
    ids, mask = _prompts()
    g1, g2 = torch.Generator().manual_seed(1), torch.Generator().manual_seed(2)
    ro = policy.generate(ids, mask, max_new_tokens=6, temperature=1.2, generators=[g1, g1, g2])
    logp, _ = policy.token_logprobs(ro, temperature=1.2)
    m = ro.response_mask
    assert_close("hybrid train vs rollout logp", logp[m], ro.logprobs[m], atol=1e-5, rtol=1e-5)
    # the group of rows 0-1 sampled in one call gives the same tokens when generated alone with the same seed
    alone = policy.generate(ids[:2], mask[:2], max_new_tokens=6, temperature=1.2,
                            generators=[torch.Generator().manual_seed(1)] * 2)
    assert torch.equal(alone.response_ids, ro.response_ids[:2, :alone.response_ids.shape[1]])
    assert policy.aux_loss() is not None


def test_top_k_top_p_sampling_matches_the_twin_and_keeps_full_logprobs():
    """Rollouts filter the sampling distribution like `lumos generate`; the recorded log-probs stay those of the
    full softmax, which the training forward reproduces. top_k=1 is greedy."""
    policy = make_policy(tiny_llama())
    ids, mask = _prompts()
    gens = lambda: [torch.Generator().manual_seed(20 + i) for i in range(3)]  # noqa: E731
    for kw in ({"top_k": 5}, {"top_p": 0.3}, {"top_k": 8, "top_p": 0.5}):
        fast = policy.generate(ids, mask, max_new_tokens=8, temperature=1.1, generators=gens(), **kw)
        slow = sample_reference(policy, ids, mask, max_new_tokens=8, temperature=1.1, generators=gens(), **kw)
        assert torch.equal(fast.response_ids, slow.response_ids), kw
        logp, _ = policy.token_logprobs(fast, temperature=1.1)
        m = fast.response_mask
        assert_close("train vs rollout logp (filtered sampling)", logp[m], fast.logprobs[m], atol=1e-5, rtol=1e-5)
    top1 = policy.generate(ids, mask, max_new_tokens=6, temperature=1.0, generators=gens(), top_k=1)
    greedy = policy.generate(ids, mask, max_new_tokens=6, do_sample=False)
    assert torch.equal(top1.response_ids, greedy.response_ids)
    # top-p keeps only tokens inside the nucleus: with p tiny, the most likely token every time
    tiny_p = policy.generate(ids, mask, max_new_tokens=6, temperature=1.0, generators=gens(), top_p=1e-6)
    assert torch.equal(tiny_p.response_ids, greedy.response_ids)


def test_context_limit_reads_the_declared_length_and_check_context_refuses_past_it():
    from lumos.rl.policy import check_context, context_limit

    assert context_limit(tiny_llama()) == ("max_position_embeddings", 128)
    assert context_limit(tiny_gpt2())[1] == 128                 # GPT-2's n_positions
    assert context_limit(torch.nn.Linear(2, 2)) is None        # no config: nothing declared, nothing checked
    check_context(100, 28, ("n_positions", 128), "t")           # exactly full fits
    check_context(10**6, 10, None, "t")
    with pytest.raises(LumosError, match=r"^t: 101 prompt tokens \+ max_new_tokens 28 exceed the model's "
                                         r"n_positions = 128\. Shorten or drop prompts over 100 tokens"):
        check_context(101, 28, ("n_positions", 128), "t")
