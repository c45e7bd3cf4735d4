"""``lumos rl train``, ``lumos rl compare``, ``lumos rl study``, ``lumos rl curves``, ``lumos rl fp32-head`` and
``lumos rl check-tasks`` (``lumos flops`` is in ``lumos.analysis.cli``)."""

from __future__ import annotations

import argparse
import dataclasses
import typing
from typing import Any

from lumos.cli.common import add_run_options, parse_csv_list, parse_key_values, print_table
from lumos.core.errors import LumosError
from lumos.core.validation import check_nonneg_int, check_positive_int

__all__ = ["register"]

_AUTO = {"auto": None, "on": True, "off": False}


def _rl_fields() -> list[tuple[dataclasses.Field, type, bool]]:
    """(field, value type, optional) of every RLConfig field that is a flag (metadata ``cli`` not False)."""
    from lumos.rl.config import RLConfig

    hints = typing.get_type_hints(RLConfig)
    out = []
    for f in dataclasses.fields(RLConfig):
        if f.metadata.get("cli", True):
            args = typing.get_args(hints[f.name])
            optional = type(None) in args
            base = next(a for a in args if a is not type(None)) if optional else hints[f.name]
            out.append((f, base, optional))
    return out


def _add_rl_options(p: argparse.ArgumentParser) -> None:
    """One flag per RLConfig field, its help text and default taken from the dataclass: a bool is a switch, an
    optional bool auto/on/off, an optional number defaults to None (the objective's value)."""
    p.add_argument("--task-arg", action="append", default=[], metavar="KEY=VALUE",
                   help="task keyword argument, e.g. --task-arg digits=2 (repeatable; values parsed as JSON when possible)")
    p.add_argument("--loss-arg", action="append", default=[], metavar="KEY=VALUE",
                   help="further hyper-parameter of the objective (repeatable; values parsed as JSON when possible)")
    p.add_argument("--model", default="hybrid",
                   help="hybrid (tiny MiniMax hybrid), hybrid-small, llama (tiny transformers Llama), all three with "
                   "lumos's byte tokenizer; or a model directory (transformers or lumos/MiniMax), loaded with the "
                   "tokenizer saved beside it (AutoTokenizer, chat template)")
    p.add_argument("--warm-start", type=int, default=300, help="SFT warm-start steps before RL (0 = none; default 300)")
    _add_data_model_options(p)
    for f, base, optional in _rl_fields():
        flag, help = "--" + f.name.replace("_", "-"), f.metadata["help"]
        if base is bool and optional:
            p.add_argument(flag, choices=tuple(_AUTO), default="auto", help=help)
        elif base is bool:
            p.add_argument(flag, action="store_true", help=help)
        else:
            p.add_argument(flag, type=base, default=f.default,
                           help=help if f.default is None else f"{help} (default: {f.default})")


def _help(cls: Any, name: str) -> str:
    f = cls.__dataclass_fields__[name]
    return f.metadata["help"] + ("" if f.default is None or isinstance(f.default, bool) else f" (default: {f.default})")


def _add_data_model_options(p: argparse.ArgumentParser) -> None:
    """Flags of :class:`DataConfig` (data-file tasks, rewards, chat template) and :class:`ModelOptions`."""
    from lumos.rl.config import MODEL_DTYPES, DataConfig, ModelOptions

    g = p.add_argument_group("data and rewards (data-file tasks: --task FILE.jsonl/.json/.csv/.parquet or a "
                             "saved dataset directory)")
    g.add_argument("--reward", action="append", default=[], metavar="PATH.py:FUNC", help=_help(DataConfig, "reward"))
    g.add_argument("--reward-weights", nargs="+", type=float, default=None, metavar="W",
                   help=_help(DataConfig, "reward_weights"))
    g.add_argument("--prompt-column", default=DataConfig.prompt_column, help=_help(DataConfig, "prompt_column"))
    g.add_argument("--eval-data", default=None, metavar="PATH", help=_help(DataConfig, "eval_data"))
    g.add_argument("--eval-fraction", type=float, default=DataConfig.eval_fraction, help=_help(DataConfig, "eval_fraction"))
    g.add_argument("--system-prompt", default=None, help=_help(DataConfig, "system_prompt"))
    g.add_argument("--no-chat-template", action="store_true",
                   help="encode prompts as plain text (base models; TRL's handling of text prompts); "
                   "chat-message prompts then are an error")
    m = p.add_argument_group("model placement and training")
    m.add_argument("--device", default="auto", help=_help(ModelOptions, "device"))
    m.add_argument("--dtype", choices=MODEL_DTYPES, default="auto", help=_help(ModelOptions, "dtype"))
    m.add_argument("--gradient-checkpointing", action="store_true", help=_help(ModelOptions, "gradient_checkpointing"))
    m.add_argument("--lora-r", type=int, default=0, help=_help(ModelOptions, "lora_r"))
    m.add_argument("--lora-alpha", type=float, default=None, help=_help(ModelOptions, "lora_alpha"))
    m.add_argument("--lora-targets", default=ModelOptions.lora_targets, help=_help(ModelOptions, "lora_targets"))
    m.add_argument("--report-to", nargs="+", default=[], metavar="SINK",
                   help="also log metrics to: tensorboard (<run>/tensorboard), wandb (a W&B run, files under <run>/wandb; "
                   "WANDB_MODE=offline logs without an account) or none; metrics.jsonl is always written")


_DATA_FLAGS = ("reward", "reward_weights", "prompt_column", "eval_data", "eval_fraction", "system_prompt",
               "no_chat_template")
_MODEL_FLAGS = ("device", "dtype", "gradient_checkpointing", "lora_r", "lora_alpha", "lora_targets")


def _data_model(args: argparse.Namespace) -> tuple[Any, Any]:
    """:class:`DataConfig` and :class:`ModelOptions` from the flags (validated: one error listing every problem)."""
    from lumos.rl.config import DataConfig, ModelOptions

    data = DataConfig(reward=list(args.reward), reward_weights=args.reward_weights, prompt_column=args.prompt_column,
                      eval_data=args.eval_data, eval_fraction=args.eval_fraction, system_prompt=args.system_prompt,
                      chat_template=not args.no_chat_template)
    options = ModelOptions(device=args.device, dtype=args.dtype, gradient_checkpointing=args.gradient_checkpointing,
                           lora_r=args.lora_r, lora_alpha=args.lora_alpha, lora_targets=args.lora_targets)
    return data, options



def _algo_help() -> str:
    from lumos.rl.objectives import available_losses, get_objective

    return "; ".join(f"{a}: {get_objective(a).help}" for a in available_losses()) + f" (default: {_default('algo')})"


def _default(name: str) -> Any:
    from lumos.rl.config import RLConfig

    return RLConfig.__dataclass_fields__[name].default


def _config(args: argparse.Namespace, algo: str) -> Any:
    from lumos.rl.config import RLConfig

    check_nonneg_int(getattr(args, "warm_start", 0), "--warm-start")
    kw = {}
    for f, base, optional in _rl_fields():
        value = getattr(args, f.name)
        kw[f.name] = _AUTO[value] if base is bool and optional else value
    return RLConfig(algo=algo, seed=args.seed, task_kwargs=parse_key_values(args.task_arg, "--task-arg"),
                    loss_args=parse_key_values(args.loss_arg, "--loss-arg"), **kw)


def register(sub: argparse._SubParsersAction) -> None:
    rl = sub.add_parser("rl", help="reinforcement learning with CISPO / DAPO / GRPO on verifiable tasks",
                        description="Train a policy with verifiable rewards, or compare objectives over seeds.")
    rsub = rl.add_subparsers(dest="rl_command", metavar="SUBCOMMAND", parser_class=type(rl))
    rl.set_defaults(func=lambda a: (rl.print_help(), 0)[1])

    t = rsub.add_parser("train", help="warm start + RL on one task with one objective",
                        description="Warm start + RL. Multi-process: torchrun --nproc_per_node N -m lumos.cli.main "
                        "rl train ... (gloo on CPU, nccl on GPU; prompts_per_step must divide by N).")
    t.add_argument("--algo", default=_default("algo"), help=_algo_help())
    t.add_argument("--resume", action="store_true",
                   help="continue the run in --out from its latest checkpoint, with its stored configuration")
    t.add_argument("--override", action="append", default=[], metavar="KEY=VALUE",
                   help="with --resume: change a stored RLConfig field (repeatable; recorded in manifest.json)")
    t.add_argument("--fsdp", action="store_true",
                   help="shard the model with FSDP2 over the torchrun processes (distributed checkpoints)")
    t.add_argument("--expert-parallel", type=int, default=1, metavar="N",
                   help="spread each MoE layer's experts over N ranks (all-to-all dispatch; implies --fsdp; "
                   "N must divide the world size and the expert count; default: 1)")
    _add_rl_options(t)
    add_run_options(t)
    t.set_defaults(func=_train)

    c = rsub.add_parser("compare", help="several objectives × seeds: curves and steps-to-target table")
    c.add_argument("--algos", default="cispo,dapo,grpo",
                   help="comma-separated objectives (default: cispo,dapo,grpo); " + _algo_help())
    c.add_argument("--seeds", type=int, default=3, help="seeds per objective (default: 3)")
    c.add_argument("--target", type=float, default=None,
                   help="target eval accuracy (default: the mean warm-start accuracy + 0.05)")
    _add_rl_options(c)
    add_run_options(c)
    c.set_defaults(func=_compare)

    st = rsub.add_parser("study", help="fair CISPO/DAPO/GRPO/GSPO comparison on a rare fork token: per-arm lr "
                         "grids tuned on tuning seeds, reported on held-out seeds",
                         description="Does CISPO beat DAPO/GRPO because clipping drops the gradient of a rare, "
                         "valuable token? Each arm gets its own lr grid, chosen on --tune-seeds and reported on "
                         "--eval-seeds. Task guess-check; see lumos.studies.rl_study.")
    st.add_argument("--quick", action="store_true", help="test size (about a minute): 2 arms, 1 schedule, 3 seeds")
    st.add_argument("--merge", nargs="+", metavar="DIR", default=None,
                    help="instead of training: one report from study run directories that split a sweep by "
                    "--updates or by seeds (each directory once; no run in two parts)")
    st.add_argument("--algos", default=None, help="comma-separated arms (default: cispo,dapo,grpo): cispo, dapo "
                    "(dynamic sampling), grpo (KL β = --grpo-beta), ppo-seq (grpo's loss, β = 0), gspo, dr_grpo, or "
                    "any registered objective")
    st.add_argument("--updates", default=None, help="optimizer updates per rollout batch, comma-separated "
                    "(default: 1,4,16; quick: 4)")
    st.add_argument("--tune-seeds", default=None, help="comma-separated seeds that choose each arm's grid point "
                    "(default: 100,101; may be empty in a part that only runs evaluation seeds)")
    st.add_argument("--eval-seeds", default=None, help="comma-separated held-out seeds the tables report "
                    "(default: 0,1,2,3,4)")
    st.add_argument("--lr-grid", action="append", default=None, metavar="[ARM=]LR,LR,...",
                    help="learning-rate grid: for every arm, or ARM=... for one arm (repeatable)")
    st.add_argument("--eps-high-grid", default=None, help="CISPO ε_high values, comma-separated (default: 4)")
    st.add_argument("--dynamic-sampling", choices=("paper", "on", "off"), default=None,
                    help="paper (default): on for cispo and dapo, as their papers; on/off: for every arm")
    for name in ("steps", "prompts_per_step", "group_size", "lr", "grpo_beta", "eval_every", "eval_problems",
                 "eval_samples", "last_k", "target", "hidden", "sft_steps", "sft_rare_steps", "demo_fork_rate",
                 "router_aux_loss_coef", "n_boot"):
        st.add_argument("--" + name.replace("_", "-"), type=float if name in (
                        "lr", "grpo_beta", "target", "demo_fork_rate", "router_aux_loss_coef")
                        else int, default=None, help=f"StudyConfig.{name} (default: the study's, or --quick's)")
    add_run_options(st)
    st.set_defaults(func=_study)

    cv = rsub.add_parser("curves", help="ScaleRL sigmoid fits of accuracy vs compute for each arm of a study",
                         description="Fit R(C) = R0 + (A - R0)/(1 + (C_mid/C)^B) to eval accuracy against "
                         "cumulative rollout + training FLOPs (lumos.analysis.flops) per arm of 'lumos rl study' "
                         "directories, with bootstrap intervals over seeds; one figure with every arm.")
    cv.add_argument("studies", nargs="+", metavar="DIR", help="study run directories (parts are pooled as --merge)")
    cv.add_argument("--updates", type=int, default=None, help="the schedule to fit (default: every schedule)")
    cv.add_argument("--metric", default="eval_accuracy", choices=("eval_accuracy", "fork_prob"),
                    help="the y value (default: eval_accuracy)")
    cv.add_argument("--seeds", choices=("eval", "tune", "all"), default="eval",
                    help="whose runs to fit (default: eval, the held-out seeds)")
    cv.add_argument("--n-boot", type=int, default=200, help="bootstrap refits (default: 200)")
    add_run_options(cv)
    cv.set_defaults(func=_curves)

    h = rsub.add_parser("fp32-head", help="train/rollout probability correlation with and without the FP32 LM head")
    h.add_argument("--model", default="hybrid-small", help="hybrid, hybrid-small or a lumos checkpoint dir")
    h.add_argument("--task", default="addition", help="task whose prompts are rolled out (default: addition)")
    h.add_argument("--warm-start", type=int, default=100, help="SFT steps first, so probabilities are not uniform")
    h.add_argument("--samples", type=int, default=32, help="rollouts (default: 32)")
    h.add_argument("--max-new-tokens", type=int, default=16, help="(default: 16)")
    h.add_argument("--dtype", choices=("bfloat16", "float16"), default="bfloat16", help="rollout precision")
    add_run_options(h)
    h.set_defaults(func=_fp32_head)

    from lumos.rl.tasks.code.check import add_check_tasks

    add_check_tasks(rsub)


def _train(args: argparse.Namespace) -> int:
    from lumos.cli.common import explicit_options
    from lumos.rl.experiment import train_run

    data, options = _data_model(args)
    if args.resume:
        cfg, overrides = _resume_config(args)
        data, options = _resume_data_model(args, data, options)
        given = explicit_options(getattr(args, "_argv", []))
        model = args.model if "model" in given else _stored(args.out, "model")
        warm = args.warm_start if "warm_start" in given else _stored(args.out, "warm_start_steps")
    else:
        if args.override:
            raise LumosError("--override changes a stored configuration; use it with --resume (or pass the flags "
                             "themselves for a new run).")
        cfg, overrides, model, warm = _config(args, args.algo), {}, args.model, args.warm_start
    run, history = train_run(cfg, model_spec=model, warm_start_steps=warm, out=args.out, resume=args.resume,
                             overrides=overrides, fsdp=args.fsdp, expert_parallel=args.expert_parallel,
                             data=data, model_options=options, report_to=tuple(args.report_to))
    last = [r for r in history if "reward" in r][-1:]
    if last and run is not None:
        r = last[0]
        print(f"step {r['step']}: reward {r['reward']:.3f}, accuracy {r['accuracy']:.3f}"
              + (f", eval accuracy {r['eval_accuracy']:.3f}" if "eval_accuracy" in r else ""))
    if run is not None:
        print(f"run directory: {run.path}")
    return 0


def _resume_data_model(args: argparse.Namespace, data: Any, options: Any) -> tuple[Any, Any]:
    """On --resume: the stored data and model options with the flags given explicitly applied on top (whether
    they contradict the stored run is checked by :func:`lumos.rl.experiment.train_run`). Runs written before
    these options existed use the defaults."""
    from lumos.cli.common import explicit_options
    from lumos.core.rundir import RunDir
    from lumos.rl.config import DataConfig, ModelOptions

    stored = RunDir.read_config(args.out)
    given = explicit_options(getattr(args, "_argv", []))
    fields = {"no_chat_template": "chat_template"}          # flag dest -> field, where they differ

    def on_top(key: str, current: Any, flags: tuple[str, ...], cls: Any) -> Any:
        if key not in stored or not isinstance(stored[key], dict):
            return current
        mine = {fields.get(d, d) for d in given & set(flags)}
        return cls.from_dict({**stored[key], **{f: getattr(current, f) for f in mine}})

    return (on_top("data", data, _DATA_FLAGS, DataConfig),
            on_top("model_options", options, _MODEL_FLAGS, ModelOptions))


def _stored(out: str, key: str) -> Any:
    from lumos.core.rundir import RunDir

    cfg = RunDir.read_config(out)
    if key not in cfg:
        raise LumosError(f"{out}/config.json has no {key!r}; it was not written by 'lumos rl train'. Start a new run.")
    return cfg[key]


def _resume_config(args: argparse.Namespace) -> tuple[Any, dict[str, Any]]:
    """The stored RLConfig with ``--override`` and the flags given explicitly applied on top; whether those
    flags contradict the stored run is checked in one place, :func:`lumos.rl.experiment.train_run` (its resume
    check, before anything is written)."""
    from lumos.cli.common import explicit_options
    from lumos.rl.config import RLConfig

    if args.out is None:
        raise LumosError("--resume needs --out DIR, the run directory to continue.")
    stored_dict = _stored(args.out, "rl")
    if not isinstance(stored_dict, dict):
        raise LumosError(f"{args.out}/config.json: 'rl' must be an object. The run directory is damaged.")
    stored = RLConfig.from_dict(stored_dict)
    overrides = _parse_overrides(args.override, stored)
    given = explicit_options(getattr(args, "_argv", []))
    current = _config(args, args.algo)
    flags = {name: getattr(current, name) for name in
             ({"task_arg": "task_kwargs", "loss_arg": "loss_args"}.get(d, d) for d in given) if hasattr(stored, name)}
    cfg = RLConfig.from_dict({**stored.to_dict(), **flags, **overrides})
    return cfg, overrides


def _parse_overrides(items: list[str], stored: Any) -> dict[str, Any]:
    fields = {f.name: f for f in dataclasses.fields(stored)}
    out = {k.replace("-", "_"): v for k, v in parse_key_values(items, "--override").items()}
    for key, parsed in out.items():
        if key not in fields:
            raise LumosError(f"--override {key}: not an RLConfig field; choose from {', '.join(fields)}.")
        if isinstance(fields[key].default, float) and isinstance(parsed, int) and not isinstance(parsed, bool):
            out[key] = float(parsed)
    return out


def _compare(args: argparse.Namespace) -> int:
    from lumos.rl.experiment import compare_runs
    from lumos.rl.objectives import available_losses

    algos = parse_csv_list(args.algos, choices=tuple(available_losses()), what="algo")
    check_positive_int(args.seeds, "--seeds", owner="lumos rl compare")
    if args.checkpoint_every:
        raise LumosError("lumos rl compare does not write checkpoints (each run is short and restarts from the "
                         "shared warm start); drop --checkpoint-every, or train one run with 'lumos rl train'.")
    data, options = _data_model(args)
    if args.report_to and args.report_to != ["none"]:
        raise LumosError("--report-to applies to 'lumos rl train'; 'lumos rl compare' writes metrics.jsonl and plots.")
    run, table = compare_runs(algos, args.seeds, _config(args, algos[0]), model_spec=args.model,
                              warm_start_steps=args.warm_start, target=args.target, out=args.out, data=data,
                              model_options=options)
    print_table(table)
    print(f"run directory: {run.path}")
    return 0


def _floats(text: str, flag: str) -> tuple[float, ...]:
    try:
        return tuple(float(x) for x in parse_csv_list(text, what=flag))
    except ValueError:
        raise LumosError(f"{flag} must be comma-separated numbers; got {text!r}.") from None


def _ints(text: str, flag: str, allow_empty: bool = False) -> tuple[int, ...]:
    if allow_empty and text.strip() == "":
        return ()
    try:
        return tuple(int(x) for x in parse_csv_list(text, what=flag))
    except ValueError:
        raise LumosError(f"{flag} must be comma-separated integers; got {text!r}.") from None


def _study_config(args: argparse.Namespace) -> Any:
    """The StudyConfig of the flags, validated whole (every arm's RLConfig included) before any directory exists."""
    from lumos.studies.rl_study import StudyConfig, arm_names

    names = {f.name for f in dataclasses.fields(StudyConfig)}
    kw: dict[str, Any] = {k: v for k, v in vars(args).items() if v is not None and k in names and k not in (
        "algos", "updates", "tune_seeds", "eval_seeds", "lr_grid", "eps_high_grid")}
    if args.algos is not None:
        kw["algos"] = tuple(parse_csv_list(args.algos, choices=tuple(arm_names()), what="arm"))
    if args.updates is not None:
        kw["updates"] = _ints(args.updates, "--updates")
    if args.tune_seeds is not None:
        kw["tune_seeds"] = _ints(args.tune_seeds, "--tune-seeds", allow_empty=True)
    if args.eval_seeds is not None:
        kw["eval_seeds"] = _ints(args.eval_seeds, "--eval-seeds", allow_empty=True)
    if args.eps_high_grid is not None:
        kw["eps_high_grid"] = _floats(args.eps_high_grid, "--eps-high-grid")
    if args.lr_grid:
        algos = kw.get("algos") or (StudyConfig.quick().algos if args.quick else StudyConfig.algos)
        grid: dict[str, tuple[float, ...]] = {}
        own: dict[str, tuple[float, ...]] = {}          # ARM=... wins over a grid given for every arm
        for item in args.lr_grid:
            arm, sep, values = item.rpartition("=")
            if sep and arm not in algos:
                raise LumosError(f"--lr-grid {item}: {arm!r} is not among the arms ({', '.join(algos)}).")
            if sep:
                own[arm] = _floats(values, "--lr-grid")
            else:
                grid.update({a: _floats(values, "--lr-grid") for a in algos})
        kw["lr_grid"] = {**grid, **own}
    return StudyConfig.quick(**kw) if args.quick else StudyConfig(**kw)


def _study(args: argparse.Namespace) -> int:
    from lumos.studies.rl_study import merge_studies, run_study

    if args.merge:
        run, tables = merge_studies(args.merge, out=args.out)
    else:
        cfg = _study_config(args)
        run, tables = run_study(cfg, out=args.out, progress=lambda line: print(line, flush=True))
    for name in ("tuning", "summary", "paired"):
        if tables[name]:
            print_table(tables[name])
            print()
    print(f"run directory: {run.path}")
    return 0


def _curves(args: argparse.Namespace) -> int:
    from lumos.core.rundir import RunDir
    from lumos.studies.curves import curves_figure, fit_curves, format_rows
    from lumos.studies.rl_study import pool_studies, study_curves

    check_positive_int(args.n_boot, "--n-boot", owner="lumos rl curves")
    cfg, runs = pool_studies(args.studies)      # the parts' checks and seed union, as --merge
    seeds = {"eval": cfg.eval_seeds, "tune": cfg.tune_seeds, "all": cfg.eval_seeds + cfg.tune_seeds}
    updates = sorted({k[0] for k in runs})
    if args.updates is not None:
        if args.updates not in updates:
            raise LumosError(f"--updates {args.updates}: the studies have schedules {updates}.")
        updates = [args.updates]
    if not updates:
        raise LumosError(f"{', '.join(args.studies)}: no finished run to fit.")
    with RunDir.create("rl curves", {"studies": list(map(str, args.studies)), "metric": args.metric,
                                     "seeds": args.seeds, "n_boot": args.n_boot}, out=args.out, seed=args.seed,
                       title="lumos rl curves — ScaleRL sigmoid fits of performance vs compute") as run:
        sec = run.report.section("Compute-performance curves")
        sec.text("R(C) = R0 + (A − R0) / (1 + (C_mid/C)^B) fitted per arm at its tuned grid point (chosen on the "
                 "tuning seeds) to the runs of the " + args.seeds + " seeds; C = cumulative rollout + training "
                 "FLOPs from lumos.analysis.flops (training = 3 forwards, + 1 per reference / recomputed old "
                 "log-prob forward); R0 = the mean step-0 value; intervals: bootstrap over seeds, 95 %.")
        for u in updates:
            curves = study_curves(runs, cfg, u, seeds=seeds[args.seeds], metric=args.metric)
            rows = fit_curves(curves, n_boot=args.n_boot, seed=args.seed,
                              a_bounds=(0.0, 1.0))
            for r in rows:
                run.log({"updates": u, **{k: v for k, v in r.items()}})
            table = format_rows(rows)
            sec.table(table, caption=f"{u} update(s) per rollout batch")
            fig = curves_figure(curves, rows, metric=args.metric, title=f"{args.metric} vs compute, {u} update(s)/batch")
            run.save_figure(fig, f"curves_u{u}")
            sec.figure(fig)
            print(f"updates {u}:")
            print_table(table)
    print(f"run directory: {run.path}")
    return 0


def _fp32_head(args: argparse.Namespace) -> int:
    import torch

    from lumos.core.rundir import RunDir
    from lumos.rl.experiment import build_model, warm_start
    from lumos.rl.tasks.user import resolve_task
    from lumos.studies.fp32_head import fp32_head_study

    check_nonneg_int(args.warm_start, "--warm-start")
    check_positive_int(args.samples, "--samples")
    check_positive_int(args.max_new_tokens, "--max-new-tokens")
    task = resolve_task(args.task)
    model = build_model(args.model, seed=args.seed)
    with RunDir.create("rl fp32-head", vars_without_func(args), out=args.out, seed=args.seed) as run:
        warm_start(model, task, args.warm_start, args.seed)
        rows = fp32_head_study(model, task, samples=args.samples, max_new_tokens=args.max_new_tokens,
                               dtype=getattr(torch, args.dtype), seed=args.seed)
        for r in rows:
            run.log(r)
        run.report.section("FP32 LM head").table(rows, caption="Pearson correlation of per-token probabilities, "
                                                 "fp32 training forward vs reduced-precision rollout.")
    print_table(rows)
    print(f"run directory: {run.path}")
    return 0


def vars_without_func(args: argparse.Namespace) -> dict[str, Any]:
    return {k: v for k, v in vars(args).items() if k != "func"}
