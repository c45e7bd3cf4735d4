"""``lumos generate``: sample from any MiniMax checkpoint lumos reads (release or transformers directory, a run
directory, a step checkpoint) or any transformers causal LM directory (with its own tokenizer and chat template: a
``lumos rl train`` checkpoint of such a model, its run directory, a peft adapter directory) and write a run
directory; ``lumos export``: any MiniMax checkpoint → a release or transformers directory."""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from lumos.cli.common import add_run_options

if TYPE_CHECKING:
    from lumos.models.checkpoint.resolve import CheckpointSource

__all__ = ["register"]


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("generate", help="generate text with a MiniMax hybrid checkpoint or a transformers model",
                       description="Load a checkpoint (release 'minimax_m1' or transformers 'minimax' layout, or any "
                       "transformers causal LM directory with its tokenizer, e.g. a 'lumos rl train' checkpoint), "
                       "generate a continuation per --prompt, print it and write a run directory.")
    p.add_argument("--model", required=True, help="checkpoint directory (config.json + safetensors), a run directory "
                   "(its latest checkpoint), a step_* checkpoint or a peft adapter directory")
    p.add_argument("--prompt", action="append", required=True, help="prompt text (repeat for a batch)")
    p.add_argument("--max-new-tokens", type=int, default=64, help="tokens to generate per prompt (default: 64)")
    p.add_argument("--temperature", type=float, default=1.0, help="sampling temperature; 0 = greedy (default: 1.0)")
    p.add_argument("--top-k", type=int, default=None, help="keep the k most likely tokens")
    p.add_argument("--top-p", type=float, default=None, help="nucleus sampling mass")
    p.add_argument("--stop", action="append", default=None, help="stop string (repeatable)")
    p.add_argument("--repetition-truncation", type=int, default=3000,
                   help="stop after N consecutive tokens each with probability > --repetition-threshold (default: 3000)")
    p.add_argument("--repetition-threshold", type=float, default=0.99, help="(default: 0.99)")
    p.add_argument("--compile", action="store_true",
                   help="decode through the torch.compile-d one-token step (compiles first; faster long generations)")
    p.add_argument("--dtype", choices=("auto", "float32", "bfloat16", "float16"), default="auto",
                   help="compute dtype (default: the checkpoint's)")
    p.add_argument("--format", choices=("auto", "minimax_m1", "transformers"), default="auto",
                   help="checkpoint format (default: detected from config.json; naming one makes a mismatch an error)")
    p.add_argument("--json", action="store_true", help="print the results as one JSON object")
    p.add_argument("--no-chat-template", action="store_true",
                   help="transformers models: encode --prompt as plain text (default: as a user message through the "
                   "tokenizer's chat template, when it has one)")
    p.add_argument("--device", default="auto", help="transformers models: auto (cuda when present), cpu, cuda, cuda:N")
    add_run_options(p)
    p.set_defaults(func=_run)

    e = sub.add_parser("export", help="convert any checkpoint lumos reads into a release or transformers directory",
                       description="Read a checkpoint (a release 'minimax_m1' or transformers directory, a run "
                       "directory (its latest checkpoint), a step_* directory, distributed or not) and write "
                       "config.json, sharded safetensors and the index in the release 'minimax_m1' or the "
                       "transformers layout, plus the tokenizer files found with it. Writes a new directory "
                       "(atomically); never into the source, and over an existing checkpoint only with --overwrite.")
    e.add_argument("checkpoint", help="checkpoint, run, checkpoints or step_* directory")
    e.add_argument("output", help="new directory for config.json, the shards and the index")
    e.add_argument("--format", choices=("minimax_m1", "transformers"), default="minimax_m1",
                   help="key layout of the output (default: minimax_m1)")
    e.add_argument("--dtype", choices=("auto", "float32", "bfloat16", "float16"), default="auto",
                   help="weights dtype in the output (default: the checkpoint's)")
    e.add_argument("--max-shard-size", type=int, default=2 * 1024**3, help="bytes per shard (default: 2 GiB)")
    e.add_argument("--overwrite", action="store_true", help="replace a checkpoint already in OUTPUT")
    e.add_argument("--config", default=None, help="the model's config.json, for a run checkpoint written before "
                   "lumos stored one beside it")
    e.set_defaults(func=_export)


def _legacy_config(source: CheckpointSource, given: str | None) -> Any:
    """The model config for an old run checkpoint without config.json: --config, else the run's built-in --model
    (the CLI layer may ask lumos.rl how it builds those; the library never guesses)."""
    if given is not None or source.kind == "pretrained" or (source.path / "config.json").is_file():
        return given
    spec = source.model_spec
    from lumos.rl.experiment import MODEL_CHOICES, build_model

    if spec in MODEL_CHOICES and spec != "llama":   # built-in names: rebuild the (seed-independent) shape
        return build_model(spec).config
    return None


def _run_transformers(args: argparse.Namespace, dtype: Any, path: Any) -> int:
    """``lumos generate`` for a transformers (or peft adapter) directory ``path``: its tokenizer and chat template."""

    from lumos.core.errors import LumosError
    from lumos.core.rundir import RunDir
    from lumos.models.transformers_lm import generate_transformers, load_transformers, resolve_device

    if args.format == "minimax_m1":
        raise LumosError(f"--format minimax_m1: {args.model} is not a MiniMax checkpoint. Drop --format.")
    if args.compile:
        raise LumosError("--compile applies to lumos MiniMax checkpoints; drop it for a transformers model.")
    from lumos.cli.common import explicit_options

    given = explicit_options(getattr(args, "_argv", [])) & {"repetition_truncation", "repetition_threshold"}
    if given:
        flag = "--" + sorted(given)[0].replace("_", "-")
        raise LumosError(f"{flag} applies to lumos MiniMax checkpoints (transformers' generate has no such stop); "
                         "drop it for a transformers model.")
    device = resolve_device(args.device)
    t0 = time.perf_counter()
    model, tokenizer = load_transformers(path, dtype=dtype, device=device,
                                         chat_template=not args.no_chat_template)
    load_s = time.perf_counter() - t0
    options = {k: v for k, v in vars(args).items() if k != "func"}
    run = RunDir.create("generate", options, out=args.out, seed=args.seed, title="lumos generate")
    t1 = time.perf_counter()
    out = generate_transformers(model, tokenizer, args.prompt, max_new_tokens=args.max_new_tokens,
                                do_sample=args.temperature > 0,
                                temperature=args.temperature if args.temperature > 0 else 1.0,
                                top_k=args.top_k, top_p=args.top_p, stop_strings=args.stop, seed=args.seed)
    gen_s = time.perf_counter() - t1
    n_params = sum(p.numel() for p in model.parameters())
    return _finish_generation(args, run, tokenizer, out, load_s, gen_s, lambda n_tok: (
        f"Model {args.model} ({type(model).__name__}, {n_params:,} parameters) on {device}; {n_tok} tokens in "
        f"{gen_s:.2f} s."))


def _export(args: argparse.Namespace) -> int:
    from lumos.core.validation import check_positive_int
    from lumos.models.checkpoint.export import check_destination, export_checkpoint
    from lumos.models.checkpoint.pretrained import checkpoint_size
    from lumos.models.checkpoint.resolve import resolve_checkpoint

    check_positive_int(args.max_shard_size, "--max-shard-size", owner="lumos export")
    source = resolve_checkpoint(args.checkpoint)
    check_destination(args.output, source, args.overwrite)
    path = export_checkpoint(source.given, args.output, format=args.format,
                             dtype=None if args.dtype == "auto" else args.dtype, max_shard_size=args.max_shard_size,
                             overwrite=args.overwrite, config=_legacy_config(source, args.config))
    print(f"exported the {source.describe()} as a {args.format} checkpoint ({checkpoint_size(path) / 1e6:.1f} MB) "
          f"to {path}")
    return 0


def _run(args: argparse.Namespace) -> int:

    import torch

    from lumos.core.errors import LumosError
    from lumos.core.progress import counter
    from lumos.core.rundir import RunDir
    from lumos.core.validation import check_float, check_positive_int, check_probability
    from lumos.models.checkpoint.resolve import open_checkpoint, resolve_checkpoint
    from lumos.models.generation import encode_prompts, generate
    from lumos.models.tokenizer import load_tokenizer

    check_float(args.temperature, "--temperature", 0.0, owner="lumos generate", fix="0 means greedy decoding.")
    check_positive_int(args.max_new_tokens, "--max-new-tokens", owner="lumos generate")
    if args.top_k is not None:
        check_positive_int(args.top_k, "--top-k", owner="lumos generate")
    if args.top_p is not None:
        check_probability(args.top_p, "--top-p", owner="lumos generate", open_low=True)
    check_positive_int(args.repetition_truncation, "--repetition-truncation", owner="lumos generate")
    check_probability(args.repetition_threshold, "--repetition-threshold", owner="lumos generate", open_high=True)
    for i, text in enumerate(args.prompt + (args.stop or [])):
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:
            what = "--prompt" if i < len(args.prompt) else "--stop"
            raise LumosError(f"{what} {i + 1} is not valid UTF-8 text (bytes that no encoding decoded at position "
                             f"{exc.start}); pass UTF-8 text.") from None
    dtype = None if args.dtype == "auto" else getattr(torch, args.dtype)
    from lumos.models.transformers_lm import is_transformers_dir

    if is_transformers_dir(args.model):          # a model directory, a step checkpoint of one, a peft adapter
        return _run_transformers(args, dtype, args.model)
    source = resolve_checkpoint(args.model)
    if is_transformers_dir(source.path):         # the latest checkpoint of a run that trained a transformers model
        return _run_transformers(args, dtype, source.path)
    if args.no_chat_template or args.device != "auto":
        raise LumosError("--no-chat-template and --device apply to transformers models; a MiniMax checkpoint runs on "
                         "the CPU with its byte or tokenizer.json tokenizer.")
    t0 = time.perf_counter()
    model = open_checkpoint(source, dtype=dtype, format=None if args.format == "auto" else args.format,
                            config=_legacy_config(source, None))
    load_s = time.perf_counter() - t0
    tokenizer = load_tokenizer(source.tokenizer_dir)
    cfg = model.config
    input_ids, mask = encode_prompts(tokenizer, args.prompt, cfg)
    options = {k: v for k, v in vars(args).items() if k != "func"}
    run = RunDir.create("generate", options, out=args.out, seed=args.seed, title="lumos generate")
    t1 = time.perf_counter()
    with counter("generating", total=args.max_new_tokens) as advance:
        out = generate(model, input_ids, attention_mask=mask, max_new_tokens=args.max_new_tokens,
                             do_sample=args.temperature > 0,
                             temperature=args.temperature if args.temperature > 0 else 1.0,
                             top_k=args.top_k, top_p=args.top_p, stop_strings=args.stop, tokenizer=tokenizer,
                             seed=args.seed, repetition_truncation=args.repetition_truncation,
                             repetition_threshold=args.repetition_threshold,
                             callback=lambda step, tokens: advance(1), compile=args.compile)
    gen_s = time.perf_counter() - t1
    return _finish_generation(args, run, tokenizer, out, load_s, gen_s, lambda n_tok: (
        f"Model {args.model}: {cfg.num_hidden_layers} layers ({cfg.layer_kinds.count('softmax')} softmax), "
        f"{model.num_parameters():,} parameters; {n_tok} tokens in {gen_s:.2f} s."))


def _finish_generation(args: argparse.Namespace, run: Any, tokenizer: Any, out: Any, load_s: float, gen_s: float,
                       summary: Callable[[int], str]) -> int:
    """Log one row per prompt, write the report (headed by ``summary(generated tokens)``) and print the results."""
    rows = []
    for i, prompt in enumerate(args.prompt):
        n = int(out.mask[i].sum())
        toks = out.tokens[i, :n].tolist()
        row = {"prompt": prompt, "completion": tokenizer.decode(toks), "tokens": toks,
               "logprobs": [round(float(x), 6) for x in out.logprobs[i, :n]], "finish_reason": out.finish_reasons[i]}
        rows.append(row)
        run.log(row)
    n_tok = int(out.mask.sum())
    run.update_manifest(load_seconds=load_s, generate_seconds=gen_s, generated_tokens=n_tok)
    sec = run.report.section("Generations")
    sec.text(summary(n_tok))
    sec.table([{k: r[k] for k in ("prompt", "completion", "finish_reason")} for r in rows])
    run.finish()
    if args.json:
        print(json.dumps({"run": str(run.path), "results": rows}))
    else:
        for r in rows:
            print(r["prompt"] + r["completion"])
        print(f"[run: {run.path}]")
    return 0
