"""`lumos rl train` killed with SIGKILL at several moments of a checkpoint write, then resumed: the result is
bit-identical to an uninterrupted run, no metrics row is lost (warm-start rows included) and no temporary file
survives the resume (issue #15)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from lumos.cli.main import main
from lumos.core.io import read_jsonl

TINY = ["--warm-start", "3", "--steps", "3", "--prompts-per-step", "2", "--group-size", "2", "--minibatches", "2",
        "--max-new-tokens", "3", "--eval-problems", "2", "--eval-every", "1", "--eval-samples", "0",
        "--checkpoint-every", "1", "--task-arg", "digits=1"]

# Runs `lumos rl train` and SIGKILLs itself at one moment of the step-2 checkpoint write (os.replace is the
# commit point of every atomic write, so wrapping it reaches each moment without touching library code).
DRIVER = textwrap.dedent('''
    import os, signal, sys
    from pathlib import Path

    import torch

    moment, threads, argv = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
    torch.set_num_threads(threads)  # the same as the test process: bitwise equality needs the same reductions
    real_replace = os.replace

    def die():
        os.kill(os.getpid(), signal.SIGKILL)

    def replace(src, dst, *a, **k):
        src, dst = Path(src), Path(dst)
        in_step2_tmp = dst.parent.name.startswith(".step_000002.")
        if moment == "before-model-rename" and in_step2_tmp and dst.name == "model.safetensors":
            die()
        if moment == "before-dir-rename" and dst.name == "step_000002":
            die()
        is_latest2 = dst.name == "latest" and src.read_text().strip() == "step_000002"
        if moment == "before-latest" and is_latest2:
            die()
        real_replace(src, dst, *a, **k)
        if moment == "after-latest" and is_latest2:
            die()

    os.replace = replace
    from lumos.cli.main import main
    sys.exit(main(argv))
''')

MOMENTS = ("before-model-rename", "before-dir-rename", "before-latest", "after-latest")


def _rows(path: Path) -> list[dict]:
    def timing(k: str) -> bool:  # wall-clock measurements differ between any two runs
        return k.endswith("_s") or k in ("seconds", "time", "elapsed")

    return [{k: v for k, v in r.items() if not timing(k)} for r in read_jsonl(path / "metrics.jsonl")]


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ref") / "run"
    assert main(["rl", "train", "--out", str(out), *TINY]) == 0
    return out


@pytest.mark.parametrize("moment", MOMENTS)
def test_kill_during_checkpoint_then_resume_is_bit_identical(moment, reference, tmp_path):
    out = tmp_path / "run"
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "LUMOS_PROGRESS": "0", "MPLBACKEND": "Agg"}
    r = subprocess.run([sys.executable, str(driver), moment, str(torch.get_num_threads()), "rl", "train", "--out",
                        str(out), *TINY],
                       capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == -9, r.stderr[-2000:]
    assert json.loads((out / "manifest.json").read_text())["status"] == "running"  # killed: nothing closed it
    expected_latest = "step_000002" if moment == "after-latest" else "step_000001"
    assert (out / "checkpoints" / "latest").read_text().strip() == expected_latest
    if moment == "after-latest":  # the killed run's step-2 checkpoint equals the uninterrupted run's
        ck = "checkpoints/step_000002/model.safetensors"
        a2, b2 = load_file(str(reference / ck)), load_file(str(out / ck))
        diff = [k for k in a2 if not torch.equal(a2[k], b2[k])]
        assert not diff, diff
        sa = json.loads((reference / "checkpoints/step_000002/state.json").read_text())
        sb = json.loads((out / "checkpoints/step_000002/state.json").read_text())
        assert sa == sb
    # resume with the same flags; it sweeps the killed write's temporary files and finishes the run
    assert main(["rl", "train", "--resume", "--out", str(out), *TINY]) == 0
    assert not list(out.rglob(".*.tmp")), list(out.rglob(".*.tmp"))
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "ok" and len(manifest["resumes"]) == 1
    final = "checkpoints/step_000003/model.safetensors"
    a, b = load_file(str(reference / final)), load_file(str(out / final))
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    rows_ref, rows = _rows(reference), _rows(out)
    assert [r for r in rows if r.get("phase") == "sft"] == [r for r in rows_ref if r.get("phase") == "sft"]
    assert len([r for r in rows if r.get("phase") == "sft"]) > 0
    assert rows == rows_ref
