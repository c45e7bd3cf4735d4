import json

from lumos.studies.demo import run_demo


def test_lightning_demo_section_quick(tmp_path):
    run, failed = run_demo(out=tmp_path / "demo", quick=True, only=["Lightning attention"])
    assert failed == []
    rows = [json.loads(x) for x in (tmp_path / "demo" / "metrics.jsonl").read_text().splitlines()]
    acc = [r for r in rows if r.get("kind") == "accuracy"]
    assert len(acc) == 12 and all(float(r["rel RMS err"]) < 1e-5 for r in acc)
    speed = [r for r in rows if r.get("kind") == "speed"]
    assert [r["L"] for r in speed] == [256, 512] and all(r["lumos chunked ms"] > 0 for r in speed)
    assert "Lightning attention" in (tmp_path / "demo" / "report.html").read_text()
