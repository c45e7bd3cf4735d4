"""CISPO on your own transformers model, tokenizer, chat template, data and reward function.

Builds what a user brings (no download): a 2-layer Qwen2 with a byte-level BPE tokenizer trained here and a ChatML
chat template, saved with `save_pretrained`; a JSONL of chat prompts with an `answer` column; a TRL-style reward
function in its own file. Then trains it with `lumos rl train` for a few steps and opens the checkpoint with
transformers' Auto classes. The same run through the Python API is in docs/guide/rl.md.

Run: python examples/rl_own_model.py
"""

import json
import tempfile
from pathlib import Path

from lumos.cli.main import main as lumos

CHAT_TEMPLATE = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
                 "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")


def make_model_dir(path: Path) -> Path:
    """Your model: a tiny Qwen2 and its own tokenizer (special tokens, pad/eos, chat template)."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    bpe.train_from_iterator([f"What is {a} plus {b}? {a + b}" for a in range(10) for b in range(10)],
                            trainers.BpeTrainer(vocab_size=300, special_tokens=["<|endoftext|>", "<|im_start|>",
                                                                                "<|im_end|>"],
                                                initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                                show_progress=False))
    tok = PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                  chat_template=CHAT_TEMPLATE)
    torch.manual_seed(0)
    model = Qwen2ForCausalLM(Qwen2Config(vocab_size=len(tok), hidden_size=32, intermediate_size=64,
                                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                                         eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id))
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return path


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        model_dir = make_model_dir(work / "my-model")
        with (work / "data.jsonl").open("w") as f:
            for a in range(8):
                for b in range(8):
                    f.write(json.dumps({"prompt": [{"role": "user", "content": f"What is {a} plus {b}?"}],
                                        "answer": str(a + b)}) + "\n")
        (work / "rewards.py").write_text(
            "def correct(prompts, completions, answer, **kwargs):\n"
            "    # TRL's convention: chat completions are lists of messages; one float (or None) per sample\n"
            "    return [float(a in c[0]['content']) for c, a in zip(completions, answer)]\n")
        run = work / "run"
        status = lumos(["rl", "train", "--model", str(model_dir), "--task", str(work / "data.jsonl"),
                        "--reward", f"{work / 'rewards.py'}:correct", "--algo", "cispo", "--warm-start", "0",
                        "--steps", "3", "--prompts-per-step", "4", "--group-size", "4", "--minibatches", "1",
                        "--max-new-tokens", "4", "--eval-every", "3", "--eval-problems", "6",
                        "--checkpoint-every", "3", "--system-prompt", "Answer with a number.", "--out", str(run)])
        assert status == 0
        rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
        sample = next(r["sample"] for r in rows if "sample" in r)
        print("a logged sample, decoded with the model's own tokenizer:", repr(sample[:120]))
        ckpt = sorted((run / "checkpoints").glob("step_*"))[-1]
        from transformers import AutoModelForCausalLM, AutoTokenizer

        model, tok = AutoModelForCausalLM.from_pretrained(ckpt), AutoTokenizer.from_pretrained(ckpt)
        print(f"checkpoint {ckpt.name} opens with transformers: {type(model).__name__}, chat template kept: "
              f"{tok.chat_template == CHAT_TEMPLATE}")


if __name__ == "__main__":
    main()
