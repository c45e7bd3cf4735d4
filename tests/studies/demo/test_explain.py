from lumos.studies.demo import run_demo


def test_shapleycam_demo_section_quick(tmp_path):
    run, failed = run_demo(out=tmp_path / "demo", quick=True, only=["ShapleyCAM explainers"])
    assert failed == []
    html = (tmp_path / "demo" / "report.html").read_text()
    assert "ShapleyCAM explainers" in html and "adcc" in html and "energy_pg" in html
    assert (tmp_path / "demo" / "plots" / "shapleycam_overlays.png").is_file()
    rows = [r for r in (tmp_path / "demo" / "metrics.jsonl").read_text().splitlines() if '"method"' in r]
    assert len(rows) == 2 * 2 * 4  # two models × two settings × four quick methods
