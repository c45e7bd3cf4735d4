import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_rl_benchmark_quick(tmp_path):
    out = tmp_path / "rows.json"
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "rl.py"), "--quick", "--threads", "1",
                           "--json", str(out)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = json.loads(out.read_text())
    rollout = [r for r in rows if r["bench"] == "rollout"]
    assert [r["gen_length"] for r in rollout] == [32, 64]
    for r in rollout:
        assert r["lumos_tok_s"] > 0 and r["transformers_tok_s"] > 0 and r["speedup"] > 0
        assert r["lumos_compiled_tok_s"] > 0 and r["speedup_compiled"] > 0 and r["compile_s"] > 0
        assert r["max_logit_diff"] < 1e-4            # the same weights in both libraries
    steps = {r["phase"]: r for r in rows if r["bench"] == "rl_step"}
    assert set(steps) == {"rollout", "old_logp", "update"}
    assert abs(sum(r["share"] for r in steps.values()) - 1) < 1e-9
    assert "speedup" in proc.stdout and "RL step phase" in proc.stdout
