import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_sandbox_benchmark_quick(tmp_path):
    out = tmp_path / "rows.json"
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "sandbox.py"), "--quick", "--json", str(out)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(out.read_text())
    cases = {(r["case"], r["variant"]) for r in rows}
    assert ("start", "fork server, full isolation") in cases and ("start", "spawned launcher, full isolation") in cases
    assert ("suite", "pool, 2 worker(s)") in cases and ("trivial", "pool, 1 worker(s)") in cases
    for r in rows:
        assert r["seconds"] > 0
        if "jobs" in r:
            assert r["ok"] == r["jobs"] and r["evals_per_s"] > 0
