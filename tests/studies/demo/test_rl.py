from lumos.core.io import read_jsonl
from lumos.studies.demo import run_demo


def test_rl_demo_section_quick(tmp_path):
    run, failed = run_demo(out=tmp_path / "d", quick=True, only=["CISPO reinforcement learning"])
    assert failed == []
    html = (tmp_path / "d" / "report.html").read_text()
    assert "CISPO reinforcement learning" in html and "greedy accuracy" in html and "avg@2" in html
    rows = [r for r in read_jsonl(tmp_path / "d" / "metrics.jsonl") if r.get("phase") == "rl"]
    assert [r["step"] for r in rows] == [1, 2] and all("accuracy" in r for r in rows)
    assert (tmp_path / "d" / "plots" / "rl_cispo.png").is_file()


def test_rl_study_demo_section_quick(tmp_path):
    run, failed = run_demo(out=tmp_path / "d", quick=True, only=["CISPO mechanism"])
    assert failed == []
    assert "fork tokens clipped" in (tmp_path / "d" / "report.html").read_text()
    rows = [r for r in read_jsonl(tmp_path / "d" / "metrics.jsonl") if r.get("phase") == "study" and "algo" in r]
    assert {r["algo"] for r in rows} == {"cispo", "dapo", "grpo"}
    assert (tmp_path / "d" / "plots" / "study.png").is_file()
