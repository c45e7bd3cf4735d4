import matplotlib.pyplot as plt

from lumos.core.report import Report


def test_report_is_self_contained(tmp_path):
    r = Report("T <title>", meta={"seed": 0})
    s = r.section("Results")
    s.text("a < b")
    s.table([{"method": "chg", "auc": 0.91234}, {"method": "loss", "f1": 0.5}])
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    s.figure(fig, caption="curve", save_to=tmp_path / "curve.png")
    out = r.save(tmp_path / "report.html")
    html = out.read_text()
    assert html.startswith("<!DOCTYPE html>")
    assert "data:image/png;base64," in html
    assert "T &lt;title&gt;" in html and "a &lt; b" in html
    assert "<th>auc</th>" in html and "0.9123" in html and "<th>f1</th>" in html
    assert (tmp_path / "curve.png").read_bytes()[:4] == b"\x89PNG"
    # offline: no external references
    for bad in ("http://", "https://", "<script", "<link"):
        assert bad not in html
