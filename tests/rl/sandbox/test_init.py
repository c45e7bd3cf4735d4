import lumos.rl.sandbox as sandbox
import lumos.rl.tasks.code as code


def test_public_api():
    for module in (sandbox, code):
        assert module.__all__ and all(hasattr(module, name) for name in module.__all__)
    assert set(sandbox.EXIT_REASONS) == {"ok", "timeout", "memory", "crash", "output_limit", "error"}
