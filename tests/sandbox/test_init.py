import ast
import sys
from pathlib import Path

import lumos.rl.tasks.code as code
import lumos.sandbox as sandbox

SANDBOX = Path(sandbox.__file__).parent
#: the in-sandbox scripts: run under ``python -I -S`` with no lumos, so the standard library and each other only
IN_SANDBOX = ("_shared", "_wire", "_candidate", "_proxies", "_testrun", "_isolate", "_launcher")


def _imports(path: Path) -> list[tuple[str, int]]:
    """(module, level) of every import statement in ``path``, top level or nested."""
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out += [(a.name, 0) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module is None:  # ``from . import a, b``: modules a, b
            out += [(a.name, node.level) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            out.append((node.module, node.level))
    return out


def test_public_api():
    for module in (sandbox, code):
        assert module.__all__ and all(hasattr(module, name) for name in module.__all__)
    assert set(sandbox.EXIT_REASONS) == {"ok", "timeout", "memory", "crash", "output_limit", "error"}


def test_the_sandbox_imports_nothing_from_rl():
    modules = sorted(SANDBOX.glob("*.py"))
    assert len(modules) >= 15
    bad = [(p.name, m) for p in modules for m, level in _imports(p)
           if (level == 0 and (m == "lumos.rl" or m.startswith("lumos.rl.")))
           or (level == 2 and (m == "rl" or m.startswith("rl.")))]
    assert bad == []


def test_in_sandbox_scripts_import_only_the_standard_library_and_each_other():
    for stem in IN_SANDBOX:
        for mod, level in _imports(SANDBOX / f"{stem}.py"):
            top = mod.split(".")[0]
            ok = top in sys.stdlib_module_names or top in IN_SANDBOX or (level == 1 and top in IN_SANDBOX)
            assert ok, f"{stem}.py imports {'.' * level}{mod}"


def test_in_sandbox_scripts_are_small():
    for stem in ("_wire", "_candidate", "_proxies", "_testrun"):
        assert len((SANDBOX / f"{stem}.py").read_text().splitlines()) <= 400, stem
