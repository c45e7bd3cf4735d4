"""`lumos rl train`, `lumos rl compare`, `lumos rl fp32-head` end to end at toy sizes."""

from __future__ import annotations

import json

from lumos.cli.main import main
from lumos.core.io import read_jsonl

TINY = ["--warm-start", "2", "--steps", "2", "--prompts-per-step", "2", "--group-size", "2", "--minibatches", "1",
        "--max-new-tokens", "3", "--eval-problems", "4", "--eval-every", "1", "--task-arg", "digits=1"]


def test_rl_train_and_resume_cli(tmp_path, capsys):
    out = tmp_path / "t"
    assert main(["rl", "train", "--algo", "cispo", "--checkpoint-every", "1", "--out", str(out), *TINY]) == 0
    assert "run directory" in capsys.readouterr().out
    rows = [r for r in read_jsonl(out / "metrics.jsonl") if "reward" in r]
    assert [r["step"] for r in rows] == [1, 2]
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["rl"]["adam_eps"] == 1e-15 and cfg["rl"]["adam_beta2"] == 0.95
    assert (out / "checkpoints" / "latest").read_text().strip() == "step_000002"
    # resuming a finished run trains nothing more and keeps the metrics
    assert main(["rl", "train", "--resume", "--checkpoint-every", "1", "--out", str(out), *TINY]) == 0
    assert [r["step"] for r in read_jsonl(out / "metrics.jsonl") if "reward" in r] == [1, 2]


def test_rl_compare_cli(tmp_path, capsys):
    assert main(["rl", "compare", "--algos", "cispo,grpo", "--seeds", "1", "--out", str(tmp_path / "c"), *TINY]) == 0
    out = capsys.readouterr().out
    assert "steps to target" in out and "cispo" in out and "grpo" in out
    assert (tmp_path / "c" / "plots" / "compare.png").is_file()


def test_cli_errors(tmp_path, capsys):
    out = ["--out", str(tmp_path / "never")]
    assert main(["rl", "train", *TINY, "--task", "no-such-task", *out]) == 2
    assert "must be one of the registered tasks" in capsys.readouterr().err
    assert main(["rl", "compare", *TINY, "--algos", "cispo,ppo9", *out]) == 2
    assert "ppo9" in capsys.readouterr().err
    assert main(["rl", "train", *TINY, "--group-size", "0", *out]) == 2
    assert "group_size" in capsys.readouterr().err
    assert main(["rl", "train", *TINY, "--task-arg", "digits", *out]) == 2
    assert "KEY=VALUE" in capsys.readouterr().err
    assert not (tmp_path / "never").exists()


def test_a_loss_registered_here_trains_through_the_cli(tmp_path, capsys, monkeypatch):
    """One registration is all an objective needs: its name, defaults and own hyper-parameters reach the trainer."""
    import torch

    from lumos.rl import objectives

    monkeypatch.setattr(objectives.LOSSES, "_entries", dict(objectives.LOSSES._entries))  # ends with the test
    calls = []

    @objectives.register_loss("reinforce-test", help="plain REINFORCE (test)", normalizer="sequences")
    def reinforce(logp, old_logp, advantages, mask, *, scale: float = 1.0, normalizer=None):
        calls.append((scale, float(normalizer)))
        adv, m = advantages[:, None].to(logp.dtype), mask.to(logp.dtype)
        loss = -(scale * adv * logp * m).sum() / normalizer
        return loss, {"loss": loss.detach(), "num_tokens": m.sum()}

    out = tmp_path / "r"
    assert main(["rl", "train", "--algo", "reinforce-test", "--loss-arg", "scale=0.5", "--out", str(out), *TINY]) == 0
    assert "run directory" in capsys.readouterr().out
    assert calls and all(scale == 0.5 for scale, _ in calls)
    assert all(n == 4.0 for _, n in calls)  # "sequences": the 2 prompts × 2 samples of the minibatch
    assert json.loads((out / "config.json").read_text())["rl"]["loss_args"] == {"scale": 0.5}
    assert torch.isfinite(torch.tensor([r["loss"] for r in read_jsonl(out / "metrics.jsonl") if "loss" in r])).all()
    # an objective's own hyper-parameter that it does not take is one clear error
    assert main(["rl", "train", "--algo", "reinforce-test", "--beta", "0.1", "--out", str(tmp_path / "n"), *TINY]) == 2
    assert "grpo" in capsys.readouterr().err


# ------------------------------------------------------------------------------ a user's own transformers model
REWARDS_PY = '''
CALLS = []

def contains_answer(prompts, completions, answer, completion_ids, **kwargs):
    CALLS.append(len(prompts))
    texts = [c[0]["content"] if isinstance(c, list) else c for c in completions]
    return [1.0 if a in t else 0.0 for t, a in zip(texts, answer)]

def short(completions, **kwargs):
    return [None if isinstance(c, list) else -0.01 * len(c) for c in completions]
'''


def _own_run(tmp_path):
    from models._own_model import save_model_dir

    model_dir = save_model_dir(tmp_path / "my-model")
    data = tmp_path / "data.jsonl"
    rows = [{"prompt": "What is 4 plus 5?", "answer": "9"},
            {"prompt": [{"role": "user", "content": "What is 2 plus 3?"}], "answer": "5"},
            {"prompt": "What is 1 plus 1?", "answer": "2"}, {"prompt": "What is 3 plus 3?", "answer": "6"},
            {"prompt": [{"role": "user", "content": "What is 0 plus 7?"}], "answer": "7"}]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    rewards = tmp_path / "rewards.py"
    rewards.write_text(REWARDS_PY)
    return model_dir, data, rewards, rows


def test_own_model_tokenizer_and_chat_template_end_to_end(tmp_path, capsys):
    """`lumos rl train --model DIR --task data.jsonl --reward rewards.py:fn`: the directory's tokenizer and chat
    template everywhere; the checkpoint opens with AutoModelForCausalLM/AutoTokenizer and `lumos generate`."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model_dir, data, rewards, rows = _own_run(tmp_path)
    out = tmp_path / "run"
    argv = ["rl", "train", "--model", str(model_dir), "--task", str(data), "--reward", f"{rewards}:contains_answer",
            "--reward", f"{rewards}:short", "--reward-weights", "1", "0.5", "--eval-fraction", "0.2",
            "--system-prompt", "Answer with a number.", "--top-k", "50", "--top-p", "0.95",
            "--checkpoint-every", "1", "--out", str(out), "--report-to", "tensorboard", *TINY[:-2]]
    assert main(argv) == 0
    assert "run directory" in capsys.readouterr().out
    tok = AutoTokenizer.from_pretrained(model_dir)

    def render(p):
        msgs = [{"role": "user", "content": p}] if isinstance(p, str) else p
        return tok.apply_chat_template([{"role": "system", "content": "Answer with a number."}, *msgs],
                                       add_generation_prompt=True, tokenize=False)

    steps = [r for r in read_jsonl(out / "metrics.jsonl") if "reward" in r]
    assert [r["step"] for r in steps] == [1, 2]
    for r in steps:   # every logged sample is a rendered prompt + the completion decoded with the model's tokenizer
        ids = [i for i in r["sample_completion_ids"] if i != tok.eos_token_id]
        assert r["sample"] in {render(x["prompt"]) + tok.decode(ids, skip_special_tokens=True) for x in rows}
        assert all(i < len(tok) for i in r["sample_completion_ids"])
        assert "eval_reward" in r and r["unscorable"] == 0
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["data"]["reward_weights"] == [1.0, 0.5] and cfg["rl"]["top_k"] == 50
    assert list((out / "tensorboard").iterdir())
    # the checkpoint is a Hugging Face directory with the tokenizer and chat template
    ckpt = out / "checkpoints" / "step_000002"
    model = AutoModelForCausalLM.from_pretrained(ckpt)
    tok2 = AutoTokenizer.from_pretrained(ckpt)
    assert tok2.chat_template == tok.chat_template and tok2.eos_token_id == tok.eos_token_id
    initial = AutoModelForCausalLM.from_pretrained(model_dir)
    assert any(not torch.equal(a, b) for a, b in zip(model.state_dict().values(), initial.state_dict().values()))
    assert {p.name for p in ckpt.iterdir()} >= {"optimizer.pt", "rng.pt", "state.json", "config.json",
                                                "model.safetensors", "tokenizer.json"}
    # ... and `lumos generate` opens it: greedy tokens equal transformers' own greedy decoding of the chat prompt
    capsys.readouterr()
    assert main(["generate", "--model", str(ckpt), "--prompt", "What is 4 plus 5?", "--max-new-tokens", "4",
                 "--temperature", "0", "--json", "--out", str(tmp_path / "gen")]) == 0
    got = json.loads(capsys.readouterr().out)["results"][0]
    prompt_ids = tok2.apply_chat_template([{"role": "user", "content": "What is 4 plus 5?"}], add_generation_prompt=True,
                                          return_tensors="pt", return_dict=True)["input_ids"]
    ref = model.generate(prompt_ids, max_new_tokens=4, do_sample=False, eos_token_id=tok2.eos_token_id,
                         pad_token_id=tok2.pad_token_id)[0, prompt_ids.shape[1]:].tolist()
    n = ref.index(tok2.eos_token_id) + 1 if tok2.eos_token_id in ref else len(ref)
    assert got["tokens"] == ref[:n]
    # the run directory itself: its latest checkpoint
    assert main(["generate", "--model", str(out), "--prompt", "What is 4 plus 5?", "--max-new-tokens", "4",
                 "--temperature", "0", "--json", "--out", str(tmp_path / "gen2")]) == 0
    assert json.loads(capsys.readouterr().out)["results"][0]["tokens"] == got["tokens"]
    # resuming continues the stored data options (nothing left to train: the metrics are kept)
    assert main(["rl", "train", "--resume", "--out", str(out)]) == 0
    assert [r["step"] for r in read_jsonl(out / "metrics.jsonl") if "reward" in r] == [1, 2]
    # repeating one stored data or model flag is fine (the rest stay stored); changing one is refused
    assert main(["rl", "train", "--resume", "--eval-fraction", "0.2", "--dtype", "auto", "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["rl", "train", "--resume", "--eval-fraction", "0.3", "--out", str(out)]) == 2
    assert "eval_fraction" in capsys.readouterr().err


def test_own_model_errors_before_any_work(tmp_path, capsys):
    from models._own_model import save_model_dir

    model_dir, data, rewards, _ = _own_run(tmp_path)
    base = ["rl", "train", "--task", str(data), *TINY[:-2]]
    cases = [
        (["--model", str(save_model_dir(tmp_path / "bare", tokenizer=False))], "holds no tokenizer"),
        (["--model", str(save_model_dir(tmp_path / "small", model_vocab=27))], "the model and its tokenizer disagree"),
        (["--model", str(save_model_dir(tmp_path / "notemplate", chat_template=False))], "no chat template"),
        (["--model", str(model_dir), "--no-chat-template"], "--no-chat-template was given"),
        (["--model", "hybrid", "--system-prompt", "x"], "--system-prompt needs a chat template"),
        (["--model", str(model_dir), "--reward", f"{rewards}:nope"], "has no attribute 'nope'"),
        (["--model", str(model_dir), "--reward", f"{rewards}:short", "--reward-weights", "1", "2"],
         "one weight per reward function"),
        (["--model", "hybrid", "--task", "addition", "--reward", f"{rewards}:short"], "applies to data-file tasks"),
        (["--model", str(model_dir), "--lora-r", "2", "--lora-targets", "no_such_proj"], "--lora-targets"),
        (["--model", str(model_dir), "--max-new-tokens", "600"],
         "prompt tokens + max_new_tokens 600 exceed the model's max_position_embeddings = 512"),
    ]
    chat_task = tmp_path / "chat_task.py"                    # a generated task (no rows): a sample is checked
    chat_task.write_text(
        "from lumos.rl.tasks.base import Problem, Reward, Task\n"
        "class Chat(Task):\n"
        "    name = 'chat'\n"
        "    def generate(self, n, seed):\n"
        "        return [Problem([{'role': 'user', 'content': 'What is 2 plus 2?'}], '4') for _ in range(n)]\n"
        "    def score(self, problems, completions):\n"
        "        return [Reward(0.0, False, 0.0) for _ in completions]\n"
        "def make():\n"
        "    return Chat()\n")
    cases += [(["--model", str(save_model_dir(tmp_path / "notemplate2", chat_template=False)), "--task",
                f"{chat_task}:make"], "no chat template"),
              (["--model", str(model_dir), "--task", f"{chat_task}:make", "--max-new-tokens", "600"],
               "exceed the model's max_position_embeddings = 512")]
    for extra, match in cases:
        out = tmp_path / "never"
        assert main([*base, *extra, "--out", str(out)]) == 2, extra
        err = capsys.readouterr().err
        assert match in err and len(err.strip().splitlines()) == 1, (extra, err)
        assert not out.exists()
