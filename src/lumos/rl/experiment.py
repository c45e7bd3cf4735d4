"""Runs behind the CLI: build a model, warm-start it, train with one algorithm, or compare several over seeds.

``train_run`` writes one run directory (metrics.jsonl, plots, checkpoints, report.html); ``compare_runs``
trains every (algorithm, seed) pair from the *same* warm-started weights per seed and reports the curves
(mean and min–max spread over seeds) and a steps-to-target table.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lumos.core.errors import LumosError, one_line
from lumos.core.io import load_tensors, read_json, save_tensors
from lumos.core.progress import track
from lumos.core.rundir import RunDir
from lumos.core.validation import check_nonneg_int, check_positive_int
from lumos.models import tiny_hybrid
from lumos.rl.config import DataConfig, ModelOptions, RLConfig
from lumos.rl.plugins import call_user
from lumos.rl.reporting import Board, check_report_to, open_board
from lumos.rl.sft import SFTConfig, sft_warm_start
from lumos.rl.tasks.base import Task
from lumos.rl.tasks.user import resolve_task
from lumos.rl.trainer import RLTrainer

__all__ = ["build_model", "load_model", "build_task", "warm_start", "train_run", "compare_runs", "steps_to_target",
           "plot_curves"]

MODEL_CHOICES = ("hybrid", "hybrid-small", "llama")


def build_model(spec: str, seed: int = 0, dtype: torch.dtype | None = None) -> nn.Module:
    """``hybrid`` (hidden 48, 2 layers), ``hybrid-small`` (hidden 64, 4 layers), ``llama`` (a tiny random
    transformers Llama with the byte vocabulary), or a checkpoint directory (lumos/MiniMax or transformers).

    Only the weights: :func:`load_model` also loads the model's tokenizer (use it for a directory)."""
    if spec == "hybrid":
        return tiny_hybrid(48, 2, seed=seed)
    if spec == "hybrid-small":
        return tiny_hybrid(64, 4, seed=seed)
    if spec == "llama":
        import transformers

        torch.manual_seed(seed)
        cfg = transformers.LlamaConfig(vocab_size=259, hidden_size=48, intermediate_size=96, num_hidden_layers=2,
                                       num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                                       bos_token_id=257, eos_token_id=258, pad_token_id=256)
        return transformers.LlamaForCausalLM(cfg)
    path = Path(spec)
    if not (path / "config.json").is_file():
        raise LumosError(f"--model {spec!r} is neither one of {', '.join(MODEL_CHOICES)} nor a checkpoint directory "
                         "with config.json.")
    raw = read_json(path / "config.json")
    if not isinstance(raw, dict):
        raise LumosError(f"{path / 'config.json'} must hold a JSON object; got {type(raw).__name__}.")
    model_type = str(raw.get("model_type", ""))
    if not any(path.glob("*.safetensors")):
        pickles = sorted(p.name for p in path.glob("*.bin")) + sorted(p.name for p in path.glob("*.pt"))
        what = f"only pickle files ({', '.join(pickles[:3])})" if pickles else "no weight files"
        raise LumosError(f"--model {spec}: the directory holds {what}; lumos loads safetensors only (pickles can run "
                         "code). Convert with transformers' save_pretrained(..., safe_serialization=True).")
    from lumos.models.minimax.config import is_minimax_model_type

    if is_minimax_model_type(model_type):
        from lumos.models import load_pretrained

        return load_pretrained(path, dtype=dtype)
    import transformers

    from lumos.models.transformers_lm import quiet_transformers

    try:
        with quiet_transformers():   # the absolute path is what a peft adapter records as its base model
            return transformers.AutoModelForCausalLM.from_pretrained(path.resolve(), use_safetensors=True,
                                                                     dtype=dtype or torch.float32, local_files_only=True)
    except (OSError, ValueError, KeyError) as exc:
        raise LumosError(f"--model {spec}: transformers cannot load it ({one_line(exc, 200)}).") from None


def load_model(spec: str, seed: int = 0, options: ModelOptions | None = None,
               data: DataConfig | None = None) -> tuple[nn.Module, Any]:
    """The model of ``spec`` and *its* tokenizer, placed and prepared as ``options`` say.

    A built-in model (``hybrid``, ``hybrid-small``, ``llama``) uses lumos's byte tokenizer; a directory uses the
    tokenizer saved beside the model (:func:`lumos.models.tokenizer.model_tokenizer`: ``AutoTokenizer``, chat
    template, checked against the embedding), and without one is an error. ``options``: device and dtype (a
    transformers model goes to CUDA in bfloat16 where CUDA is present; lumos's own models stay on the CPU in
    their dtype unless named, as before, GPUs being for ``--fsdp`` under ``torchrun``), gradient checkpointing,
    a peft LoRA adapter (``lora_r`` > 0). ``data``: chat template on/off, system prompt.
    """
    from lumos.models.tokenizer import ByteTokenizer, model_tokenizer
    from lumos.rl.checkpoint import is_hf_model

    options = options or ModelOptions()
    data = data or DataConfig()
    requested = None if options.dtype == "auto" else getattr(torch, options.dtype)
    model = build_model(spec, seed=seed, dtype=requested)
    if is_hf_model(model):
        device = options.resolved_device()
        dtype = requested or (torch.bfloat16 if device.startswith("cuda") else torch.float32)
    else:
        if options.device not in ("auto", "cpu"):
            raise LumosError(f"--device {options.device}: lumos's own models ({type(model).__name__}) train on the CPU "
                             "in one process; on GPUs run them under torchrun with --fsdp. --device applies to "
                             "transformers models.")
        device, dtype = "cpu", requested
    if spec in MODEL_CHOICES:
        if data.system_prompt is not None:
            raise LumosError(f"--system-prompt needs a chat template; the built-in model {spec!r} uses lumos's byte "
                             "tokenizer, which has none. Drop --system-prompt.")
        tokenizer: Any = ByteTokenizer()
    else:
        tokenizer = model_tokenizer(spec, model, chat_template=data.chat_template, system_prompt=data.system_prompt)
    if dtype is not None:
        model = model.to(dtype)
    if options.gradient_checkpointing:
        enable = getattr(model, "gradient_checkpointing_enable", None)
        if enable is None:
            raise LumosError(f"--gradient-checkpointing supports transformers models; {type(model).__name__} has no "
                             "gradient_checkpointing_enable().")
        enable()
    if options.lora_r:
        model = add_lora(model, options)
    return model.to(device), tokenizer


def add_lora(model: nn.Module, options: ModelOptions) -> nn.Module:
    """``model`` wrapped in a peft LoRA adapter (rank ``lora_r``, alpha ``lora_alpha`` or 2·r, ``lora_targets``)."""
    from lumos.rl.checkpoint import is_hf_model

    if not is_hf_model(model):
        raise LumosError(f"--lora-r trains a peft LoRA adapter on a transformers model; {type(model).__name__} is "
                         "not one. Drop --lora-r, or use a transformers model directory.")
    try:
        import peft
    except ImportError:  # pragma: no cover
        raise LumosError("--lora-r needs the peft package: pip install 'lumos[rl]'.") from None
    targets: Any = options.lora_targets
    if targets != "all-linear":
        targets = [t.strip() for t in targets.split(",") if t.strip()]
    # peft annotates lora_alpha as int but scales by lora_alpha / r in float: lumos takes a float alpha
    alpha = options.lora_alpha or 2 * options.lora_r
    cfg = peft.LoraConfig(r=options.lora_r,
                          lora_alpha=alpha,  # pyright: ignore[reportArgumentType] - peft's int is too narrow (above)
                          target_modules=targets, task_type="CAUSAL_LM", lora_dropout=0.0)
    try:
        return peft.get_peft_model(model, cfg)
    except ValueError as exc:
        from lumos.core.errors import one_line

        raise LumosError(f"--lora-targets {options.lora_targets!r}: {one_line(exc, 200)}") from None


def build_task(cfg: RLConfig, data: DataConfig | None = None, evaluate: bool | None = None) -> Task:
    """The task of ``cfg.task``: a data file / dataset directory with ``data``'s rewards, columns and held-out
    split (held out only when the run evaluates: ``evaluate``, default ``cfg.eval_every > 0``), or a registered /
    user task (which take no ``data`` options). A run that evaluates checks here that the task has held-out
    problems, so that a task without them fails before any work."""
    import functools

    from lumos.rl.rewards import load_reward_functions
    from lumos.rl.tasks.base import call_with_kwargs
    from lumos.rl.tasks.user import data_task, is_data_spec

    data = data or DataConfig()
    evaluate = bool(cfg.eval_every) if evaluate is None else evaluate
    if is_data_spec(cfg.task):
        rewards = load_reward_functions(data.reward, data.reward_weights) if data.reward else None
        kwargs = {"prompt_column": data.prompt_column, "rewards": rewards, "eval_data": data.eval_data,
                  "eval_fraction": data.eval_fraction if evaluate else 0.0, "split_seed": cfg.seed,
                  **cfg.task_kwargs}
        task = call_with_kwargs(functools.partial(data_task, cfg.task), kwargs, f"task file {cfg.task!r}")
    else:
        given = [flag for flag, on in (("--reward", bool(data.reward)), ("--eval-data", data.eval_data is not None),
                                       ("--prompt-column", data.prompt_column != DataConfig.prompt_column)) if on]
        if given:
            raise LumosError(f"{', '.join(given)} appl{'y' if len(given) > 1 else 'ies'} to data-file tasks (--task "
                             f"FILE.jsonl/.json/.csv/.parquet or a saved dataset directory), not to {cfg.task!r}.")
        task = resolve_task(cfg.task, **cfg.task_kwargs)
    if evaluate:
        task.held_out(1, seed=0)     # a task without held-out problems: one clear error now
    return task


#: how many problems of a generated (not data-file) task :func:`check_prompts` renders before a run
PROMPT_SAMPLE = 8


def check_prompts(task: Task, tokenizer: Any, model: nn.Module | None = None, max_new_tokens: int = 0) -> None:
    """Before any work, the prompts of a task must render with ``tokenizer`` (a conversational prompt needs a
    chat template that works) and, given ``model``, each must leave room for ``max_new_tokens`` in the length the
    model's config declares (:func:`lumos.rl.policy.check_context`; the trainer checks every later batch too).
    A data task's prompts are all checked (its ``train_problems`` and ``eval_problems``); any other task's, a
    sample of :data:`PROMPT_SAMPLE` from its ``generate``."""
    from lumos.models.tokenizer import encode_prompt, render_prompt
    from lumos.rl.policy import check_context, context_limit

    problems = list(getattr(task, "train_problems", [])) + list(getattr(task, "eval_problems", []))
    if not problems:
        problems = call_user(task.generate, f"Task {task.name!r}: generate()", PROMPT_SAMPLE, seed=0)
    if not problems:
        return
    limit = context_limit(model) if model is not None else None
    if limit is None:   # no length to check: render one text and one chat prompt (the template's failures)
        for kind in (False, True):
            first = next((p for p in problems if isinstance(p.prompt, list) == kind), None)
            if first is not None:
                render_prompt(tokenizer, first.prompt)
        return
    # encoding renders too: every prompt is measured once
    lengths = [len(encode_prompt(tokenizer, p.prompt)) for p in track(problems, "measuring prompts")]
    i = max(range(len(lengths)), key=lengths.__getitem__)
    check_context(lengths[i], max_new_tokens, limit,
                  f"Task {task.name!r}, prompt {one_line(repr(problems[i].prompt), 60)}")


def warm_start(model: nn.Module, task: Task, steps: int, seed: int, cache: Path | None = None,
               log: Any = None, tokenizer: Any = None) -> list[float]:
    """SFT ``model`` for ``steps`` (0 = skip) with ``tokenizer`` (the model's; None for lumos's byte-vocabulary
    models); with ``cache`` the weights are saved/loaded there."""
    if steps <= 0:
        return []
    if cache is not None and cache.is_file():
        model.load_state_dict(load_tensors(cache), strict=True)
        return []
    losses = sft_warm_start(model, task, SFTConfig(steps=steps, seed=seed), tokenizer=tokenizer, log=log)
    if cache is not None:
        save_tensors(cache, {k: v.detach().clone() for k, v in model.state_dict().items()})
    return losses


def plot_curves(runs: dict[str, list[list[dict[str, Any]]]], keys: tuple[str, ...], title: str = "") -> Any:
    """One panel per metric; per label the mean over seeds and the min–max band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(keys), figsize=(4.2 * len(keys), 3.2), squeeze=False)
    for ax, key in zip(axes[0], keys):
        for label, histories in runs.items():
            steps = sorted({r["step"] for h in histories for r in h if key in r})
            if not steps:
                continue
            vals = torch.tensor([[next((r[key] for r in h if r["step"] == s and key in r), math.nan) for s in steps]
                                 for h in histories], dtype=torch.float64)
            mean = vals.nanmean(0)
            lo = torch.where(vals.isnan(), torch.inf, vals).min(0).values
            hi = torch.where(vals.isnan(), -torch.inf, vals).max(0).values
            ax.plot(steps, mean.tolist(), label=label)
            if vals.shape[0] > 1:
                ax.fill_between(steps, lo.tolist(), hi.tolist(), alpha=0.2)
        ax.set_xlabel("RL step")
        ax.set_title(key)
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def steps_to_target(history: list[dict[str, Any]], target: float, key: str = "eval_accuracy") -> int | None:
    """First RL step whose ``key`` ≥ ``target`` (None if never)."""
    for row in history:
        if key in row and row[key] >= target:
            return int(row["step"])
    return None


def _summary_rows(history: list[dict[str, Any]], every: int = 1) -> list[dict[str, Any]]:
    keys = ("step", "reward", "accuracy", "eval_accuracy", "response_length", "entropy", "clip_frac",
            "is_weight_mean", "grad_norm", "tokens_per_s")
    return [{k: row[k] for k in keys if k in row} for row in history if row["step"] % every == 0 or row is history[-1]]


def shard_for_training(model: nn.Module, expert_parallel: int = 1) -> nn.Module:
    """FSDP2 (and expert parallelism over ``expert_parallel`` ranks) for the trainers: gradients summed."""
    from lumos.distributed.parallel import make_mesh, shard_model
    from lumos.models.minimax.modeling import HybridLM

    if not isinstance(model, HybridLM):
        raise LumosError(f"--fsdp shards lumos hybrid models; got {type(model).__name__}. Use --model hybrid, "
                         "hybrid-small or a MiniMax checkpoint directory.")
    mesh = make_mesh(expert_parallel, num_experts=model.config.num_local_experts)
    return shard_model(model, mesh, expert_parallel=expert_parallel > 1, grad_reduce="sum")


def train_run(cfg: RLConfig, model_spec: str = "hybrid", warm_start_steps: int = 200, out: str | Path | None = None,
              resume: bool = False, task: Task | None = None, overrides: dict[str, Any] | None = None,
              overwrite: bool | None = None, fsdp: bool = False, expert_parallel: int = 1,
              data: DataConfig | None = None, model_options: ModelOptions | None = None,
              report_to: tuple[str, ...] = ()) -> tuple[RunDir | None, list[dict[str, Any]]]:
    """``lumos rl train``: warm start, RL, metrics, plots, checkpoints and a report in one run directory.

    Order: model → warm start → :class:`RLTrainer` (so GRPO's KL reference is the warm-started policy).
    Under ``torchrun`` (gloo on CPU, nccl on GPU) every process trains its share of each rollout batch and
    gradients are all-reduced; only rank 0 writes the run directory (other ranks return ``None`` as run).
    Every rank runs the same seeded warm start, so all start from identical weights.

    With ``resume=True`` the run in ``out`` continues from its latest checkpoint. ``cfg`` must equal the stored
    configuration except for the fields named in ``overrides`` (recorded in manifest.json); ``model_spec`` and
    ``warm_start_steps`` must equal the stored ones. Metrics rows up to the checkpoint (warm-start rows included)
    are kept.

    ``fsdp``: shard the model with FSDP2 (:func:`shard_for_training`; ``expert_parallel`` > 1 also spreads the
    experts, and implies ``fsdp``): warm start and RL then train the sharded model, FSDP2 reduces the gradients
    and checkpoints are distributed (``torch.distributed.checkpoint``).

    ``data`` (:class:`DataConfig`): reward functions, prompt column, held-out data and chat-template options of a
    data-file task; ``model_options`` (:class:`ModelOptions`): device, dtype, gradient checkpointing, LoRA. A
    model directory is loaded with its own tokenizer (:func:`load_model`), used for prompts, rollouts, rewards,
    warm start, evaluation and logged samples, and saved into every checkpoint. Everything is checked (task, data,
    reward functions, model, tokenizer, prompts) before the run directory exists. ``report_to``: also log the
    metrics to ``"tensorboard"`` (``<run>/tensorboard``) and/or ``"wandb"`` (:mod:`lumos.rl.reporting`).
    """
    from lumos.core.seed import seed_everything
    from lumos.distributed import process_group as dist

    check_nonneg_int(warm_start_steps, "warm_start_steps", owner="train_run")
    data, model_options = data or DataConfig(), model_options or ModelOptions()
    report_to = check_report_to(report_to)
    check_positive_int(expert_parallel, "--expert-parallel", owner="lumos rl train",
                       fix="1 keeps every expert on each rank; N > 1 spreads them over N ranks.")
    if resume:
        if out is None:
            raise LumosError("--resume needs --out DIR, the run directory to continue.")
        _check_resume(Path(out), cfg, model_spec, warm_start_steps, overrides or {}, data, model_options)
        _check_resume_layout(Path(out), fsdp or expert_parallel > 1, expert_parallel)
    task = task or build_task(cfg, data)
    # a bad --model, a missing or mismatched tokenizer, or a prompt it cannot render fails before the run directory
    model, tokenizer = load_model(model_spec, cfg.seed, model_options, data)
    check_prompts(task, tokenizer, model, cfg.max_new_tokens)
    if (fsdp or expert_parallel > 1) and model_options.lora_r:
        raise LumosError("--lora-r with --fsdp / --expert-parallel is not supported; train the adapter unsharded.")
    dist.init_distributed()
    main = dist.is_main()
    if fsdp or expert_parallel > 1:
        from lumos.distributed.parallel import check_expert_parallel

        check_expert_parallel(expert_parallel, dist.world_size(),
                              getattr(getattr(model, "config", None), "num_local_experts", None))
        if cfg.beta > 0:
            raise LumosError("--beta > 0 (a KL reference model) is not supported with --fsdp / --expert-parallel "
                             "yet; use --beta 0 (CISPO's default) or train without sharding.")
        model = shard_for_training(model, expert_parallel)
    config = {"rl": cfg.to_dict(), "model": model_spec, "warm_start_steps": warm_start_steps,
              "world_size": dist.world_size(), "fsdp": fsdp or expert_parallel > 1, "expert_parallel": expert_parallel,
              "data": data.to_dict(), "model_options": model_options.to_dict()}
    run = RunDir.create("rl train", config, out=out, seed=cfg.seed, title=f"lumos rl train — {cfg.algo} on {task.name}",
                        resume=resume, overwrite=overwrite, overrides=overrides) if main else None
    try:
        seed_everything(cfg.seed)  # build_model seeds itself, so building it above changes nothing here
        reference = Path(out) / "reference.safetensors" if out is not None else None
        if not resume:
            warm_start(model, task, warm_start_steps, cfg.seed, tokenizer=tokenizer,
                       log=(lambda **r: run.log({"phase": "sft", **r})) if run is not None else None)
            if cfg.beta > 0 and run is not None:  # the KL reference, for a resume
                save_tensors(run.path / "reference.safetensors",
                             {k: v.detach().clone() for k, v in model.state_dict().items()})
        elif cfg.beta > 0:
            if reference is None or not reference.is_file():
                warm_start(model, task, warm_start_steps, cfg.seed, tokenizer=tokenizer)  # seeded: the same weights
            else:
                model.load_state_dict(load_tensors(reference), strict=True)
        # after the warm start: the KL reference is the SFT policy
        trainer = RLTrainer(model, task, cfg, tokenizer=tokenizer, run=run)
        board = open_board(run, report_to)
        try:   # the sinks close however the run ends, its step-0 evaluation included
            _start_history(trainer, run, out if resume else None, board)
            history = trainer.train(callback=board)
        finally:
            board.close()
        if run is not None:
            _train_report(run, cfg, task, model_spec, warm_start_steps, trainer, history)
    except BaseException as exc:
        if run is not None:
            run.finish(f"failed: {type(exc).__name__}")
        raise
    if run is not None:
        run.finish("ok")
    return run, history


def _start_history(trainer: RLTrainer, run: RunDir | None, resume_from: str | Path | None,
                   board: Board | None = None) -> None:
    """Resume the trainer from ``resume_from``'s latest checkpoint, or start a fresh history with the step-0
    evaluation (when the config evaluates at all), logged to the run and to ``board``."""
    if resume_from is not None:
        trainer.resume(resume_from)
        return
    trainer.history = []
    if trainer.cfg.eval_every:
        init = {"step": 0, "eval_accuracy": trainer.evaluate(), "eval_reward": trainer.last_eval_reward}
        trainer.history.append(init)
        if run is not None:
            run.log(init)
        if board is not None:
            board(init)


def _check_resume(out: Path, cfg: RLConfig, model_spec: str, warm_start_steps: int,
                  overrides: dict[str, Any], data: DataConfig | None = None,
                  model_options: ModelOptions | None = None) -> None:
    """The stored run must match ``cfg`` except for ``overrides``; its state must be readable."""
    from lumos.rl.checkpoint import latest_checkpoint

    stored = RunDir.read_config(out)
    if not isinstance(stored.get("rl"), dict):
        raise LumosError(f"{out}/config.json has no 'rl' configuration; it was not written by 'lumos rl train'.")
    old = RLConfig.from_dict(stored["rl"]).to_dict()
    new = cfg.to_dict()
    changed = sorted(k for k in new if new[k] != old.get(k))
    unlisted = [k for k in changed if k not in overrides]
    if unlisted:
        listing = ", ".join(f"{k} (stored {old.get(k)!r}, now {new[k]!r})" for k in unlisted)
        raise LumosError(f"Resuming {out} with a different configuration: {listing}. Resume with the stored "
                         "configuration, or list intended changes with --override KEY=VALUE.")
    for key, value, name in (("model", model_spec, "--model"), ("warm_start_steps", warm_start_steps, "--warm-start")):
        if key in stored and stored[key] != value:
            raise LumosError(f"Resuming {out}: {name} {value!r} differs from the stored {stored[key]!r}; "
                             "a run cannot change this on resume.")
    for key, now in (("data", data), ("model_options", model_options)):
        if now is not None and key in stored and stored[key] != now.to_dict():
            old_d, new_d = stored[key] if isinstance(stored[key], dict) else {}, now.to_dict()
            diff = ", ".join(f"{k} (stored {old_d.get(k)!r}, now {v!r})" for k, v in new_d.items() if old_d.get(k) != v)
            raise LumosError(f"Resuming {out} with different {key.replace('_', ' ')}: {diff or stored[key]!r}; a run "
                             "cannot change this on resume.")
    ckpt = latest_checkpoint(out)
    if ckpt is None:
        raise LumosError(f"No checkpoint found under {out}. Train with --checkpoint-every N first, or start a new "
                         "run.")
    state = read_json(ckpt / "state.json")
    if not isinstance(state, dict) or not isinstance(state.get("step"), int):
        raise LumosError(f"{ckpt / 'state.json'} is damaged (no integer 'step'). Delete {ckpt} so that the "
                         "previous checkpoint is used, or start a new run.")
    if cfg.steps < state["step"]:
        raise LumosError(f"Resuming {out}: steps={cfg.steps} is below the step its checkpoint reached "
                         f"({state['step']}); a resume can only continue. Override steps to {state['step']} or more, "
                         "or start a new run.")


def _check_resume_layout(out: Path, sharded: bool, expert_parallel: int) -> None:
    """A resume keeps the stored run's layout: FSDP (distributed checkpoints) or not, and the expert-parallel
    degree; checked before anything is written, so a refused resume changes nothing on disk."""
    stored = RunDir.read_config(out)
    was_sharded, was_ep = bool(stored.get("fsdp", False)), stored.get("expert_parallel", 1)
    if sharded != was_sharded or expert_parallel != was_ep:
        def say(s: bool, ep: Any) -> str:
            return ("FSDP" if s else "unsharded") + (f", expert_parallel={ep}" if ep != 1 else "")

        raise LumosError(f"Resuming {out}: the run was trained {say(was_sharded, was_ep)}, but this resume asks for "
                         f"{say(sharded, expert_parallel)}; its checkpoints are of the stored layout. Resume with "
                         "the stored --fsdp / --expert-parallel, or start a new run.")


def _train_report(run: RunDir, cfg: RLConfig, task: Task, model_spec: str, warm_start_steps: int,
                  trainer: RLTrainer, history: list[dict[str, Any]]) -> None:
    rows = [r for r in history if "reward" in r]
    sec = run.report.section("Training")
    sec.text(f"{cfg.algo} on task {task.name!r}: {cfg.steps} RL steps of {cfg.prompts_per_step} prompts × "
             f"{cfg.group_size} samples, {cfg.minibatches} optimizer steps per rollout batch; model {model_spec}, "
             f"warm start {warm_start_steps} SFT steps. Skipped (non-finite) optimizer steps: {trainer.skipped_steps}.")
    fig = plot_curves({cfg.algo: [history]}, ("reward", "eval_accuracy", "entropy", "clip_frac"))
    run.save_figure(fig, "training")
    sec.figure(fig)
    sec.table(_summary_rows(rows, every=max(len(rows) // 10, 1)), caption="Selected steps (all in metrics.jsonl).")


def compare_runs(algos: list[str], seeds: int, base: RLConfig, model_spec: str = "hybrid", warm_start_steps: int = 200,
                 target: float | None = None, out: str | Path | None = None,
                 task: Task | None = None, overwrite: bool | None = None, data: DataConfig | None = None,
                 model_options: ModelOptions | None = None) -> tuple[RunDir, list[dict[str, Any]]]:
    """``lumos rl compare``: every algorithm × seed from the same warm start per seed; curves + steps-to-target.

    Runs are short and not checkpointed: ``base.checkpoint_every`` must be 0."""
    check_positive_int(seeds, "seeds", owner="compare_runs")
    check_nonneg_int(warm_start_steps, "warm_start_steps", owner="compare_runs")
    if base.checkpoint_every:
        raise LumosError("compare_runs does not write checkpoints; set checkpoint_every=0 (drop --checkpoint-every).")
    if not algos:
        raise LumosError("compare_runs needs at least one algorithm.")
    if target is not None:
        from lumos.core.validation import check_probability

        check_probability(target, "target", owner="compare_runs")
    data, model_options = data or DataConfig(), model_options or ModelOptions()
    task = task or build_task(base, data, evaluate=True)     # compare always evaluates
    model, tokenizer = load_model(model_spec, base.seed, model_options, data)  # a bad --model fails before the run dir
    check_prompts(task, tokenizer, model, base.max_new_tokens)
    config = {"algos": algos, "seeds": seeds, "rl": base.to_dict(), "model": model_spec,
              "warm_start_steps": warm_start_steps, "target": target, "data": data.to_dict(),
              "model_options": model_options.to_dict()}
    run = RunDir.create("rl compare", config, out=out, seed=base.seed, title=f"lumos rl compare — {', '.join(algos)}",
                        overwrite=overwrite)
    histories: dict[str, list[list[dict[str, Any]]]] = {a: [] for a in algos}
    init_acc: list[float] = []
    with run:
        for s in range(seeds):
            seed = base.seed + s
            cache = run.path / "work" / f"warm_start_seed{seed}.safetensors"
            cache.parent.mkdir(parents=True, exist_ok=True)
            for algo in algos:
                cfg = dataclasses.replace(base, algo=algo, seed=seed, eps_low=None, eps_high=None,
                                          dynamic_sampling=None)
                model, tokenizer = load_model(model_spec, seed, model_options, data)
                warm_start(model, task, warm_start_steps, seed, cache=cache, tokenizer=tokenizer)
                trainer = RLTrainer(model, task, cfg, tokenizer=tokenizer)
                acc0 = trainer.evaluate()
                if algo == algos[0]:
                    init_acc.append(acc0)
                trainer.history = [{"step": 0, "eval_accuracy": acc0}]
                for row in trainer.train():
                    run.log({"algo": algo, "seed": seed, **{k: v for k, v in row.items() if k != "sample"}})
                histories[algo].append(trainer.history)
        if target is None:  # default: 5 points above the mean warm-start accuracy
            target = round(min(sum(init_acc) / len(init_acc) + 0.05, 1.0), 3)
        table = _compare_table(histories, target, base.steps)
        sec = run.report.section("CISPO vs DAPO vs GRPO")
        sec.text(f"Task {task.name!r}, model {model_spec}, warm start {warm_start_steps} SFT steps, {seeds} seed(s); "
                 f"{base.steps} RL steps of {base.prompts_per_step} prompts × {base.group_size} samples, "
                 f"{base.minibatches} optimizer steps per rollout batch, lr {base.lr}. Eval accuracy = mean over "
                 f"{base.eval_samples or 'greedy'} sample(s) at temperature {base.temperature} on {base.eval_problems} "
                 f"problems from a separate seed, every {base.eval_every} steps; target {target} "
                 f"(initial mean {sum(init_acc) / len(init_acc):.3f}).")
        fig = plot_curves(histories, ("reward", "accuracy", "eval_accuracy", "clip_frac"))
        run.save_figure(fig, "compare")
        sec.figure(fig)
        sec.table(table, caption="Steps to reach the target eval accuracy per seed ('-' = not reached).")
    return run, table


def _compare_table(histories: dict[str, list[list[dict[str, Any]]]], target: float, steps: int) -> list[dict[str, Any]]:
    rows = []
    for algo, hs in histories.items():
        reached = [steps_to_target(h, target) for h in hs]
        finals = [next((r["eval_accuracy"] for r in reversed(h) if "eval_accuracy" in r), math.nan) for h in hs]
        ok = [s for s in reached if s is not None]
        mean_f = sum(finals) / len(finals)
        std_f = math.sqrt(sum((f - mean_f) ** 2 for f in finals) / max(len(finals) - 1, 1))
        rows.append({
            "algo": algo,
            "steps to target (per seed)": ", ".join("-" if s is None else str(s) for s in reached),
            "reached": f"{len(ok)}/{len(hs)}",
            "mean steps (reached)": round(sum(ok) / len(ok), 1) if ok else "-",
            "final eval accuracy": f"{mean_f:.3f} ± {std_f:.3f}",
            "target": target,
        })
    return rows
