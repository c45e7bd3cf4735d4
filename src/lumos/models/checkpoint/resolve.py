"""Every checkpoint lumos reads, opened through one door: what a path is, and the model it holds.

:func:`resolve_checkpoint` says what a directory is, reading headers and small JSON files only:

* ``"pretrained"``: ``config.json`` + safetensors in the release (``minimax_m1``) or transformers layout
  (:func:`~lumos.models.checkpoint.pretrained.save_pretrained`, a download, transformers' ``save_pretrained``);
* ``"distributed"``: a ``torch.distributed.checkpoint`` step directory written by ``lumos rl train --fsdp``
  (``.metadata``, ``__*_*.distcp``, ``config.json``, ``state.json``);
* ``"training"``: a single-process step directory written by ``lumos rl train`` (``model.safetensors`` with
  lumos's own parameter names, ``state.json``; ``config.json`` since this version);
* a run directory (``manifest.json``, ``checkpoints/latest``) or its ``checkpoints`` directory: the step its
  ``latest`` file names, which must be one of the two kinds above.

:func:`open_checkpoint` builds the :class:`~lumos.models.minimax.modeling.HybridLM` it holds. A training
checkpoint written before lumos stored ``config.json`` beside it takes the configuration from the run's
``--model`` directory, or from ``config=`` (a :class:`MiniMaxConfig` or a ``config.json``); nothing is guessed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch

from lumos.core.errors import LumosError, one_line
from lumos.core.io import read_json
from lumos.models.minimax.config import MiniMaxConfig, detect_format, is_minimax_model_type
from lumos.models.minimax.modeling import HybridLM

__all__ = ["CheckpointSource", "resolve_checkpoint", "open_checkpoint", "KINDS"]

KINDS = ("pretrained", "distributed", "training")
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "generation_config.json")


@dataclass(frozen=True)
class CheckpointSource:
    """What :func:`resolve_checkpoint` found.

    Attributes:
        kind: one of :data:`KINDS`.
        path: the directory holding the weights (the step directory for a run).
        given: the path the caller named.
        run: the run directory the checkpoint belongs to, else None.
        format: "minimax_m1" / "transformers" for a pretrained directory, else None.
        model_spec: the run's ``--model`` (from its ``config.json``), else None.
    """

    kind: str
    path: Path
    given: Path
    run: Path | None = None
    format: str | None = None
    model_spec: str | None = None

    @property
    def protected(self) -> tuple[Path, ...]:
        """Directories a writer must stay out of: the weights, what was named, the run."""
        return tuple(p for p in (self.path, self.given, self.run) if p is not None)

    @property
    def tokenizer_dir(self) -> Path | None:
        """Where the model's ``tokenizer.json`` lives: the checkpoint itself, else the run's ``--model`` directory."""
        for d in (self.path, Path(self.model_spec) if self.model_spec else None):
            if d is not None and (d / "tokenizer.json").is_file():
                return d
        return None

    def tokenizer_files(self) -> list[Path]:
        """The tokenizer files (``tokenizer.json`` and its companions) to carry along with the weights."""
        d = self.tokenizer_dir
        return [d / n for n in _TOKENIZER_FILES if d is not None and (d / n).is_file()]

    def describe(self) -> str:
        what = {"pretrained": f"{self.format} checkpoint", "distributed": "distributed checkpoint",
                "training": "training checkpoint"}[self.kind]
        return f"{what} {self.path}" + (f" (latest of run {self.run})" if self.run is not None else "")


def _is_pretrained(p: Path) -> bool:
    return (p / "config.json").is_file() and ((p / "model.safetensors").is_file()
                                              or (p / "model.safetensors.index.json").is_file())


def _run_of(step: Path) -> Path | None:
    """The run directory of a step directory ``<run>/checkpoints/step_*`` (None for a bare checkpoints root)."""
    parent = step.parent
    if parent.name == "checkpoints" and (parent.parent / "manifest.json").is_file():
        return parent.parent
    return None


def _model_spec(run: Path | None) -> str | None:
    if run is None or not (run / "config.json").is_file():
        return None
    try:
        cfg = read_json(run / "config.json")
    except LumosError:
        return None
    spec = cfg.get("model") if isinstance(cfg, dict) else None
    return spec if isinstance(spec, str) else None


def resolve_checkpoint(path: str | os.PathLike[str]) -> CheckpointSource:
    """What ``path`` is (see the module docstring); reads no tensor data. Errors name what was expected."""
    from lumos.distributed.checkpoint import follow_latest

    given = Path(path)
    if not given.exists():
        raise LumosError(f"Checkpoint not found: {given}. Pass a checkpoint directory (config.json + safetensors), "
                         "a run directory or one of its step_* checkpoints.")
    if not given.is_dir():
        raise LumosError(f"{given} is a file; pass the checkpoint directory that holds it.")
    step = given
    if not _step_kind(given) and not _is_pretrained(given):
        root = given / "checkpoints" if (given / "checkpoints").is_dir() else given
        pointer = root / "latest"
        if pointer.is_file():
            step = follow_latest(pointer)
        elif (given / "manifest.json").is_file() or root is not given:
            raise LumosError(f"{given} is a run directory without a checkpoint (no {pointer}); train with "
                             "--checkpoint-every N (or to the end) to write one.")
        else:
            raise LumosError(f"{given} is not a checkpoint lumos reads: expected config.json with model.safetensors "
                             "(or its index), a run directory, or a step_* directory (.metadata or model.safetensors "
                             "with state.json).")
    kind = _step_kind(step)
    run = _run_of(step)
    if kind is None:
        if step is given:
            return CheckpointSource("pretrained", given, given, None, _format_of(given))
        raise LumosError(f"{step} (named by {step.parent / 'latest'}) is incomplete: it has neither .metadata nor "
                         "model.safetensors with state.json. Point latest at a complete step_* directory.")
    return CheckpointSource(kind, step, given, run, None, _model_spec(run))


def _step_kind(p: Path) -> str | None:
    if (p / "state.json").is_file() and (p / ".metadata").is_file():
        return "distributed"
    if (p / "state.json").is_file() and (p / "model.safetensors").is_file():
        return "training"
    return None


def _format_of(p: Path) -> str:
    raw = read_json(p / "config.json")
    if not isinstance(raw, dict):
        raise LumosError(f"{p / 'config.json'} must hold a JSON object; got {type(raw).__name__}.")
    return detect_format(raw)


def _config_for(src: CheckpointSource, config: MiniMaxConfig | str | os.PathLike[str] | None) -> MiniMaxConfig:
    """The model configuration of a run checkpoint: beside the weights, else ``config``, else the run's --model dir."""
    if isinstance(config, MiniMaxConfig):
        return config
    if config is not None:
        return MiniMaxConfig.from_json(config)
    if (src.path / "config.json").is_file():
        return MiniMaxConfig.from_json(src.path / "config.json")
    spec = src.model_spec
    if spec is not None and (Path(spec) / "config.json").is_file():
        raw = read_json(Path(spec) / "config.json")
        if isinstance(raw, dict) and is_minimax_model_type(raw.get("model_type")):
            return MiniMaxConfig.from_json(Path(spec) / "config.json")
    model = f" (the run trained --model {spec!r})" if spec else ""
    raise LumosError(f"{src.path} has no config.json{model}, so its model's shape is unknown; pass the model's "
                     "config.json (config= / --config).")


def _check_lumos_model(src: CheckpointSource) -> None:
    """A run that trained a transformers model (``--model llama``, a Llama directory) holds no HybridLM."""
    spec = src.model_spec
    if spec is None or (src.path / "config.json").is_file():
        return
    raw = read_json(Path(spec) / "config.json") if (Path(spec) / "config.json").is_file() else None
    model_type = str(raw.get("model_type", "")) if isinstance(raw, dict) else ""
    if spec == "llama" or (model_type and not is_minimax_model_type(model_type)):
        raise LumosError(f"Run {src.run} trained a transformers model ({spec!r}), not a lumos MiniMax hybrid; its "
                         "weights are transformers' own: load them with transformers.")


def open_checkpoint(path: str | os.PathLike[str] | CheckpointSource, *, dtype: torch.dtype | None = None,
                    device: str | torch.device = "cpu", format: str | None = None,
                    config: MiniMaxConfig | str | os.PathLike[str] | None = None) -> HybridLM:
    """The :class:`HybridLM` held by any checkpoint :func:`resolve_checkpoint` accepts (eval mode).

    Args:
        path: a pretrained, run, checkpoints or step directory (or its :class:`CheckpointSource`).
        dtype: parameter dtype (default: the checkpoint's).
        device: where the weights go.
        format: for a pretrained directory, the format it must have (None = either); naming one for a run's
            checkpoint is an error (it has lumos's own layout).
        config: the model configuration of a run checkpoint that has no ``config.json`` beside it.
    """
    from lumos.models.checkpoint.format import default_dtype
    from lumos.models.checkpoint.pretrained import load_pretrained

    src = path if isinstance(path, CheckpointSource) else resolve_checkpoint(path)
    if src.kind == "pretrained":
        return load_pretrained(src.path, dtype=dtype, device=device, format=format)
    if format is not None:
        raise LumosError(f"{src.describe()} has lumos's own layout, not {format!r}; drop the format.")
    _check_lumos_model(src)
    cfg = _config_for(src, config)
    if src.kind == "distributed":
        model = HybridLM.empty(cfg, dtype=default_dtype(cfg), device=device)
        from lumos.distributed.checkpoint import load_distributed

        load_distributed(src.path, model, restore_rng=False)
    else:
        model = _load_training(src.path, cfg, device)
    return (model.to(dtype) if dtype is not None else model).eval()


def _load_training(path: Path, cfg: MiniMaxConfig, device: str | torch.device) -> HybridLM:
    """A single-process step directory: ``model.safetensors`` holds HybridLM's own state dict."""
    from safetensors import safe_open

    from lumos.models.checkpoint.format import check_finite, default_dtype

    f = path / "model.safetensors"
    try:
        with safe_open(str(f), framework="pt") as fh:
            keys = list(fh.keys())
            stored = fh.get_slice("model.embed_tokens.weight").get_dtype() if "model.embed_tokens.weight" in keys \
                else None
    except Exception as exc:  # noqa: BLE001 - safetensors raises several types for bad files
        raise LumosError(f"{f} is corrupt or not a safetensors file ({one_line(exc, 120)}); use an earlier "
                         "checkpoint.") from None
    dtypes = {"F32": torch.float32, "BF16": torch.bfloat16, "F16": torch.float16, "F64": torch.float64}
    model = HybridLM.empty(cfg, dtype=dtypes.get(stored or "") or default_dtype(cfg), device=device)  # tied
    expected = set(model.state_dict())
    missing, unexpected = sorted(expected - set(keys)), sorted(set(keys) - expected)
    if missing or unexpected:
        raise LumosError(f"{f} does not hold this model ({len(missing)} missing key(s), e.g. {missing[:2]}; "
                         f"{len(unexpected)} unexpected, e.g. {unexpected[:2]}); the configuration does not belong "
                         "to these weights.")
    params = model.state_dict()
    with torch.no_grad(), safe_open(str(f), framework="pt", device=str(device)) as fh:
        for k in keys:
            t = fh.get_tensor(k)
            check_finite(t, k, path)
            if tuple(t.shape) != tuple(params[k].shape):
                raise LumosError(f"{f}: {k} has shape {tuple(t.shape)}, the configuration says "
                                 f"{tuple(params[k].shape)}; the configuration does not belong to these weights.")
            params[k].copy_(t)
    return model
