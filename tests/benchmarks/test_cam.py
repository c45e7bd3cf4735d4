
import pytest


@pytest.mark.slow
def test_cam_benchmark_quick(run_benchmark):
    pytest.importorskip("pytorch_grad_cam")
    out, proc = run_benchmark("cam")
    rows = out["methods"]
    snippets = out["snippets"]  # grad-cam's README snippets with the import prefix swapped
    assert snippets and all(r["max_abs_diff"] <= 1e-4 for r in snippets), snippets
    assert {r["method"] for r in rows} == {"gradcam", "hirescam", "shapleycam"}
    for r in rows:
        assert r["lumos_ms_per_image"] > 0 and r["gradcam_lib_ms_per_image"] > 0
        assert r["max_abs_diff"] <= 1e-4, r  # the same maps as grad-cam
    shap = next(r for r in rows if r["method"] == "shapleycam")
    assert {"ratio_to_lumos_gradcam", "ratio_to_gradcam_lib_shapleycam", "meets_targets"} <= set(shap)
    assert "ShapleyCAM / lumos GradCAM" in proc.stdout
