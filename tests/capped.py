"""Runs a piece of Python in a child process whose address space is capped, so that a test of
what happens when memory runs out can neither take the machine down nor depend on how much
memory the machine has."""

import subprocess
import sys
import textwrap

_PRELUDE = """
import resource

def _vm_bytes():
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmSize")

def cap_memory(extra_mib):
    # What the process maps now (interpreter, NumPy, pynn, the thread pool), plus `extra_mib`.
    limit = _vm_bytes() + extra_mib * 2**20
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
"""


def run_capped(code: str, *args: str, timeout: float = 120, env=None):
    """Runs `code` (which calls `cap_memory(extra_mib)` once it has imported what it needs) in a
    fresh interpreter with command-line `args`; returns the finished process (stdout and stderr
    as text)."""
    source = _PRELUDE + textwrap.dedent(code)
    return subprocess.run(
        [sys.executable, "-c", source, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )
