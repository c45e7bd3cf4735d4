from lumos.studies.demo import registered_sections, run_demo


def test_hybrid_model_demo_section_quick(tmp_path):
    assert "Hybrid MiniMax model" in registered_sections()
    run, failed = run_demo(out=tmp_path / "d", quick=True, only=["Hybrid MiniMax model"])
    assert failed == []
    html = (tmp_path / "d" / "report.html").read_text()
    assert "Hybrid MiniMax model" in html and "all-lightning ms/token" in html and "minimax_m1" in html
    assert (tmp_path / "d" / "plots" / "hybrid_decode_vs_context.png").is_file()
    rows = [r for r in (tmp_path / "d" / "metrics.jsonl").read_text().splitlines() if '"formats"' in r]
    assert len(rows) == 2
