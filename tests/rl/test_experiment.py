"""load_model: a directory's own tokenizer, dtype/device, gradient checkpointing and LoRA; build_task's data options."""

from __future__ import annotations

import pytest
import torch

from lumos.core.errors import LumosError
from lumos.models.tokenizer import ByteTokenizer, TransformersTokenizer
from lumos.rl.config import DataConfig, ModelOptions, RLConfig
from lumos.rl.experiment import build_task, load_model


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    from models._own_model import save_model_dir

    return save_model_dir(tmp_path_factory.mktemp("own") / "m")


def test_builtin_models_use_the_byte_tokenizer():
    model, tok = load_model("llama")
    assert isinstance(tok, ByteTokenizer) and model.config.vocab_size == 259
    hybrid, tok = load_model("hybrid", options=ModelOptions(dtype="bfloat16"))
    assert isinstance(tok, ByteTokenizer) and next(hybrid.parameters()).device.type == "cpu"
    assert next(hybrid.parameters()).dtype == torch.bfloat16
    with pytest.raises(LumosError, match="lumos's own models .* train on the CPU"):
        load_model("hybrid", options=ModelOptions(device="cuda:0" if torch.cuda.is_available() else "mps"))


def test_directory_model_with_its_tokenizer_dtype_and_checkpointing(model_dir):
    model, tok = load_model(str(model_dir), options=ModelOptions(dtype="bfloat16", gradient_checkpointing=True),
                            data=DataConfig(system_prompt="Be brief."))
    assert isinstance(tok, TransformersTokenizer) and tok.system_prompt == "Be brief."
    assert next(model.parameters()).dtype == torch.bfloat16 and model.is_gradient_checkpointing
    assert str(next(model.parameters()).device) == ModelOptions().resolved_device()


def test_lora_wraps_the_model(model_dir):
    pytest.importorskip("peft")
    model, _ = load_model(str(model_dir), options=ModelOptions(lora_r=2, lora_targets="q_proj,v_proj"))
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    assert all(("q_proj" in n or "v_proj" in n) for n in trainable)
    assert model.peft_config["default"].lora_alpha == 4      # default 2 × r


def test_options_are_validated_together():
    with pytest.raises(LumosError, match="3 problems in ModelOptions"):
        ModelOptions(device="gpu", dtype="int8", lora_r=-1)
    with pytest.raises(LumosError, match="eval_fraction"):
        DataConfig(eval_fraction=1.0)
    with pytest.raises(LumosError, match="CUDA is not available|has 0 CUDA"):
        if torch.cuda.is_available():
            ModelOptions(device=f"cuda:{torch.cuda.device_count()}").resolved_device()
        else:
            ModelOptions(device="cuda").resolved_device()


def test_build_task_holds_out_only_when_evaluating(tmp_path):
    f = tmp_path / "d.jsonl"
    f.write_text("".join(f'{{"prompt": "{i}+0=", "answer": "{i}"}}\n' for i in range(10)))
    evaluated = build_task(RLConfig(task=str(f), eval_every=5), DataConfig(eval_fraction=0.2))
    assert len(evaluated.train_problems) == 8 and len(evaluated.eval_problems) == 2
    never = build_task(RLConfig(task=str(f), eval_every=0), DataConfig(eval_fraction=0.2))
    assert len(never.train_problems) == 10
    with pytest.raises(LumosError, match="--prompt-column applies to data-file tasks"):
        build_task(RLConfig(task="addition"), DataConfig(prompt_column="q"))
