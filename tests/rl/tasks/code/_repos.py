"""User repair-task directories for the code-task tests."""

from __future__ import annotations

import json


def make_user_task(root, name, command=None, harness=None):
    d = root / name
    (d / "repo").mkdir(parents=True)
    (d / "repo" / "lib.py").write_text("def double(x):\n    return x + x + 1\n")
    (d / "repo" / "test_lib.py").write_text("from lib import double\n\ndef test_double():\n    assert double(2) == 4\n")
    meta = {"failing_tests": ["test_lib.py::test_double"], "description": "double is off by one.",
            "fix": "--- a/lib.py\n+++ b/lib.py\n@@ -1,2 +1,2 @@\n def double(x):\n-    return x + x + 1\n"
                   "+    return x + x\n"}
    if command:
        meta["test_command"] = command
    if harness:
        meta["harness"] = harness
    (d / "task.json").write_text(json.dumps(meta))
