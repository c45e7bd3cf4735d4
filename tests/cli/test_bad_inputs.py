"""The bad-input matrix (issue #15): a new user's mistakes over every command and the public API.

Every CLI case runs in-process (``lumos.cli.main.main``) and must exit with status 2, print exactly one line on
stderr, no traceback, and leave no run directory whose manifest says ``running``. API cases must raise a
one-line :class:`LumosError`. Cases are cheap: each fails at the input boundary, before any training.
"""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch

from lumos.cli.main import main
from lumos.core.errors import LumosError

TINY_RL = ["--warm-start", "0", "--steps", "1", "--prompts-per-step", "2", "--group-size", "2", "--minibatches", "1",
           "--max-new-tokens", "2", "--eval-problems", "2", "--eval-every", "0", "--task-arg", "digits=1"]


# -------------------------------------------------------------------------------------------------- fixtures
def _png(path: Path, width: int, height: int) -> Path:
    """A 1×1 PNG whose header claims width×height (what a decompression bomb looks like before decoding)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00\x00\x00\x00")
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b""))
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("bad_inputs")
    f: dict[str, Path] = {}

    def text(name: str, content: str | bytes) -> None:
        p = d / name
        p.write_bytes(content if isinstance(content, bytes) else content.encode())
        f[name] = p

    rows = "\n".join(f"{i % 3},{i * 0.5},{i % 2}" for i in range(30))
    text("good.csv", "a,b,y\n" + rows + "\n")
    text("ragged.csv", "a,b,y\n1,2,0\n3,1\n4,5,1\n" + rows + "\n")
    text("latin1.csv", b"a,b,y\n" + "1,2,caf\xe9\n".encode("latin-1") + (rows + "\n").encode())
    text("inf.csv", "a,b,y\n" + rows + "\n1,inf,0\n")
    text("nan.csv", "a,b,y\n" + rows + "\n1,1,nan\n")  # a NaN feature is imputed; a NaN label cannot be
    text("mixed.csv", "a,b,y\n" + rows + "\n1,two,0\n")
    text("good_other_cols.csv", "a,c,y\n" + rows + "\n")
    text("good_new_label.csv", "a,b,y\n" + rows + "\n1,2,7\n")
    text("text_feature.csv", "a,b,y\n" + rows + "\nhello,1,0\n")
    text("header_only.csv", "a,b,y\n")
    text("empty.csv", "")
    text("data.txt", "1,2,3\n")
    text("empty.npz", b"")
    text("notzip.npz", b"this is not a zip archive at all")
    X = np.random.default_rng(0).normal(size=(20, 3))
    np.savez(d / "mismatch.npz", X=X, y=np.arange(7) % 2)
    np.savez(d / "object.npz", X=np.array([{"a": 1}] * 20, dtype=object), y=np.arange(20) % 2)
    np.savez(d / "strings.npz", X=np.array([["a", "b"]] * 20), y=np.arange(20) % 2)
    np.savez(d / "no_y.npz", X=X)
    np.savez(d / "nan.npz", X=X, y=np.where(np.arange(20) == 5, np.nan, np.arange(20) % 2))  # NaN label
    np.save(d / "single.npy", X)
    (d / "single.npy").rename(d / "single.npz")
    for name in ("mismatch.npz", "object.npz", "strings.npz", "no_y.npz", "nan.npz", "single.npz"):
        f[name] = d / name
    f["bomb.png"] = _png(d / "bomb.png", 20000, 20000)
    text("fake.png", "not an image")
    (d / "empty_folder").mkdir()
    f["empty_folder"] = d / "empty_folder"
    text("invalid.json", "{not json")
    text("list.json", "[1, 2, 3]")
    text("release_partial.json", json.dumps({"model_type": "minimax_m1", "hidden_size": 64}))
    text("latin1.py", "print('caf\xe9')\n".encode("latin-1"))
    text("ok.py", "print('hi')\n")
    for name, cfg in (("ckpt_badjson", "{oops"), ("ckpt_list", "[]")):
        (d / name).mkdir()
        (d / name / "config.json").write_text(cfg)
        f[name] = d / name
    (d / "ckpt_pickle").mkdir()
    (d / "ckpt_pickle" / "config.json").write_text(json.dumps({"model_type": "llama"}))
    (d / "ckpt_pickle" / "pytorch_model.bin").write_bytes(b"\x80\x04pickle")
    f["ckpt_pickle"] = d / "ckpt_pickle"
    # a tiny lumos checkpoint whose weights hold a NaN
    from lumos.models import HybridLM, MiniMaxConfig, save_pretrained

    torch.manual_seed(0)
    model = HybridLM(MiniMaxConfig(hidden_size=16, num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1,
                                   intermediate_size=16, num_local_experts=2))
    with torch.no_grad():
        model.model.embed_tokens.weight[3, 0] = float("nan")
    save_pretrained(model, d / "ckpt_nan")
    f["ckpt_nan"] = d / "ckpt_nan"
    model2 = HybridLM(MiniMaxConfig(hidden_size=16, num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1,
                                    intermediate_size=16, num_local_experts=2))
    save_pretrained(model2, d / "ckpt_ok")
    f["ckpt_ok"] = d / "ckpt_ok"
    _distributed_fixtures(d, f, model2)
    text("a_file", "x")
    for name, link in (("tasks_link_file", "repo/secret.txt"), ("tasks_link_repo", "repo")):
        task = d / name / "t"
        (task / "repo").mkdir(parents=True)
        (task / "repo" / "test_m.py").write_text("def test_m():\n    assert False\n")
        (task / "task.json").write_text(json.dumps({"failing_tests": ["test_m.py::test_m"]}))
        if link == "repo":
            (task / "repo" / "test_m.py").unlink()
            (task / "repo").rmdir()
        (task / link).symlink_to("/etc/hostname" if link != "repo" else "/etc")
        f[name] = d / name
    return f


def _distributed_fixtures(d: Path, f: dict[str, Path], model) -> None:
    """Distributed-checkpoint step directories without a real save: one whose .metadata is a pickle that would
    create a marker file, one whose genuine metadata names a __0_0.distcp shard that is missing."""
    import pickle

    from torch.distributed.checkpoint.filesystem import _StorageInfo
    from torch.distributed.checkpoint.metadata import BytesStorageMetadata, Metadata, MetadataIndex

    class Touch:
        def __reduce__(self):
            return (open, (str(d / "MARKER"), "w"))

    for name, metadata in (("dcp_crafted", pickle.dumps(Touch())),
                           ("dcp_missing_shard", pickle.dumps(Metadata(
                               {"model.x": BytesStorageMetadata()},
                               storage_data={MetadataIndex("model.x"): _StorageInfo("__0_0.distcp", 0, 10)})))):
        step = d / name / "step_000001"
        step.mkdir(parents=True)
        (step / ".metadata").write_bytes(metadata)
        (step / "state.json").write_text('{"step": 1, "world_size": 1}')
        model.config.to_json(step / "config.json")
        (d / name / "latest").write_text("step_000001\n")
        f[name] = d / name


@pytest.fixture(scope="module")
def existing_run(tmp_path_factory) -> Path:
    """A finished `lumos flops` run directory (for --out reuse cases)."""
    out = tmp_path_factory.mktemp("runs") / "flops_run"
    assert main(["flops", "--lengths", "16", "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def rl_run(tmp_path_factory) -> Path:
    """A finished tiny `lumos rl train` run (2 steps) with a checkpoint (for --resume cases)."""
    out = tmp_path_factory.mktemp("runs") / "rl_run"
    assert main(["rl", "train", "--checkpoint-every", "1", "--out", str(out), *TINY_RL, "--steps", "2"]) == 0
    return out


@pytest.fixture(scope="module")
def damaged_runs(rl_run, tmp_path_factory) -> dict[str, Path]:
    """Copies of the rl run with a corrupt state.json, a dangling `latest` pointer, and a config.json list."""
    import shutil

    root = tmp_path_factory.mktemp("damaged")
    out = {}
    for name in ("state", "latest", "config"):
        d = root / name
        shutil.copytree(rl_run, d)
        latest = d / "checkpoints" / (d / "checkpoints" / "latest").read_text().strip()
        if name == "state":
            (latest / "state.json").write_text("{truncated")
        elif name == "latest":
            (d / "checkpoints" / "latest").write_text("step_999999\n")
        else:
            (d / "config.json").write_text("[1, 2]")
        out[name] = d
    return out


@pytest.fixture(scope="module")
def study_dirs(tmp_path_factory) -> dict[str, Path]:
    """Study directories written without training (cheap): an rl study with no finished run, a merged study, and
    a 1-epoch select-study."""
    from lumos.core.rundir import RunDir
    from lumos.studies.rl_study import StudyConfig
    from lumos.studies.selection_study import SelectionStudyConfig

    root = tmp_path_factory.mktemp("studies")
    cfg = StudyConfig.quick().to_dict()
    with RunDir.create("rl study", cfg, out=root / "empty", seed=0) as run:
        run.log({"phase": "sft", "seed": 0, "sft_loss_teach": 1.0})
        run.log({"algo": "cispo", "updates": 4, "lr": 1e-3, "eps_high": 4.0, "seed": 0, "step": 0, "fork_prob": 0.1})
    with RunDir.create("rl study", {"merged": [str(root / "empty")], **cfg}, out=root / "merged", seed=0):
        pass
    with RunDir.create("select-study", SelectionStudyConfig.quick(epochs=1).to_dict(), out=root / "select1",
                       seed=0):
        pass
    return {"empty": root / "empty", "merged": root / "merged", "select1": root / "select1"}


# ------------------------------------------------------------------------------------------------------ cases
# Each case: (id, argv template). "{X}" is replaced by the fixture file X, "{OUT}" by a fresh run directory,
# "{RUN}" by an existing finished run, "{RL}" by an existing rl train run.
CASES: list[tuple[str, list[str]]] = [
    # argument parsing
    ("unknown-command", ["nope"]),
    ("unknown-flag", ["flops", "--no-such-flag"]),
    ("int-flag-text", ["flops", "--prompt", "many"]),
    ("float-flag-text", ["value", "builtin:wine", "--noise", "lots"]),
    ("bad-choice", ["value", "builtin:wine", "--variant", "weird"]),
    ("negative-seed", ["flops", "--seed", "-1", "--out", "{OUT}"]),
    # --out
    ("out-is-file-flops", ["flops", "--out", "{a_file}"]),
    ("out-is-file-value", ["value", "builtin:wine", "--out", "{a_file}"]),
    ("out-is-file-generate", ["generate", "--model", "{ckpt_ok}", "--prompt", "hi", "--out", "{a_file}"]),
    ("out-under-file", ["flops", "--out", "{a_file}/sub"]),
    ("out-existing-run-flops", ["flops", "--out", "{RUN}"]),
    ("out-existing-run-value", ["value", "builtin:wine", "--out", "{RUN}"]),
    ("out-existing-run-rl", ["rl", "train", *TINY_RL, "--out", "{RL}"]),
    ("out-nonempty-nonrun", ["flops", "--out", "{empty_folder}/.."]),
    ("resume-and-overwrite", ["rl", "train", *TINY_RL, "--resume", "--overwrite", "--out", "{RL}"]),
    ("resume-not-a-run", ["rl", "train", *TINY_RL, "--resume", "--out", "{OUT}"]),
    ("resume-without-out", ["rl", "train", *TINY_RL, "--resume"]),
    # rl train numbers
    ("rl-temperature-nan", ["rl", "train", *TINY_RL, "--temperature", "nan", "--out", "{OUT}"]),
    ("rl-temperature-negative", ["rl", "train", *TINY_RL, "--temperature", "-1", "--out", "{OUT}"]),
    ("rl-temperature-inf", ["rl", "train", *TINY_RL, "--temperature", "inf", "--out", "{OUT}"]),
    ("rl-warm-start-negative", ["rl", "train", *TINY_RL, "--warm-start", "-3", "--out", "{OUT}"]),
    ("rl-grad-clip-nan", ["rl", "train", *TINY_RL, "--grad-clip", "nan", "--out", "{OUT}"]),
    ("rl-grad-clip-negative", ["rl", "train", *TINY_RL, "--grad-clip", "-1", "--out", "{OUT}"]),
    ("rl-lr-zero", ["rl", "train", *TINY_RL, "--lr", "0", "--out", "{OUT}"]),
    ("rl-lr-nan", ["rl", "train", *TINY_RL, "--lr", "nan", "--out", "{OUT}"]),
    ("rl-group-size-0", ["rl", "train", *TINY_RL, "--group-size", "0", "--out", "{OUT}"]),
    ("rl-group-size-1", ["rl", "train", *TINY_RL, "--group-size", "1", "--out", "{OUT}"]),
    ("rl-minibatches-above-batch", ["rl", "train", *TINY_RL, "--prompts-per-step", "1", "--minibatches", "8",
                                    "--out", "{OUT}"]),
    ("rl-steps-negative", ["rl", "train", *TINY_RL, "--steps", "-1", "--out", "{OUT}"]),
    ("rl-beta-negative", ["rl", "train", *TINY_RL, "--algo", "grpo", "--beta", "-0.1", "--out", "{OUT}"]),
    ("rl-beta-with-cispo", ["rl", "train", *TINY_RL, "--beta", "0.1", "--out", "{OUT}"]),
    ("rl-adam-beta2-one", ["rl", "train", *TINY_RL, "--adam-beta2", "1.0", "--out", "{OUT}"]),
    ("rl-eps-high-nan", ["rl", "train", *TINY_RL, "--eps-high", "nan", "--out", "{OUT}"]),
    ("rl-eps-low-negative", ["rl", "train", *TINY_RL, "--eps-low", "-0.2", "--out", "{OUT}"]),
    ("rl-overlong-too-big", ["rl", "train", *TINY_RL, "--overlong-cache", "99", "--out", "{OUT}"]),
    ("rl-checkpoint-every-negative", ["rl", "train", *TINY_RL, "--checkpoint-every", "-1", "--out", "{OUT}"]),
    ("rl-eval-samples-negative", ["rl", "train", *TINY_RL, "--eval-samples", "-2", "--out", "{OUT}"]),
    ("rl-bad-algo", ["rl", "train", *TINY_RL, "--algo", "ppo9", "--out", "{OUT}"]),
    ("rl-bad-schedule", ["rl", "train", *TINY_RL, "--lr-schedule", "exp", "--out", "{OUT}"]),
    ("rl-bad-old-logp", ["rl", "train", *TINY_RL, "--old-logp", "guess", "--out", "{OUT}"]),
    ("rl-unknown-task", ["rl", "train", *TINY_RL, "--task", "no-such-task", "--out", "{OUT}"]),
    ("rl-unknown-task-arg", ["rl", "train", *TINY_RL, "--task-arg", "colour=3", "--out", "{OUT}"]),
    ("rl-task-arg-no-equals", ["rl", "train", *TINY_RL, "--task-arg", "digits", "--out", "{OUT}"]),
    ("rl-task-arg-out-of-range", ["rl", "train", *TINY_RL, "--task-arg", "digits=99", "--out", "{OUT}"]),
    ("rl-task-arg-bool", ["rl", "train", *TINY_RL, "--task-arg", "digits=true", "--out", "{OUT}"]),
    ("rl-task-factory-missing", ["rl", "train", *TINY_RL, "--task", "no_such_module:make", "--out", "{OUT}"]),
    ("rl-task-jsonl-missing", ["rl", "train", *TINY_RL, "--task", "missing.jsonl", "--out", "{OUT}"]),
    ("rl-model-missing", ["rl", "train", *TINY_RL, "--model", "no/such/dir", "--out", "{OUT}"]),
    ("rl-model-invalid-json", ["rl", "train", *TINY_RL, "--model", "{ckpt_badjson}", "--out", "{OUT}"]),
    ("rl-model-json-list", ["rl", "train", *TINY_RL, "--model", "{ckpt_list}", "--out", "{OUT}"]),
    ("rl-model-pickle-only", ["rl", "train", *TINY_RL, "--model", "{ckpt_pickle}", "--out", "{OUT}"]),
    ("rl-override-without-resume", ["rl", "train", *TINY_RL, "--override", "lr=0.1", "--out", "{OUT}"]),
    ("rl-resume-different-flags", ["rl", "train", *TINY_RL, "--resume", "--lr", "0.5", "--out", "{RL}"]),
    ("rl-resume-different-algo", ["rl", "train", *TINY_RL, "--resume", "--algo", "grpo", "--out", "{RL}"]),
    ("rl-resume-override-unknown", ["rl", "train", "--resume", "--override", "colour=1", "--out", "{RL}"]),
    ("rl-resume-override-bad-value", ["rl", "train", "--resume", "--override", "lr=-1", "--out", "{RL}"]),
    ("rl-resume-override-no-equals", ["rl", "train", "--resume", "--override", "lr", "--out", "{RL}"]),
    ("rl-resume-different-model", ["rl", "train", "--resume", "--model", "hybrid-small", "--out", "{RL}"]),
    ("rl-resume-corrupt-state", ["rl", "train", "--resume", "--out", "{DAMAGED_state}"]),
    ("rl-resume-dangling-latest", ["rl", "train", "--resume", "--out", "{DAMAGED_latest}"]),
    ("rl-resume-config-list", ["rl", "train", "--resume", "--out", "{DAMAGED_config}"]),
    # rl compare / fp32-head
    ("compare-seeds-0", ["rl", "compare", *TINY_RL, "--seeds", "0", "--out", "{OUT}"]),
    ("compare-seeds-negative", ["rl", "compare", *TINY_RL, "--seeds", "-2", "--out", "{OUT}"]),
    ("compare-checkpoint-every", ["rl", "compare", *TINY_RL, "--checkpoint-every", "1", "--out", "{OUT}"]),
    ("compare-bad-algo", ["rl", "compare", *TINY_RL, "--algos", "cispo,ppo9", "--out", "{OUT}"]),
    ("compare-empty-algos", ["rl", "compare", *TINY_RL, "--algos", ",", "--out", "{OUT}"]),
    ("compare-temperature-nan", ["rl", "compare", *TINY_RL, "--temperature", "nan", "--out", "{OUT}"]),
    # rl study / rl curves / select-study (issue #27): refused before any directory is written
    ("study-merge-same-dir-twice", ["rl", "study", "--merge", "{STUDY_empty}", "{STUDY_empty}", "--out", "{OUT}"]),
    ("study-merge-no-finished-run", ["rl", "study", "--merge", "{STUDY_empty}", "--out", "{OUT}"]),
    ("study-merge-a-merged-study", ["rl", "study", "--merge", "{STUDY_merged}", "--out", "{OUT}"]),
    ("study-merge-an-rl-run", ["rl", "study", "--merge", "{RL}", "--out", "{OUT}"]),
    ("study-merge-a-file", ["rl", "study", "--merge", "{ok.py}", "--out", "{OUT}"]),
    ("study-lr-nan", ["rl", "study", "--quick", "--lr", "nan", "--out", "{OUT}"]),
    ("study-lr-grid-negative", ["rl", "study", "--quick", "--lr-grid", "1e-3,-1", "--out", "{OUT}"]),
    ("study-lr-grid-unknown-arm", ["rl", "study", "--quick", "--lr-grid", "ppo9=1e-3", "--out", "{OUT}"]),
    ("study-eval-samples-negative", ["rl", "study", "--quick", "--eval-samples", "-1", "--out", "{OUT}"]),
    ("study-seed-tuned-and-reported", ["rl", "study", "--quick", "--tune-seeds", "0", "--eval-seeds", "0,1",
                                       "--out", "{OUT}"]),
    ("study-eps-high-grid-inf", ["rl", "study", "--quick", "--eps-high-grid", "inf", "--out", "{OUT}"]),
    ("study-bad-arm", ["rl", "study", "--quick", "--algos", "cispo,ppo9", "--out", "{OUT}"]),
    ("curves-an-rl-run", ["rl", "curves", "{RL}", "--out", "{OUT}"]),
    ("curves-no-finished-run", ["rl", "curves", "{STUDY_empty}", "--out", "{OUT}"]),
    ("curves-same-part-twice", ["rl", "curves", "{STUDY_empty}", "{STUDY_empty}", "--out", "{OUT}"]),
    ("select-study-resume-an-rl-run", ["select-study", "--quick", "--resume", "--out", "{RL}"]),
    ("select-study-resume-other-epochs", ["select-study", "--quick", "--epochs", "5", "--resume",
                                          "--out", "{STUDY_select1}"]),
    ("fp32-head-samples-0", ["rl", "fp32-head", "--samples", "0", "--out", "{OUT}"]),
    ("fp32-head-warm-negative", ["rl", "fp32-head", "--warm-start", "-1", "--out", "{OUT}"]),
    ("fp32-head-bad-task", ["rl", "fp32-head", "--task", "nope", "--out", "{OUT}"]),
    # flops / plan
    ("flops-prompt-negative", ["flops", "--prompt", "-3", "--out", "{OUT}"]),
    ("flops-lengths-text", ["flops", "--lengths", "12,abc", "--out", "{OUT}"]),
    ("flops-lengths-zero", ["flops", "--lengths", "0", "--out", "{OUT}"]),
    ("flops-lengths-empty", ["flops", "--lengths", ",", "--out", "{OUT}"]),
    ("flops-config-missing", ["flops", "--lengths", "16", "--config", "missing.json", "--out", "{OUT}"]),
    ("flops-config-invalid-json", ["flops", "--lengths", "16", "--config", "{invalid.json}", "--out", "{OUT}"]),
    ("flops-config-list", ["flops", "--lengths", "16", "--config", "{list.json}", "--out", "{OUT}"]),
    ("flops-config-release-partial", ["flops", "--lengths", "16", "--config", "{release_partial.json}",
                                      "--out", "{OUT}"]),
    ("plan-gpus-0", ["plan", "--gpus", "0", "--gpu-memory", "80", "--context", "1024", "--out", "{OUT}"]),
    ("plan-memory-nan", ["plan", "--gpus", "8", "--gpu-memory", "nan", "--context", "1024", "--out", "{OUT}"]),
    ("plan-context-0", ["plan", "--gpus", "8", "--gpu-memory", "80", "--context", "0", "--out", "{OUT}"]),
    ("plan-unknown-model", ["plan", "--model", "gpt-9", "--gpus", "8", "--gpu-memory", "80", "--context", "1024",
                            "--out", "{OUT}"]),
    ("plan-context-400-digits", ["plan", "--gpus", "8", "--gpu-memory", "80", "--context", "9" * 400, "--out", "{OUT}"]),
    ("plan-batch-400-digits", ["plan", "--gpus", "8", "--gpu-memory", "80", "--context", "8", "--batch", "9" * 400,
                               "--out", "{OUT}"]),
    ("plan-train-fp8", ["plan", "--gpus", "8", "--gpu-memory", "80", "--context", "8", "--train", "--dtype", "fp8",
                        "--out", "{OUT}"]),
    ("plan-bad-dtype", ["plan", "--gpus", "8", "--gpu-memory", "80", "--context", "8", "--dtype", "int3",
                        "--out", "{OUT}"]),
    ("flops-lengths-400-digits", ["flops", "--lengths", "16," + "9" * 400, "--out", "{OUT}"]),
    ("flops-prompt-400-digits", ["flops", "--prompt", "9" * 400, "--out", "{OUT}"]),
    # export
    ("export-source-missing", ["export", "no/such/dir", "{OUT}"]),
    ("export-into-its-run", ["export", "{RL}", "{RL}"]),
    ("export-into-its-checkpoints", ["export", "{RL}", "{RL}/checkpoints/exported"]),
    ("export-over-checkpoint", ["export", "{ckpt_ok}", "{ckpt_nan}"]),
    ("export-into-file", ["export", "{ckpt_ok}", "{a_file}"]),
    ("export-into-a-run", ["export", "{ckpt_ok}", "{RUN}"]),
    ("export-run-without-checkpoint", ["export", "{RUN}", "{OUT}"]),
    ("export-crafted-metadata", ["export", "{dcp_crafted}", "{OUT}"]),
    ("export-missing-shard", ["export", "{dcp_missing_shard}", "{OUT}"]),
    ("export-max-shard-0", ["export", "{ckpt_ok}", "{OUT}", "--max-shard-size", "0"]),
    ("export-nan-weights", ["export", "{ckpt_nan}", "{OUT}"]),
    # value: numbers
    ("value-noise-nan", ["value", "builtin:wine", "--noise", "nan", "--out", "{OUT}"]),
    ("value-noise-one", ["value", "builtin:wine", "--noise", "1.0", "--out", "{OUT}"]),
    ("value-noise-negative", ["value", "builtin:wine", "--noise", "-0.1", "--out", "{OUT}"]),
    ("value-epochs-0", ["value", "builtin:wine", "--epochs", "0", "--out", "{OUT}"]),
    ("value-tmc-max-time-negative", ["value", "builtin:wine", "--tmc-max-time", "-5", "--out", "{OUT}"]),
    ("value-tmc-max-time-nan", ["value", "builtin:wine", "--tmc-max-time", "nan", "--out", "{OUT}"]),
    ("value-train-negative", ["value", "builtin:wine", "--train", "-0.5", "--out", "{OUT}"]),
    ("value-train-fractional-count", ["value", "builtin:wine", "--train", "10.5", "--out", "{OUT}"]),
    ("value-split-too-big", ["value", "builtin:wine", "--train", "170", "--val", "20", "--out", "{OUT}"]),
    ("value-unknown-method", ["value", "builtin:wine", "--methods", "chg,magic", "--out", "{OUT}"]),
    ("value-unknown-builtin", ["value", "builtin:mnist", "--out", "{OUT}"]),
    # value: files
    ("value-missing-file", ["value", "missing.csv", "--out", "{OUT}"]),
    ("value-txt-file", ["value", "{data.txt}", "--out", "{OUT}"]),
    ("value-csv-ragged", ["value", "{ragged.csv}", "--out", "{OUT}"]),
    ("value-csv-latin1", ["value", "{latin1.csv}", "--out", "{OUT}"]),
    ("value-csv-inf", ["value", "{inf.csv}", "--out", "{OUT}"]),
    ("value-csv-nan", ["value", "{nan.csv}", "--out", "{OUT}"]),
    ("value-csv-text-feature", ["value", "{text_feature.csv}", "--out", "{OUT}"]),
    ("value-csv-header-only", ["value", "{header_only.csv}", "--out", "{OUT}"]),
    ("value-csv-empty", ["value", "{empty.csv}", "--out", "{OUT}"]),
    ("value-csv-label-missing", ["value", "{good.csv}", "--label-col", "target", "--out", "{OUT}"]),
    ("value-npz-empty", ["value", "{empty.npz}", "--out", "{OUT}"]),
    ("value-npz-not-zip", ["value", "{notzip.npz}", "--out", "{OUT}"]),
    ("value-npz-length-mismatch", ["value", "{mismatch.npz}", "--out", "{OUT}"]),
    ("value-npz-object", ["value", "{object.npz}", "--out", "{OUT}"]),
    ("value-npz-strings", ["value", "{strings.npz}", "--out", "{OUT}"]),
    ("value-npz-no-labels", ["value", "{no_y.npz}", "--out", "{OUT}"]),
    ("value-npz-nan", ["value", "{nan.npz}", "--out", "{OUT}"]),
    ("value-npz-single-array", ["value", "{single.npz}", "--out", "{OUT}"]),
    # value: tables as users have them (issue #22)
    ("value-id-col-unknown", ["value", "{good.csv}", "--id-col", "customer", "--out", "{OUT}"]),
    ("value-id-col-is-label", ["value", "{good.csv}", "--id-col", "y", "--out", "{OUT}"]),
    ("value-drop-cols-unknown", ["value", "{good.csv}", "--drop-cols", "a,zz", "--out", "{OUT}"]),
    ("value-drop-cols-empty-list", ["value", "{good.csv}", "--drop-cols", ",", "--out", "{OUT}"]),
    ("value-drop-every-feature", ["value", "{good.csv}", "--drop-cols", "a,b", "--out", "{OUT}"]),
    ("value-categorical-unknown", ["value", "{good.csv}", "--categorical", "zz", "--out", "{OUT}"]),
    ("value-impute-unknown", ["value", "{good.csv}", "--impute", "zero", "--out", "{OUT}"]),
    ("value-csv-mixed-column", ["value", "{mixed.csv}", "--out", "{OUT}"]),
    ("value-val-data-missing", ["value", "{good.csv}", "--val-data", "missing.csv", "--out", "{OUT}"]),
    ("value-val-data-other-columns", ["value", "{good.csv}", "--val-data", "{good_other_cols.csv}", "--out", "{OUT}"]),
    ("value-val-data-new-label", ["value", "{good.csv}", "--val-data", "{good_new_label.csv}", "--out", "{OUT}"]),
    ("value-val-data-with-train", ["value", "{good.csv}", "--val-data", "{good.csv}", "--train", "0.5", "--out", "{OUT}"]),
    ("value-builtin-with-id-col", ["value", "builtin:wine", "--id-col", "id", "--out", "{OUT}"]),
    ("value-npz-drop-cols", ["value", "{mismatch.npz}", "--drop-cols", "a", "--out", "{OUT}"]),
    # explain / explain-eval
    ("explain-missing-image", ["explain", "missing.png", "--model", "builtin:cnn", "--out", "{OUT}"]),
    ("explain-not-an-image", ["explain", "{fake.png}", "--model", "builtin:cnn", "--out", "{OUT}"]),
    ("explain-bomb", ["explain", "{bomb.png}", "--model", "builtin:cnn", "--out", "{OUT}"]),
    ("explain-num-classes-0", ["explain", "{bomb.png}", "--model", "torchvision:resnet18", "--num-classes", "0",
                               "--out", "{OUT}"]),
    ("explain-batch-size-0", ["explain", "{fake.png}", "--model", "builtin:cnn", "--batch-size", "0", "--out", "{OUT}"]),
    ("explain-image-size-negative", ["explain", "{fake.png}", "--model", "builtin:cnn", "--image-size", "-4",
                                     "--out", "{OUT}"]),
    ("explain-unknown-method", ["explain", "{fake.png}", "--model", "builtin:cnn", "--method", "magiccam",
                                "--out", "{OUT}"]),
    ("explain-class-negative", ["explain", "{fake.png}", "--model", "builtin:cnn", "--class", "-1", "--out", "{OUT}"]),
    ("explain-weights-missing", ["explain", "{fake.png}", "--model", "torchvision:resnet18", "--weights",
                                 "missing.safetensors", "--out", "{OUT}"]),
    ("explain-bad-target", ["explain", "{fake.png}", "--model", "builtin:cnn", "--target", "entropy", "--out", "{OUT}"]),
    ("explain-eval-empty-folder", ["explain-eval", "--data", "{empty_folder}", "--model", "builtin:cnn",
                                   "--out", "{OUT}"]),
    ("explain-eval-missing-folder", ["explain-eval", "--data", "no/such/folder", "--model", "builtin:cnn",
                                     "--out", "{OUT}"]),
    ("explain-eval-limit-0", ["explain-eval", "--data", "builtin", "--model", "builtin:cnn", "--limit", "0",
                              "--out", "{OUT}"]),
    ("explain-eval-resize-builtin", ["explain-eval", "--data", "builtin", "--model", "builtin:cnn", "--resize", "40",
                                     "--out", "{OUT}"]),
    ("explain-eval-auc-negative", ["explain-eval", "--data", "builtin", "--model", "builtin:cnn", "--auc-steps", "-1",
                                   "--out", "{OUT}"]),
    ("explain-eval-bad-methods", ["explain-eval", "--data", "builtin", "--model", "builtin:cnn", "--methods", "x,y",
                                  "--out", "{OUT}"]),
    # generate
    ("generate-model-missing", ["generate", "--model", "no/such/dir", "--prompt", "hi", "--out", "{OUT}"]),
    ("generate-model-invalid-json", ["generate", "--model", "{ckpt_badjson}", "--prompt", "hi", "--out", "{OUT}"]),
    ("generate-model-json-list", ["generate", "--model", "{ckpt_list}", "--prompt", "hi", "--out", "{OUT}"]),
    ("generate-nan-weights", ["generate", "--model", "{ckpt_nan}", "--prompt", "hi", "--out", "{OUT}"]),
    ("generate-invalid-utf8-prompt", ["generate", "--model", "{ckpt_ok}", "--prompt", "caf\udce9", "--out", "{OUT}"]),
    ("generate-empty-prompt", ["generate", "--model", "{ckpt_ok}", "--prompt", "", "--out", "{OUT}"]),
    ("generate-temperature-nan", ["generate", "--model", "{ckpt_ok}", "--prompt", "hi", "--temperature", "nan",
                                  "--out", "{OUT}"]),
    ("generate-temperature-negative", ["generate", "--model", "{ckpt_ok}", "--prompt", "hi", "--temperature", "-1",
                                       "--out", "{OUT}"]),
    ("generate-top-p-2", ["generate", "--model", "{ckpt_ok}", "--prompt", "hi", "--top-p", "2", "--out", "{OUT}"]),
    ("generate-top-k-0", ["generate", "--model", "{ckpt_ok}", "--prompt", "hi", "--top-k", "0", "--out", "{OUT}"]),
    ("generate-max-new-0", ["generate", "--model", "{ckpt_ok}", "--prompt", "hi", "--max-new-tokens", "0",
                            "--out", "{OUT}"]),
    ("generate-format-mismatch", ["generate", "--model", "{ckpt_ok}", "--prompt", "hi", "--format", "transformers",
                                  "--out", "{OUT}"]),
    ("generate-run-without-checkpoint", ["generate", "--model", "{RUN}", "--prompt", "hi", "--out", "{OUT}"]),
    ("generate-crafted-metadata", ["generate", "--model", "{dcp_crafted}", "--prompt", "hi", "--out", "{OUT}"]),
    ("rl-expert-parallel-0", ["rl", "train", *TINY_RL, "--expert-parallel", "0", "--out", "{OUT}"]),
    ("rl-expert-parallel-negative", ["rl", "train", *TINY_RL, "--expert-parallel", "-2", "--out", "{OUT}"]),
    # sandbox
    ("sandbox-missing-file", ["sandbox", "run", "missing.py", "--out", "{OUT}"]),
    ("sandbox-latin1-file", ["sandbox", "run", "{latin1.py}", "--out", "{OUT}"]),
    ("sandbox-wall-time-nan", ["sandbox", "run", "{ok.py}", "--wall-time", "nan", "--out", "{OUT}"]),
    ("sandbox-wall-time-negative", ["sandbox", "run", "{ok.py}", "--wall-time", "-1", "--out", "{OUT}"]),
    ("sandbox-memory-0", ["sandbox", "run", "{ok.py}", "--memory-mb", "0", "--out", "{OUT}"]),
    ("sandbox-tests-missing", ["sandbox", "run", "{ok.py}", "--tests", "missing.py", "--out", "{OUT}"]),
    ("sandbox-cpu-time-0", ["sandbox", "run", "{ok.py}", "--cpu-time", "0", "--out", "{OUT}"]),
    ("sandbox-max-processes-1e9", ["sandbox", "run", "{ok.py}", "--max-processes", "1e9", "--out", "{OUT}"]),
    ("sandbox-max-processes-huge", ["sandbox", "run", "{ok.py}", "--max-processes", "1000000000", "--out", "{OUT}"]),
    ("sandbox-wall-time-1e300", ["sandbox", "run", "{ok.py}", "--wall-time", "1e300", "--out", "{OUT}"]),
    ("sandbox-memory-huge", ["sandbox", "run", "{ok.py}", "--memory-mb", "99999999999", "--out", "{OUT}"]),
    ("check-tasks-symlinked-file", ["rl", "check-tasks", "{tasks_link_file}"]),
    ("check-tasks-symlinked-repo", ["rl", "check-tasks", "{tasks_link_repo}"]),
    # demo
    ("demo-unknown-section", ["demo", "--quick", "--only", "no-such-section", "--out", "{OUT}"]),
]


def _fill(argv: list[str], files: dict[str, Path], tmp_path: Path, request) -> list[str]:
    out = []
    for a in argv:
        if "{OUT}" in a:
            a = a.replace("{OUT}", str(tmp_path / "out"))
        if "{RUN}" in a:
            a = a.replace("{RUN}", str(request.getfixturevalue("existing_run")))
        if "{RL}" in a:
            a = a.replace("{RL}", str(request.getfixturevalue("rl_run")))
        if "{STUDY_" in a:
            for name, path in request.getfixturevalue("study_dirs").items():
                a = a.replace("{STUDY_" + name + "}", str(path))
        if "{DAMAGED_" in a:
            for name, path in request.getfixturevalue("damaged_runs").items():
                a = a.replace("{DAMAGED_" + name + "}", str(path))
        for name, path in files.items():
            a = a.replace("{" + name + "}", str(path))
        out.append(a)
    return out


def _running_runs(*roots: Path) -> list[Path]:
    bad = []
    for root in roots:
        for m in root.rglob("manifest.json"):
            try:
                if json.loads(m.read_text()).get("status") == "running":
                    bad.append(m.parent)
            except (OSError, json.JSONDecodeError):
                bad.append(m.parent)
    return bad


@pytest.mark.parametrize("argv", [c[1] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_cli_input(argv, files, tmp_path, request, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # default run directories (runs/...) land here
    monkeypatch.delenv("LUMOS_DEBUG", raising=False)
    args = _fill(argv, files, tmp_path, request)
    snapshot = {p: p.stat().st_mtime_ns for p in (tmp_path.parent).rglob("metrics.jsonl")}
    status = main(args)
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert status == 2, f"exit {status}; stderr: {err}"
    assert len(lines) == 1, err
    assert "Traceback" not in err and "lumos" in lines[0] and "error" in lines[0], err
    assert not _running_runs(tmp_path), "a run directory was left 'running'"
    for p, t in snapshot.items():  # existing runs are never touched by a refused command
        assert p.stat().st_mtime_ns == t, f"{p} was modified"
    if request.node.callspec.id.startswith(_NOTHING_WRITTEN):
        assert not (tmp_path / "out").exists(), "a refused command created its output directory"
        assert not (files["a_file"].parent / "MARKER").exists(), "a crafted checkpoint ran code"
    for name, before in _protected_snapshot.items():
        assert _tree(files[name]) == before, f"{name} was changed"


#: cases whose output directory must not exist afterwards (checked before any run directory is created)
_NOTHING_WRITTEN = ("plan-", "flops-lengths-400", "flops-prompt-400", "export-", "generate-run-without",
                    "generate-crafted", "rl-expert-parallel")
_protected_snapshot: dict[str, dict[str, bytes]] = {}


def _tree(path: Path) -> dict[str, bytes]:
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


@pytest.fixture(autouse=True, scope="module")
def _protect(files):
    """The checkpoints export cases aim at must be byte-identical after every case."""
    for name in ("ckpt_ok", "ckpt_nan", "dcp_crafted"):
        _protected_snapshot[name] = _tree(files[name])
    yield
    _protected_snapshot.clear()


@pytest.mark.parametrize("argv", [
    ["rl", "study", "--quick", "--lr", "nan", "--out", "{OUT}"],
    ["rl", "study", "--quick", "--eval-samples", "-1", "--out", "{OUT}"],
    ["rl", "study", "--merge", "{STUDY_empty}", "--out", "{OUT}"],
    ["select-study", "--quick", "--resume", "--out", "{RL}"],
    ["select-study", "--quick", "--epochs", "5", "--resume", "--out", "{STUDY_select1}"],
], ids=["study-lr-nan", "study-eval-samples", "study-merge-empty", "select-resume-rl", "select-resume-epochs"])
def test_refused_study_commands_change_nothing_on_disk(argv, files, tmp_path, request, capsys, monkeypatch):
    """Issue #27: no run directory is created, and the named directory's files keep their bytes."""
    monkeypatch.chdir(tmp_path)
    args = _fill(argv, files, tmp_path, request)
    named = [Path(a) for a in args if Path(a).is_dir()]
    before = {p: p.read_bytes() for d in named for p in d.rglob("*") if p.is_file()}
    assert main(args) == 2
    capsys.readouterr()
    assert not (tmp_path / "out").exists() and not (tmp_path / "runs").exists()
    assert {p: p.read_bytes() for d in named for p in d.rglob("*") if p.is_file()} == before


# Refused resumes (issue 27): nothing in the run directory may change, config.json and manifest.json included.
RESUME_CASES: list[tuple[str, list[str]]] = [
    ("rl-resume-fsdp-on-unsharded-run", ["rl", "train", "--resume", "--fsdp", "--out", "{RL}"]),
    ("rl-resume-expert-parallel-on-unsharded-run", ["rl", "train", "--resume", "--expert-parallel", "2",
                                                    "--out", "{RL}"]),
    ("rl-resume-override-steps-below-current", ["rl", "train", "--resume", "--override", "steps=1", "--out", "{RL}"]),
    ("rl-resume-on-a-flops-run", ["rl", "train", "--resume", "--out", "{RUN}"]),
    ("select-study-resume-on-an-rl-run", ["select-study", "--quick", "--resume", "--out", "{RL}"]),
    ("rl-resume-different-flags-no-write", ["rl", "train", *TINY_RL, "--resume", "--lr", "0.5", "--out", "{RL}"]),
]


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("argv", [c[1] for c in RESUME_CASES], ids=[c[0] for c in RESUME_CASES])
def test_refused_resume_changes_nothing_on_disk(argv, files, tmp_path, request, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("LUMOS_DEBUG", raising=False)
    args = _fill(argv, files, tmp_path, request)
    run = Path(args[args.index("--out") + 1])
    before = _tree(run)
    status = main(args)
    err = capsys.readouterr().err
    assert status == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    after = _tree(run)
    assert after.keys() == before.keys() and all(after[k] == before[k] for k in before), \
        [k for k in set(before) | set(after) if before.get(k) != after.get(k)]


def test_config_contradictions_name_parameter_and_flag(tmp_path, capsys):
    """issue 27: a group of one learns nothing; more optimizer steps than samples; the library names the
    parameter, the CLI adds the flag."""
    out = ["--out", str(tmp_path / "o")]
    assert main(["rl", "train", *TINY_RL, "--group-size", "1", *out]) == 2
    assert "The 'group_size' parameter of RLConfig (--group-size) must be an int in the range [2, inf). Got 1" \
        in capsys.readouterr().err
    assert main(["rl", "train", *TINY_RL, "--prompts-per-step", "1", "--minibatches", "8", *out]) == 2
    assert "The 'minibatches' parameter of RLConfig (--minibatches) must be ≤ the samples of a rollout batch " \
           "(prompts_per_step × group_size = 2). Got 8" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_resume_messages_name_the_contradiction(files, tmp_path, request, capsys):
    rl = request.getfixturevalue("rl_run")
    for argv, want in ((["--fsdp"], "trained unsharded, but this resume asks for FSDP"),
                       (["--override", "steps=1"], "steps=1 is below the step its checkpoint reached (2)"),
                       (["--lr", "0.5"], "different configuration: lr (stored 0.0002, now 0.5)")):
        assert main(["rl", "train", "--resume", *argv, "--out", str(rl)]) == 2
        assert want in capsys.readouterr().err
    assert main(["select-study", "--quick", "--resume", "--out", str(rl)]) == 2
    assert "is a run of 'lumos rl train', not of 'lumos select-study'" in capsys.readouterr().err


def test_matrix_is_large_and_distinct():
    ids = [c[0] for c in CASES]
    assert len(ids) == len(set(ids))
    assert len(ids) + len(API_CASES) + len(RL_INPUT_CASES) >= 100
    assert not set(ids) & {c[0] for c in RL_INPUT_CASES}


# ------------------------------------------------------------------------------------------------ API cases
def _api_cases() -> list[tuple[str, object]]:
    from lumos.core.validation import check_float, check_int, check_positive_int, check_probability
    from lumos.explain import GradCAM
    from lumos.explain.metrics.perturbation import deletion_auc
    from lumos.layers.moe import SparseMoE
    from lumos.layers.softmax_attention import SoftmaxAttention
    from lumos.models import HybridLM, MiniMaxConfig, generate, load_pretrained, save_pretrained, tiny_hybrid
    from lumos.rl.config import RLConfig
    from lumos.sandbox import run_tests
    from lumos.valuation.baselines.knn import KNNShapleyValuer
    from lumos.valuation.baselines.retrain import TMCShapleyValuer
    from lumos.valuation.baselines.simple import EL2NValuer, ForgettingValuer, GraNdValuer, LossValuer

    X = np.random.default_rng(0).normal(size=(12, 3))
    y = np.arange(12) % 2

    def meta_model():
        with torch.device("meta"):
            m = HybridLM(MiniMaxConfig(hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                       num_key_value_heads=1, intermediate_size=8, num_local_experts=2))
        return m(torch.zeros(1, 3, dtype=torch.long))

    def meta_input():
        return tiny_hybrid(16, 1)(torch.zeros(1, 3, dtype=torch.long, device="meta"))

    def save_into_file():
        import tempfile

        with tempfile.NamedTemporaryFile() as fh:
            save_pretrained(tiny_hybrid(16, 1), fh.name)

    ids = torch.tensor([[1, 2]])

    def cnn():
        return torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU(),
                                   torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(4, 3))

    def gradcam_nan():
        net = cnn()
        x = torch.randn(2, 3, 8, 8)
        x[0, 0, 0, 0] = float("nan")
        return GradCAM(net, ["0"])(x)

    def deletion_mismatch():
        net = cnn()
        return deletion_auc(net, torch.randn(2, 3, 8, 8), torch.rand(3, 8, 8), torch.tensor([0, 1]), steps=2)

    cases: list[tuple[str, object]] = [
        ("bool-as-int", lambda: check_int(True, "n")),
        ("bool-as-positive-int", lambda: check_positive_int(False, "n")),
        ("nan-in-range", lambda: check_float(float("nan"), "x", 0.0, 1.0)),
        ("inf-float", lambda: check_float(float("inf"), "x")),
        ("probability-above-one", lambda: check_probability(1.5, "p")),
        ("moe-bool-experts", lambda: SparseMoE(8, 8, True, 1)),
        ("moe-top-k-too-big", lambda: SparseMoE(8, 8, 2, 3)),
        ("attention-bool-heads", lambda: SoftmaxAttention(8, True, 1, 8, 4)),
        ("config-bool-hidden", lambda: MiniMaxConfig(hidden_size=True)),
        ("config-release-omits-shape", lambda: MiniMaxConfig.from_dict({"model_type": "minimax_m1"})),
        ("rlconfig-nan-temperature", lambda: RLConfig(temperature=float("nan"))),
        ("rlconfig-bool-steps", lambda: RLConfig(steps=True)),
        ("loss-valuer-epochs-0", lambda: LossValuer(epochs=0).fit(X, y)),
        ("el2n-valuer-lr-nan", lambda: EL2NValuer(lr=float("nan")).fit(X, y)),
        ("grand-valuer-lr-negative", lambda: GraNdValuer(lr=-1.0).fit(X, y)),
        ("forgetting-valuer-epochs-bool", lambda: ForgettingValuer(epochs=True).fit(X, y)),
        ("forgetting-valuer-bad-model", lambda: ForgettingValuer(model="svm").fit(X, y)),
        ("tmc-max-time-negative", lambda: TMCShapleyValuer(max_time=-1).fit(X, y, X, y)),
        ("knn-k-bool", lambda: KNNShapleyValuer(k=True).fit(X, y, X, y)),
        ("meta-device-model", meta_model),
        ("gradcam-nan-input", gradcam_nan),
        ("deletion-auc-batch-mismatch", deletion_mismatch),
        ("run-tests-bytes-source", lambda: run_tests(b"def f(): pass", "def test_f(): pass")),
        ("meta-device-input", meta_input),
        ("load-pretrained-ep-without-mesh", lambda: load_pretrained("no/such/dir", expert_parallel=True)),
        ("load-pretrained-mesh-string", lambda: load_pretrained("no/such/dir", device_mesh="dp")),
        ("save-pretrained-into-file", save_into_file),
        ("save-pretrained-bad-dtype", lambda: save_pretrained(tiny_hybrid(16, 1), "never/written", dtype="bf17")),
        ("generate-callback-string", lambda: generate(tiny_hybrid(16, 1), ids, callback="print")),
        ("generate-greedy-temperature-0", lambda: generate(tiny_hybrid(16, 1), ids, do_sample=False, temperature=0)),
        ("generate-stop-strings-int", lambda: generate(tiny_hybrid(16, 1), ids, stop_strings=7)),
    ]
    return cases


API_CASES = range(31)  # indices into _api_cases(); test_api_case_count keeps the two in step


def test_api_case_count():
    assert len(_api_cases()) == len(API_CASES)


@pytest.mark.parametrize("i", API_CASES, ids=lambda i: f"api-{i}")
def test_bad_api_input(i):
    name, fn = _api_cases()[i]
    with pytest.raises(LumosError) as exc:
        fn()
    assert "\n" not in str(exc.value) and str(exc.value), name


# ------------------------------------------------------------------- RL data inputs (issue 27) and own models (21)
@pytest.fixture(scope="module")
def rl_inputs(tmp_path_factory) -> dict[str, Path]:
    """Data files, reward/task modules and model directories for the RL input cases."""
    d = tmp_path_factory.mktemp("rl_inputs")
    f: dict[str, Path] = {}

    def text(name: str, content: str | bytes) -> None:
        (d / name).write_bytes(content if isinstance(content, bytes) else content.encode("utf-8", "surrogatepass"))
        f[name] = d / name

    ok = '{"prompt": "1+1=", "answer": "2"}\n{"prompt": "2+2=", "answer": "4"}\n'
    text("ok.jsonl", ok)
    text("huge_prompt.jsonl", json.dumps({"prompt": "7" * 2_000_000, "answer": "1"}) + "\n" + ok)
    text("nan_answer.jsonl", ok + '{"prompt": "3+3=", "answer": NaN}\n')
    text("duplicate_key.jsonl", ok + '{"prompt": "3+3=", "answer": "6", "answer": "7"}\n')
    text("object_answer.jsonl", ok + '{"prompt": "3+3=", "answer": {"value": 6}}\n')
    text("latin1.jsonl", ok.encode() + '{"prompt": "caf\xe9", "answer": "1"}\n'.encode("latin-1"))
    text("surrogate.jsonl", ok + '{"prompt": "a \\ud800 b", "answer": "1"}\n')
    text("chat.jsonl", '{"prompt": [{"role": "user", "content": "1+1?"}], "answer": "2"}\n' + ok)
    text("raising_task.py", "def make():\n    raise RuntimeError('task data unreachable')\n")
    text("rewards.py", "def fn(completions, **kw):\n    return [0.0] * len(completions)\n")
    from models._own_model import save_model_dir

    f["own"] = save_model_dir(d / "own")
    f["own_bare"] = save_model_dir(d / "own_bare", tokenizer=False)
    f["own_small_vocab"] = save_model_dir(d / "own_small_vocab", model_vocab=27)
    f["own_no_template"] = save_model_dir(d / "own_no_template", chat_template=False)
    return f


RL_TINY = ["--warm-start", "0", "--steps", "1", "--prompts-per-step", "2", "--group-size", "2", "--minibatches", "1",
           "--max-new-tokens", "2", "--eval-problems", "2", "--eval-every", "0"]

# (id, argv, environment): each must fail with one line, exit 2, and create nothing under --out.
RL_INPUT_CASES: list[tuple[str, list[str], dict[str, str]]] = [
    ("rl-prompt-2mb", ["--task", "{huge_prompt.jsonl}"], {}),
    ("rl-max-prompt-chars-not-a-number", ["--task", "{ok.jsonl}"], {"LUMOS_MAX_PROMPT_CHARS": "abc"}),
    ("rl-max-prompt-chars-zero", ["--task", "{ok.jsonl}"], {"LUMOS_MAX_PROMPT_CHARS": "0"}),
    ("rl-jsonl-nan-answer", ["--task", "{nan_answer.jsonl}"], {}),
    ("rl-jsonl-duplicate-key", ["--task", "{duplicate_key.jsonl}"], {}),
    ("rl-jsonl-object-answer", ["--task", "{object_answer.jsonl}"], {}),
    ("rl-jsonl-not-utf8", ["--task", "{latin1.jsonl}"], {}),
    ("rl-jsonl-lone-surrogate", ["--task", "{surrogate.jsonl}"], {}),
    ("rl-system-prompt-lone-surrogate", ["--model", "{own}", "--task", "{ok.jsonl}", "--system-prompt", "a\udcffb"],
     {}),
    ("rl-task-empty-module", ["--task", ":factory"], {}),
    ("rl-task-relative-module", ["--task", ".relative:factory"], {}),
    ("rl-task-not-a-factory", ["--task", "os.path:join"], {}),
    ("rl-task-bare-jsonl", ["--task", "jsonl"], {}),
    ("rl-task-factory-raises", ["--task", "{raising_task.py}:make"], {}),
    ("rl-top-p-zero", ["--task-arg", "digits=1", "--top-p", "0"], {}),
    ("rl-top-k-zero", ["--task-arg", "digits=1", "--top-k", "0"], {}),
    ("rl-reward-missing-function", ["--task", "{ok.jsonl}", "--reward", "{rewards.py}:nope"], {}),
    ("rl-reward-missing-file", ["--task", "{ok.jsonl}", "--reward", "no_such_rewards.py:fn"], {}),
    ("rl-reward-weights-count", ["--task", "{ok.jsonl}", "--reward", "{rewards.py}:fn", "--reward-weights", "1", "2"],
     {}),
    ("rl-reward-on-builtin-task", ["--task-arg", "digits=1", "--reward", "{rewards.py}:fn"], {}),
    ("rl-eval-fraction-one", ["--task", "{ok.jsonl}", "--eval-every", "1", "--eval-fraction", "1"], {}),
    ("rl-no-held-out-rows", ["--task", "{ok.jsonl}", "--eval-every", "1", "--eval-fraction", "0"], {}),
    ("rl-eval-data-missing", ["--task", "{ok.jsonl}", "--eval-every", "1", "--eval-data", "missing.jsonl"], {}),
    ("rl-own-model-no-tokenizer", ["--model", "{own_bare}", "--task", "{ok.jsonl}"], {}),
    ("rl-own-model-vocab-mismatch", ["--model", "{own_small_vocab}", "--task", "{ok.jsonl}"], {}),
    ("rl-chat-prompt-without-template", ["--model", "{own_no_template}", "--task", "{chat.jsonl}"], {}),
    ("rl-chat-prompt-byte-model", ["--task", "{chat.jsonl}"], {}),
    ("rl-device-cuda-missing", ["--model", "llama", "--task-arg", "digits=1", "--device", "cuda:7"], {}),
    ("rl-device-bad-name", ["--task-arg", "digits=1", "--device", "cpu:0"], {}),
    ("rl-device-cuda-lumos-model", ["--task-arg", "digits=1", "--device", "cuda"], {}),
    ("rl-lora-negative", ["--model", "{own}", "--task", "{ok.jsonl}", "--lora-r", "-1"], {}),
    ("rl-lora-on-lumos-model", ["--task-arg", "digits=1", "--lora-r", "2"], {}),
    ("rl-report-to-unknown", ["--task-arg", "digits=1", "--report-to", "comet"], {}),
    ("rl-report-to-wandb-no-credentials", ["--task-arg", "digits=1", "--report-to", "wandb"],
     {"WANDB_MODE": "online", "WANDB_API_KEY": "", "NETRC": "/nonexistent/netrc"}),
]


@pytest.mark.parametrize("argv,env", [(c[1], c[2]) for c in RL_INPUT_CASES], ids=[c[0] for c in RL_INPUT_CASES])
def test_bad_rl_input(argv, env, rl_inputs, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("LUMOS_DEBUG", raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    args = []
    for a in argv:
        for name, path in rl_inputs.items():
            a = a.replace("{" + name + "}", str(path))
        args.append(a)
    out = tmp_path / "out"
    status = main(["rl", "train", *RL_TINY, *args, "--out", str(out)])
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert status == 2, f"exit {status}; stderr: {err}"
    assert len(lines) == 1 and "Traceback" not in err and lines[0].startswith("lumos: error:"), err
    assert not out.exists() and not (tmp_path / "runs").exists(), "something was written"
    if "not-utf8" in argv[-1] or argv[-1].endswith("latin1.jsonl"):
        assert "latin1.jsonl" in lines[0]
    for k in env:
        assert k in lines[0]
# ------------------------------------------------------------------------------- environment and machine (issue 27)
ENV_CASES = [
    ("max-data-bytes-text", {"LUMOS_MAX_DATA_BYTES": "abc"}, "LUMOS_MAX_DATA_BYTES must be an integer ≥ 1"),
    ("max-image-pixels-negative", {"LUMOS_MAX_IMAGE_PIXELS": "-5"}, "LUMOS_MAX_IMAGE_PIXELS must be an integer ≥ 1"),
    ("debug-unknown-word", {"LUMOS_DEBUG": "maybe"}, "LUMOS_DEBUG must be one of 1, true, yes, on"),
    ("progress-unknown-word", {"LUMOS_PROGRESS": "sometimes"}, "LUMOS_PROGRESS must be one of"),
    ("world-size-without-rank", {"WORLD_SIZE": "2"}, "WORLD_SIZE=2 but RANK is not set"),
    ("world-size-text", {"WORLD_SIZE": "abc"}, "WORLD_SIZE must be an integer ≥ 1. Got 'abc'"),
    ("rank-beyond-world", {"WORLD_SIZE": "2", "RANK": "5", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "1"},
     "RANK must be below WORLD_SIZE (2)"),
]


@pytest.mark.parametrize("env,want", [c[1:] for c in ENV_CASES], ids=[c[0] for c in ENV_CASES])
def test_bad_environment_is_one_line_naming_the_variable(env, want, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for k in ("LUMOS_DEBUG", "WORLD_SIZE", "RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(k, raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    assert main(["flops", "--lengths", "16", "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and want in err, err
    assert not (tmp_path / "out").exists()  # refused before any work


def test_debug_false_means_off(tmp_path, capsys, monkeypatch):
    """LUMOS_DEBUG=false used to turn debugging on (any value but '' and '0' did): now one rule for every flag."""
    from lumos.core.env import env_flag

    monkeypatch.chdir(tmp_path)
    for value, on in (("false", False), ("0", False), ("off", False), ("No", False), ("", False), ("1", True),
                      (" TRUE ", True), ("yes", True)):
        monkeypatch.setenv("LUMOS_DEBUG", value)
        assert env_flag("LUMOS_DEBUG") is on
    monkeypatch.setenv("LUMOS_DEBUG", "false")
    assert main(["flops", "--lengths", "x", "--out", str(tmp_path / "o")]) == 2  # an error, not a traceback
    assert "Traceback" not in capsys.readouterr().err


def test_full_disk_is_a_user_error_naming_the_path(tmp_path, capsys, monkeypatch):
    import errno
    import os

    from lumos.core import io

    def full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("LUMOS_DEBUG", raising=False)
    monkeypatch.setattr(io.os, "fsync", full)
    assert main(["flops", "--lengths", "16", "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    assert "No space left on device" in err and str(tmp_path / "out") in err and "internal error" not in err, err
    assert not list((tmp_path / "out").rglob(".*.tmp"))  # the half-written temporary file is gone


def test_deleted_working_directory_is_a_clear_error(tmp_path, capsys, monkeypatch):
    gone = tmp_path / "gone"
    gone.mkdir()
    monkeypatch.chdir(gone)
    gone.rmdir()
    assert main(["flops", "--lengths", "16"]) == 2
    err = capsys.readouterr().err
    assert "working directory no longer exists" in err and len(err.strip().splitlines()) == 1, err
