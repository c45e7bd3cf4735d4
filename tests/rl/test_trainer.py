"""RLTrainer: smoke (tiny transformers Llama), bit-identical resume, NaN skipping, 2-process gloo == 1 process
(tiny lumos HybridLM)."""

from __future__ import annotations

import math

import pytest
import torch

from lumos.core.errors import LumosError
from lumos.core.io import read_jsonl
from lumos.core.rundir import RunDir
from lumos.distributed.process_group import spawn
from lumos.rl.config import RLConfig
from lumos.rl.tasks import Reward, get_task
from lumos.rl.trainer import RLTrainer, lr_at

transformers = pytest.importorskip("transformers")


def tiny_llama(seed=0):
    torch.manual_seed(seed)
    cfg = transformers.LlamaConfig(vocab_size=259, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                   num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                                   bos_token_id=257, eos_token_id=258, pad_token_id=256)
    return transformers.LlamaForCausalLM(cfg)


def small_cfg(**kw):
    base = dict(algo="cispo", steps=4, prompts_per_step=4, group_size=4, minibatches=2, max_new_tokens=5,
                lr=3e-3, eval_every=0, eval_problems=8, temperature=1.5)
    base.update(kw)
    return RLConfig(**base)


def signal_task():
    """Addition prompts with a dense reward (value of the first byte) so a random model gets a learning signal."""
    from lumos.rl.tasks import CallableTask

    add = get_task("addition", digits=1)
    return CallableTask(lambda n, seed: add.generate(n, seed),
                        verifier=lambda p, c: Reward(min(ord(c[0]), 255) / 255 if c else 0.0, bool(c) and c[0] == "7"),
                        name="first-byte")


def patchy_task(has_signal=lambda p: p.answer % 2 == 1):
    """signal_task, except that problems failing ``has_signal`` get a constant reward (their group is dropped)."""
    from lumos.rl.tasks import CallableTask

    add = get_task("addition", digits=1)

    def verify(p, c):   # a reward of the whole completion: 4 samples of a random model never tie
        if not has_signal(p):
            return Reward(0.5, False)
        return Reward(sum(c.encode()) % 251 / 251, bool(c) and c[0] == "7")

    return CallableTask(lambda n, seed: add.generate(n, seed), verifier=verify, name="patchy")


def _expected_refill(tr, step, has_signal):
    """(rounds, dropped groups, batch groups) of ``step`` predicted from the problem stream alone."""
    P, total, rounds = tr.cfg.prompts_per_step, 0, 0
    while True:
        total += sum(has_signal(p) for p in tr.task.generate(P, seed=tr._problem_seed(step, rounds)))
        rounds += 1
        if total >= P or rounds >= tr.cfg.dynamic_sampling_max_rounds:
            return rounds, rounds * P - total, min(total, P)


def _count_trained_rows(tr):
    seen = []
    real = tr.policy.token_logprobs

    def counting(ro, temperature, rows=None):
        seen.append(int(rows.numel()))
        return real(ro, temperature, rows=rows)

    tr.policy.token_logprobs = counting
    return seen


def _numeric(row):
    return {k: v for k, v in row.items() if isinstance(v, (int, float)) and not k.endswith("_s") and k != "tokens_per_s"}


@pytest.mark.parametrize("algo", ["cispo", "dapo", "grpo"])
def test_smoke_every_parameter_changes(algo, tmp_path):
    model = tiny_llama()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with RunDir.create("rl-test", {}, out=tmp_path / algo, seed=0) as run:
        tr = RLTrainer(model, signal_task(), small_cfg(algo=algo, steps=2, eval_every=2), run=run)
        hist = tr.train()
    assert len(hist) == 2 and all(math.isfinite(r["loss"]) for r in hist)
    for key in ("reward", "accuracy", "response_length", "entropy", "clip_frac", "is_weight_mean", "grad_norm",
                "tokens_per_s", "rollout_s", "old_logp_s", "update_s", "eval_accuracy"):
        assert key in hist[-1], key
    changed = [k for k, v in model.state_dict().items() if not torch.equal(v, before[k])]
    assert set(changed) == set(before), set(before) - set(changed)
    assert len(read_jsonl(run.metrics_path)) == 2 and (run.path / "checkpoints" / "latest").is_file()


@pytest.mark.parametrize("algo", ["cispo", "dapo"])
def test_resume_after_interruption_is_bit_identical(algo, tmp_path):
    # dapo: dynamic sampling with refill rounds (the round count per step depends on the weights)
    task = signal_task() if algo == "cispo" else patchy_task()
    cfg = small_cfg(algo=algo, checkpoint_every=2, old_logp="recompute")
    full_model = tiny_llama()
    run_a = RunDir.create("rl-a", {}, out=tmp_path / "a", seed=0)
    RLTrainer(full_model, task, cfg, run=run_a).train()

    run_b = RunDir.create("rl-b", {}, out=tmp_path / "b", seed=0)
    RLTrainer(tiny_llama(), task, cfg, run=run_b).train(stop_after=3)     # "killed" after step 3, last ckpt at 2
    assert len(read_jsonl(run_b.metrics_path)) == 3
    torch.manual_seed(123)                                                  # a fresh process: other RNG state
    run_b2 = RunDir.create("rl-b", {}, out=tmp_path / "b", seed=0, resume=True)
    resumed = RLTrainer(tiny_llama(seed=99), task, cfg, run=run_b2)
    assert resumed.resume() == 2
    resumed.train()
    for k, v in full_model.state_dict().items():
        assert torch.equal(v, resumed.model.state_dict()[k]), k
    rows_a, rows_b = read_jsonl(run_a.metrics_path), read_jsonl(run_b2.metrics_path)
    assert [_numeric(r) for r in rows_a] == [_numeric(r) for r in rows_b]
    if algo == "dapo":
        assert any(r["generation_rounds"] > 1 for r in rows_a)


def test_dynamic_sampling_refills_to_the_target():
    has_signal = lambda p: p.answer % 2 == 1                                  # noqa: E731
    tr = RLTrainer(tiny_llama(), patchy_task(has_signal), small_cfg(algo="dapo", steps=3, dynamic_sampling_max_rounds=4))
    seen = _count_trained_rows(tr)
    for step in range(3):
        expect = _expected_refill(tr, step, has_signal)
        n0 = len(seen)
        row = tr.rl_step()
        assert (row["generation_rounds"], row["dropped_groups"], row["batch_groups"]) == expect, (step, row)
        assert sum(seen[n0:]) == row["batch_groups"] * tr.cfg.group_size       # exactly the kept groups train
        assert row["kept_fraction"] == pytest.approx(1 - row["dropped_groups"] / (row["generation_rounds"] * 4))
    assert [r["batch_groups"] for r in tr.history] == [4, 4, 4]
    assert any(r["generation_rounds"] > 1 and r["dropped_groups"] > 0 for r in tr.history)


def test_dynamic_sampling_round_cap_trains_on_what_it_has():
    has_signal = lambda p: p.answer % 5 == 0                                  # noqa: E731
    tr = RLTrainer(tiny_llama(), patchy_task(has_signal), small_cfg(algo="dapo", steps=3, dynamic_sampling_max_rounds=2))
    seen = _count_trained_rows(tr)
    with pytest.warns(UserWarning, match="dynamic sampling collected"):
        for step in range(3):
            expect = _expected_refill(tr, step, has_signal)
            n0 = len(seen)
            row = tr.rl_step()
            assert (row["generation_rounds"], row["dropped_groups"], row["batch_groups"]) == expect, (step, row)
            assert sum(seen[n0:]) == row["batch_groups"] * tr.cfg.group_size
    assert all(r["generation_rounds"] <= 2 for r in tr.history)
    assert any(r["batch_groups"] < 4 for r in tr.history)
    # without dynamic sampling: one round, nothing dropped, the full batch
    tr = RLTrainer(tiny_llama(), patchy_task(has_signal), small_cfg(algo="dapo", steps=1, dynamic_sampling=False))
    row = tr.rl_step()
    assert (row["generation_rounds"], row["dropped_groups"], row["batch_groups"], row["kept_fraction"]) == (1, 0, 4, 1.0)


def test_nonfinite_loss_skips_the_step(tmp_path):
    model = tiny_llama()
    tr = RLTrainer(model, signal_task(), small_cfg(steps=1, minibatches=2))
    real = tr.policy.token_logprobs
    calls = {"n": 0}

    def poisoned(*a, **k):
        calls["n"] += 1
        logp, ent = real(*a, **k)
        return (logp * float("nan"), ent) if calls["n"] == 1 else (logp, ent)

    tr.policy.token_logprobs = poisoned
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.warns(UserWarning, match="non-finite loss"):
        row = tr.rl_step()
    assert row["skipped_steps"] == 1 and row["optimizer_steps"] == 2
    assert all(torch.isfinite(v).all() for v in model.state_dict().values())
    assert any(not torch.equal(v, before[k]) for k, v in model.state_dict().items())   # the 2nd minibatch applied


def test_lr_schedule_and_config_errors():
    cfg = RLConfig(steps=10, lr=1.0, warmup_steps=2, lr_schedule="cosine", lr_min_ratio=0.0)
    assert lr_at(cfg, 0) == 0.5 and lr_at(cfg, 1) == 1.0 and abs(lr_at(cfg, 10)) < 1e-12
    assert abs(lr_at(cfg, 6) - 0.5) < 1e-12
    with pytest.raises(LumosError, match="'algo' parameter of RLConfig must be one of the registered objectives.*'group_size' parameter of RLConfig must be an int in the range \\[2, inf\\)"):
        RLConfig(algo="ppo", group_size=0)
    with pytest.raises(LumosError, match="beta"):
        RLConfig(algo="cispo", beta=0.1)
    assert RLConfig(algo="dapo").use_dynamic_sampling and not RLConfig().use_dynamic_sampling
    assert RLConfig(algo="cispo").clip == {"eps_low": None, "eps_high": 4.0}


def _ddp_setup(algo):
    # dapo: dynamic sampling with refill; the two processes see different numbers of groups with signal
    # (G = 3 with 2 minibatches: a group's samples fall in minibatches by its position in the batch)
    if algo == "cispo":
        return signal_task(), small_cfg(steps=2, adam_eps=1e-8)
    return patchy_task(), small_cfg(algo=algo, steps=2, adam_eps=1e-8, group_size=3)


def _ddp_worker(rank, world, out_dir, algo):
    from lumos.models import tiny_hybrid

    model = tiny_hybrid(32, 2, router_aux_loss_coef=0.0)  # the MoE aux loss is per process (batch-nonlinear)
    tr = RLTrainer(model, *_ddp_setup(algo))
    tr.train()
    if rank == 0:
        torch.save({k: v.clone() for k, v in model.state_dict().items()}, f"{out_dir}/ddp.pt")
        torch.save([{k: v for k, v in r.items() if k != "sample"} for r in tr.history], f"{out_dir}/hist.pt")


@pytest.mark.distributed
@pytest.mark.parametrize("algo", ["cispo", "dapo"])
def test_two_process_gloo_equals_single_process(algo, tmp_path):
    spawn(_ddp_worker, nprocs=2, args=(str(tmp_path), algo))
    from lumos.models import tiny_hybrid

    ddp = torch.load(tmp_path / "ddp.pt", weights_only=True)
    model = tiny_hybrid(32, 2, router_aux_loss_coef=0.0)  # the MoE aux loss is per process (batch-nonlinear)
    single = RLTrainer(model, *_ddp_setup(algo))
    single.train()
    hist = torch.load(tmp_path / "hist.pt", weights_only=False)
    for key in ("generation_rounds", "dropped_groups", "batch_groups", "optimizer_steps"):
        assert [r[key] for r in hist] == [r[key] for r in single.history], key
    if algo == "dapo":
        assert any(r["generation_rounds"] > 1 for r in hist)
    for k, v in model.state_dict().items():
        # same global batch and update; only float summation order differs. Adam with the paper's eps 1e-15
        # turns float noise in near-zero gradient entries into ±lr steps, so this test uses eps 1e-8; a wrong
        # normaliser or a missing all-reduce moves parameters by O(lr) = 3e-3
        assert torch.allclose(ddp[k], v, atol=3e-5, rtol=0), (k, float((ddp[k] - v).abs().max()))


def test_compiled_rollouts_equal_eager_rollouts():
    from lumos.models import tiny_hybrid

    task = signal_task()
    eager = RLTrainer(tiny_hybrid(32, 2, seed=3), task, small_cfg())
    fast = RLTrainer(tiny_hybrid(32, 2, seed=3), task, small_cfg(compile_rollouts=True))
    assert fast.policy.compile and not eager.policy.compile
    _, ro_e, _ = eager._rollout(0)
    _, ro_f, _ = fast._rollout(0)
    assert torch.equal(ro_f.response_ids, ro_e.response_ids)
    assert torch.equal(ro_f.response_mask, ro_e.response_mask)
    torch.testing.assert_close(ro_f.logprobs, ro_e.logprobs, atol=1e-4, rtol=1e-4)


def test_zero_advantage_minibatches_step_on_the_aux_loss_unless_skipped():
    """A batch whose groups all have equal rewards has exactly zero advantages (no float residue); the MoE
    load-balancing term alone still moves the weights (AdamW eps 1e-15), unless skip_zero_advantage_steps."""
    from lumos.models import tiny_hybrid
    from lumos.rl.tasks import CallableTask

    add = get_task("addition", digits=1)
    flat = CallableTask(lambda n, seed: add.generate(n, seed), verifier=lambda p, c: Reward(0.1, False), name="flat")
    moved = {}
    for skip in (False, True):
        model = tiny_hybrid(16, 2)
        before = {k: v.clone() for k, v in model.state_dict().items()}
        tr = RLTrainer(model, flat, small_cfg(steps=1, minibatches=2, skip_zero_advantage_steps=skip))
        row = tr.rl_step()
        assert row["zero_advantage_minibatches"] == 2
        assert (row["optimizer_steps"], row["zero_advantage_skips"]) == ((0, 2) if skip else (2, 0))
        moved[skip] = [k for k, v in model.state_dict().items() if not torch.equal(v, before[k])]
    assert moved[True] == [] and any("router" in k or "gate" in k for k in moved[False]), moved
    # rewards with spread: nothing is flagged, nothing skipped
    tr = RLTrainer(tiny_hybrid(16, 2), signal_task(), small_cfg(steps=1, skip_zero_advantage_steps=True))
    row = tr.rl_step()
    assert (row["zero_advantage_minibatches"], row["zero_advantage_skips"], row["optimizer_steps"]) == (0, 0, 2)


# ------------------------------------------------------------------------------ a user's own model and tokenizer
def _own_setup(rows=None):
    from lumos.models.tokenizer import TransformersTokenizer
    from lumos.rl.rewards import RewardFunctions
    from lumos.rl.tasks.dataset import DatasetTask
    from models._own_model import tiny_qwen, tiny_tokenizer

    def spread(completions, completion_ids, **kw):    # a dense reward of the tokens, so groups never tie
        return [sum(ids) % 97 / 97 for ids in completion_ids]

    rows = rows or [{"prompt": f"What is {i} plus {i}?", "answer": str(2 * i)} for i in range(6)]
    tok = TransformersTokenizer(tiny_tokenizer())
    task = DatasetTask(rows, rewards=RewardFunctions([spread]), eval_fraction=0.34)
    return tok, task, lambda seed=0: tiny_qwen(len(tok), seed=seed, eos=tok.eos_token_id, pad=tok.pad_token_id)


def test_own_tokenizer_resume_from_hf_checkpoints_is_bit_identical(tmp_path):
    tok, task, build = _own_setup()
    cfg = small_cfg(steps=3, checkpoint_every=1, eval_every=3, eval_problems=2, max_new_tokens=4)
    run_a = RunDir.create("rl-a", {}, out=tmp_path / "a", seed=0)
    full = RLTrainer(build(), task, cfg, tokenizer=tok, run=run_a)
    assert full.policy.eos_token_id == tok.eos_token_id and full.policy.pad_token_id == tok.pad_token_id
    full.train()
    held = {p.prompt for p in full.eval_problems}
    assert held and not held & {p.prompt for p in task.train_problems}
    run_b = RunDir.create("rl-b", {}, out=tmp_path / "b", seed=0)
    RLTrainer(build(), task, cfg, tokenizer=tok, run=run_b).train(stop_after=2)
    ckpt = run_b.path / "checkpoints" / "step_000002"
    assert (ckpt / "config.json").is_file() and (ckpt / "tokenizer.json").is_file()
    torch.manual_seed(123)
    run_b2 = RunDir.create("rl-b", {}, out=tmp_path / "b", seed=0, resume=True)
    resumed = RLTrainer(build(seed=7), task, cfg, tokenizer=tok.tok, run=run_b2)   # a raw transformers tokenizer
    assert resumed.resume() == 2
    resumed.train()
    for k, v in full.model.state_dict().items():
        assert torch.equal(v, resumed.model.state_dict()[k]), k
    rows_a, rows_b = read_jsonl(run_a.metrics_path), read_jsonl(run_b2.metrics_path)
    assert [_numeric(r) for r in rows_a] == [_numeric(r) for r in rows_b]


def test_a_batch_past_the_models_declared_length_is_refused_not_run():
    tok, task, build = _own_setup()
    tr = RLTrainer(build(), task, small_cfg(steps=1, max_new_tokens=600), tokenizer=tok)   # tiny_qwen declares 512
    with pytest.raises(LumosError, match=r"Task 'dataset': \d+ prompt tokens \+ max_new_tokens 600 exceed the "
                                         r"model's max_position_embeddings = 512"):
        tr.train()


def test_a_foreign_model_without_its_tokenizer_is_refused():
    _, task, build = _own_setup()
    with pytest.raises(LumosError, match="No tokenizer given"):
        RLTrainer(build(), task, small_cfg())


def test_lora_trains_the_adapter_and_the_kl_reference_is_the_base_model(tmp_path):
    peft = pytest.importorskip("peft")
    from lumos.rl.policy import AdapterDisabledPolicy

    tok, task, build = _own_setup()
    base = build()
    frozen = {k: v.clone() for k, v in base.state_dict().items()}
    model = peft.get_peft_model(base, peft.LoraConfig(r=2, lora_alpha=4, target_modules="all-linear",
                                                      task_type="CAUSAL_LM", lora_dropout=0.0))
    with RunDir.create("rl-lora", {}, out=tmp_path / "lora", seed=0) as run:
        tr = RLTrainer(model, task, small_cfg(algo="grpo", beta=0.1, steps=2, max_new_tokens=4), tokenizer=tok, run=run)
        assert isinstance(tr.ref_policy, AdapterDisabledPolicy) and tr.ref_model is None
        hist = tr.train()
    assert all(math.isfinite(r["loss"]) for r in hist) and "kl" in hist[-1]
    lora = {n: p for n, p in model.named_parameters() if "lora_" in n}
    assert lora and all(p.requires_grad for p in lora.values())
    assert any(bool(p.abs().sum() > 0) for n, p in lora.items() if "lora_B" in n)     # B starts at 0: it moved
    for name, value in model.get_base_model().state_dict().items():                    # the base never moves
        key = name.replace("base_layer.", "")
        if "lora_" not in name:
            assert torch.equal(value, frozen[key]), name
    # the reference (adapter off) is exactly the original base model
    fresh = build()
    ids = torch.tensor([tok.encode_prompt("What is 1 plus 1?")])
    mask = torch.ones_like(ids)
    with torch.no_grad():
        assert_close_ref = torch.testing.assert_close
        assert_close_ref(tr.ref_policy.forward_logits(ids, mask), fresh(input_ids=ids, attention_mask=mask).logits)
    ckpt = run.path / "checkpoints" / "step_000002"
    assert (ckpt / "adapter_model.safetensors").is_file() and (ckpt / "adapter_config.json").is_file()
    assert not (ckpt / "model.safetensors").exists()


def test_batch_scaled_advantages_across_processes_skip_unscorable_samples(monkeypatch):
    """Two processes with advantage_scale="batch": one unscorable sample (NaN) gets advantage 0 and leaves the
    others finite, as on one process (here the other process holds the same rewards)."""
    import types

    import lumos.rl.trainer as trainer_module

    nan = float("nan")
    r = torch.tensor([1, 0, nan, 1, 0, 1, 0, 1.0])
    fake = types.SimpleNamespace(cfg=types.SimpleNamespace(group_size=4, resolved_advantage_scale="batch"), world=2)
    monkeypatch.setattr(trainer_module.dist, "all_reduce_sum", lambda t: t * 2)
    adv = RLTrainer._advantages(fake, r)
    assert torch.isfinite(adv).all() and adv[2] == 0 and adv[0] > 0 > adv[1]
