from lumos.studies.demo import SECTIONS, DemoContext, demo_section, run_demo


def test_demo_registry_and_failure_isolation(tmp_path):
    @demo_section("zz test ok", order=10_000)
    def ok(ctx: DemoContext) -> None:
        ctx.section.text("fine")
        ctx.log(value=1)

    @demo_section("zz test broken", order=10_001)
    def broken(ctx: DemoContext) -> None:
        raise RuntimeError("boom")

    try:
        run, failed = run_demo(out=tmp_path / "d", quick=True, only=["zz test"])
    finally:
        SECTIONS.unregister("zz test ok")
        SECTIONS.unregister("zz test broken")
    assert failed == ["zz test broken"]
    html = (tmp_path / "d" / "report.html").read_text()
    assert "fine" in html and "boom" in html


def test_unknown_section_is_a_clear_error(tmp_path):
    import pytest

    from lumos.core.errors import LumosError

    with pytest.raises(LumosError, match="one of the registered demo sections"):
        run_demo(out=tmp_path / "d", quick=True, only=["no such section"])
