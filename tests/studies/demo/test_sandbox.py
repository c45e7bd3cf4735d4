import json

from lumos.sandbox import probe_isolation
from lumos.studies.demo import SECTION_MODULES, run_demo


def test_sandbox_demo_section(tmp_path):
    assert "lumos.studies.demo.sandbox" in SECTION_MODULES
    run, failed = run_demo(out=tmp_path / "demo", quick=True, only=["Sandboxed code rewards"])
    assert failed == []
    rows = [json.loads(line) for line in (tmp_path / "demo" / "metrics.jsonl").read_text().splitlines()]
    reasons = {r["case"]: r["exit_reason"] for r in rows if "case" in r}
    assert reasons["infinite loop"] == "timeout" and reasons["memory bomb"] == "memory"
    assert reasons["huge output"] == "output_limit"
    escaped = next(r["escaped_write"] for r in rows if "escaped_write" in r)
    iso = probe_isolation()
    assert escaped is False or not (iso.readonly_fs or iso.uid_dropped)
    rewards = {(r["task"], r["answer"]): r["reward"] for r in rows if "answer" in r}
    assert all(rewards[(t, "reference")] > rewards[(t, "bad")] for t, _ in rewards)
    forged = {(r["task"], r["attack"]): r["reward"] for r in rows if "attack" in r}
    assert len(forged) == 4 and forged[("code-repair (in-process harness)", "write pass records into every fd, exit 0")] == 1
    assert all(v <= 0.1 for (task, _), v in forged.items() if "in-process" not in task), forged
