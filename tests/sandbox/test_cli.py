import json

from lumos.cli.main import main


def test_sandbox_run_cli(tmp_path, capsys):
    cand = tmp_path / "cand.py"
    cand.write_text("def add(a, b):\n    return a + b\n")
    tests = tmp_path / "tests.py"
    tests.write_text("def test_add():\n    assert add(1, 2) == 3\n\ndef test_wrong():\n    assert add(1, 2) == 4\n")
    rc = main(["sandbox", "run", str(cand), "--tests", str(tests), "--out", str(tmp_path / "run"), "--json"])
    out = json.loads(capsys.readouterr().out)
    assert rc == 1 and out["passed"] == ["test_add"] and out["failed"] == ["test_wrong"]
    assert json.loads((tmp_path / "run" / "verdict.json").read_text())["exit_reason"] == "ok"
    cand.write_text("print('hello')\n")
    rc = main(["sandbox", "run", str(cand), "--out", str(tmp_path / "run2")])
    assert rc == 0 and "hello" in capsys.readouterr().out


def test_sandbox_cli_errors(tmp_path, capsys):
    assert main(["sandbox", "run", str(tmp_path / "missing.py")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["sandbox", "info"]) == 0
    assert "network" in capsys.readouterr().out
