"""The CHG demo section runs in quick mode and fills its report section."""

from lumos.studies.demo import registered_sections, run_demo


def test_chg_demo_section_quick(tmp_path):
    assert "CHG Shapley data valuation" in registered_sections()
    run, failed = run_demo(out=tmp_path / "demo", quick=True, only=["CHG Shapley"])
    assert failed == []
    html = (tmp_path / "demo" / "report.html").read_text()
    assert "Noisy-label detection" in html and "data:image/png" in html
    assert (tmp_path / "demo" / "plots" / "chg_removal_curves.png").exists()
    assert "Data selection during training" in html and "GLISTER" in html and "Stratified random" in html
