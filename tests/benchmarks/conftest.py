import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def run_benchmark(tmp_path):
    """Run ``benchmarks/NAME.py --quick ARGS --json OUT`` in a fresh interpreter; return (parsed JSON, the process)."""

    def run(name: str, *args: str, timeout: int = 300):
        out = tmp_path / f"{name}.json"
        proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / f"{name}.py"), "--quick", *args,
                               "--json", str(out)], capture_output=True, text=True, timeout=timeout, cwd=ROOT)
        assert proc.returncode == 0, proc.stderr[-3000:]
        return json.loads(out.read_text()), proc

    return run
