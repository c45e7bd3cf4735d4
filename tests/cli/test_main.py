import argparse
import subprocess
import sys

import pytest

import lumos.cli.main as cli_main
from lumos.cli.main import COMMAND_MODULES, build_parser
from lumos.core.errors import LumosError


def test_help_lists_commands(capsys):
    assert cli_main.main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "demo" in out


def test_version(capsys):
    assert cli_main.main(["--version"]) == 0
    assert "lumos" in capsys.readouterr().out


def _patched(monkeypatch, func):
    parser = build_parser()
    ns = parser.parse_args(["demo", "--quick"])
    ns.func = func
    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", lambda self, argv=None: ns)


def test_unforeseen_exception_is_one_line_exit_1(monkeypatch, capsys):
    def bug(args: argparse.Namespace) -> int:
        return {}["missing"]

    _patched(monkeypatch, bug)
    monkeypatch.delenv("LUMOS_DEBUG", raising=False)
    assert cli_main.main(["demo"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "KeyError" in err and "LUMOS_DEBUG=1" in err and "Traceback" not in err
    monkeypatch.setenv("LUMOS_DEBUG", "1")
    with pytest.raises(KeyError):
        cli_main.main(["demo"])


def test_os_errors_are_user_errors(monkeypatch, capsys):
    def denied(args: argparse.Namespace) -> int:
        raise PermissionError(13, "Permission denied", "/x/y")

    _patched(monkeypatch, denied)
    assert cli_main.main(["demo"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "/x/y" in err


def test_user_error_is_one_line_exit_2(monkeypatch, capsys):
    def boom(args: argparse.Namespace) -> int:
        raise LumosError("The 'x' parameter must be positive.\nGot -1 instead.")

    parser = build_parser()
    ns = parser.parse_args(["demo", "--quick"])
    ns.func = boom
    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", lambda self, argv=None: ns)
    assert cli_main.main(["demo"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("lumos: error: ") and "Traceback" not in err


def test_bad_arguments_subprocess():
    r = subprocess.run([sys.executable, "-m", "lumos.cli.main", "nope"], capture_output=True, text=True)
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr


def test_every_command_module_registers():
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert len(sub.choices) >= len(COMMAND_MODULES)


def test_output_survives_a_c_locale(monkeypatch, tmp_path):
    """LC_ALL=C with an ASCII stdout: a non-ASCII character becomes '?' instead of failing the finished command."""
    import io

    raw = io.BytesIO()
    stream = io.TextIOWrapper(raw, encoding="ascii")
    monkeypatch.setattr(sys, "stdout", stream)
    cli_main._tolerant_output()
    print("4 \u00d7 80 GiB \u2264 72")
    stream.flush()
    assert raw.getvalue() == b"4 ? 80 GiB ? 72\n"


def test_a_system_without_its_extra_names_the_install_command(monkeypatch, capsys):
    """The core-install path (tests/test_install.py builds a real one, slowly): a command module whose extra is
    missing leaves its command out, and naming it prints the pip command on one line."""
    from lumos.core.extras import MissingExtraError

    real = cli_main.importlib.import_module

    def without_rl(name, *a, **k):
        if name == "lumos.rl.cli":
            raise MissingExtraError("lumos.rl", "rl", ["datasets"])
        return real(name, *a, **k)

    monkeypatch.setattr(cli_main.importlib, "import_module", without_rl)
    assert build_parser().missing_extras == ["lumos.rl needs the 'rl' extra (missing: datasets): "
                                             "pip install 'lumos[rl]'"]
    assert cli_main.main(["rl", "train"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unknown command 'rl'" in err and "pip install 'lumos[rl]'" in err, err
    assert cli_main.main(["demo", "--help"]) == 0          # the installed systems still work
