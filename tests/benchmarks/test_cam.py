import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_cam_benchmark_quick(tmp_path):
    pytest.importorskip("pytorch_grad_cam")
    out = tmp_path / "rows.json"
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "cam.py"), "--quick", "--json", str(out)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = json.loads(out.read_text())
    assert {r["method"] for r in rows} == {"gradcam", "hirescam", "shapleycam"}
    for r in rows:
        assert r["lumos_ms_per_image"] > 0 and r["gradcam_lib_ms_per_image"] > 0
        assert r["max_abs_diff"] <= 1e-4, r  # the same maps as grad-cam
    shap = next(r for r in rows if r["method"] == "shapleycam")
    assert {"ratio_to_lumos_gradcam", "ratio_to_gradcam_lib_shapleycam", "meets_targets"} <= set(shap)
    assert "ShapleyCAM / lumos GradCAM" in proc.stdout
