"""The docs' runnable snippets run: the objective registered in docs/extend.md trains through RLConfig."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_extend_objective_snippet_registers_and_computes(tmp_path: Path) -> None:
    code = re.search(r"```python\n(.*?)```", (ROOT / "docs" / "extend.md").read_text(), re.S).group(1)
    check = code + (
        "\nfrom lumos.rl.objectives import available_losses, get_loss\n"
        "from lumos.rl.config import RLConfig\n"
        "assert 'my-cispo' in available_losses()\n"
        "logp = torch.randn(3, 4, requires_grad=True)\n"
        "loss, stats = get_loss('my-cispo')(logp, logp.detach() + 0.1, torch.randn(3), torch.ones(3, 4))\n"
        "loss.backward()\n"
        "assert torch.isfinite(logp.grad).all() and 'is_weight_max' in stats\n"
        "assert RLConfig(algo='my-cispo', eps_high=1.5).algo == 'my-cispo'\n"
    )
    out = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]


def test_readme_is_a_users_page() -> None:
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 250
    assert "make demo" in readme and "make test" in readme
    for link in re.findall(r"\]\(((?:docs/|CHANGELOG|CONTRIBUTING)[^)#]*)", readme):
        assert (ROOT / link).exists(), link
