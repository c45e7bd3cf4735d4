"""Constants shared by the host side and the in-sandbox scripts, defined once (standard library only).

The host imports this module as ``lumos.sandbox._shared``; ``_launcher.py`` and its siblings, which run under
``python -I -S`` without lumos, import it as ``_shared`` from their own directory.
"""

import os

#: Longest line (bytes) of any channel: requests, replies, results and status records.
MAX_LINE = 1 << 20
#: Deepest nesting of a value crossing between the candidate and the test runner.
MAX_DEPTH = 32
#: Most distinct candidate objects one run may hand to the runner (handles and mirrored classes).
MAX_OBJECTS = 100_000
#: Working directories (``PREFIX<host pid>-…``) and root-only control directories of sandboxed runs.
PREFIX = "lumos-sbx-"
CONTROL_PREFIX = "lumos-sbxctl-"
#: ``PATH`` and ``LANG`` of every process the host starts for the sandbox.
PATH = "/usr/local/bin:/usr/bin:/bin"
LANG = "C.UTF-8"
#: The launcher script (fork server and one-job mode).
LAUNCHER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_launcher.py")
