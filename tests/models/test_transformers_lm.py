"""`lumos generate` on transformers directories: transformers' own decoding, lumos's output contract."""

from __future__ import annotations

import pytest
import torch

from lumos.core.errors import LumosError
from lumos.models.transformers_lm import (
    generate_transformers,
    is_adapter_dir,
    is_transformers_dir,
    load_transformers,
    resolve_device,
)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    from models._own_model import save_model_dir

    return save_model_dir(tmp_path_factory.mktemp("own") / "m")


def test_greedy_equals_transformers_and_logprobs_are_full_softmax(model_dir):
    model, tok = load_transformers(model_dir)
    assert is_transformers_dir(model_dir) and not is_adapter_dir(model_dir)
    prompts = ["What is 4 plus 5?", [{"role": "user", "content": "hi"}]]
    out = generate_transformers(model, tok, prompts, max_new_tokens=5)
    for i, p in enumerate(prompts):
        ids = torch.tensor([tok.encode_prompt(p)])
        ref = model.generate(ids, max_new_tokens=5, do_sample=False, eos_token_id=tok.eos_token_id,
                             pad_token_id=tok.pad_token_id)[0, ids.shape[1]:]
        n = int(out.mask[i].sum())
        assert out.tokens[i, :n].tolist() == ref[:n].tolist()
        # log-probs: log softmax of a full forward over prompt + tokens
        full = torch.cat([ids[0], ref[:n]])[None]
        lp = torch.log_softmax(model(full).logits[0, ids.shape[1] - 1:-1].float(), -1)
        want = lp.gather(-1, ref[:n, None])[:, 0]
        torch.testing.assert_close(out.logprobs[i, :n], want, atol=1e-4, rtol=1e-4)


def test_stop_strings_and_sampling_seed(model_dir):
    model, tok = load_transformers(model_dir, chat_template=False)
    a = generate_transformers(model, tok, ["What is"], max_new_tokens=6, do_sample=True, top_k=20, seed=3)
    b = generate_transformers(model, tok, ["What is"], max_new_tokens=6, do_sample=True, top_k=20, seed=3)
    assert torch.equal(a.tokens, b.tokens)
    # a stop string seen after the third token: the same draws, cut there (finish reason "stop")
    n = next((k for k in range(1, 6) if "\ufffd" not in tok.decode(a.tokens[0, :k].tolist())
              and tok.decode(a.tokens[0, :k].tolist()).strip()), None)
    if n is not None and tok.eos_token_id not in a.tokens[0, :n].tolist():
        stop = tok.decode(a.tokens[0, :n].tolist()).strip()[-1]
        cut = generate_transformers(model, tok, ["What is"], max_new_tokens=6, do_sample=True, top_k=20, seed=3,
                                    stop_strings=[stop])
        k = int(cut.mask[0].sum())
        assert cut.tokens[0, :k].tolist() == a.tokens[0, :k].tolist() and k <= n
        assert cut.finish_reasons[0] == "stop" and stop in tok.decode(cut.tokens[0, :k].tolist())


def test_adapter_directory_loads_through_peft(model_dir, tmp_path):
    peft = pytest.importorskip("peft")
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(model_dir.resolve())
    lora = peft.get_peft_model(base, peft.LoraConfig(r=2, target_modules="all-linear", task_type="CAUSAL_LM"))
    lora.save_pretrained(tmp_path / "adapter")
    import shutil

    for name in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja"):
        if (model_dir / name).is_file():
            shutil.copy(model_dir / name, tmp_path / "adapter" / name)
    assert is_adapter_dir(tmp_path / "adapter") and is_transformers_dir(tmp_path / "adapter")
    model, tok = load_transformers(tmp_path / "adapter")
    assert "lora" in " ".join(n for n, _ in model.named_parameters())


def test_bad_inputs(tmp_path):
    with pytest.raises(LumosError, match="no safetensors"):
        load_transformers(tmp_path)
    with pytest.raises(LumosError, match="must be auto, cpu, cuda or cuda:N"):
        resolve_device("gpu0")
