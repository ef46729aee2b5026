"""The README's Python blocks, pasted in order into one script, run as a new user would run
them: in a fresh process, in an empty folder."""

import os
import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def python_blocks(text: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```$", text, flags=re.MULTILINE | re.DOTALL)


def test_every_python_block_runs_in_order_as_one_script(tmp_path):
    blocks = python_blocks(README.read_text())
    assert len(blocks) >= 6
    script = tmp_path / "pasted.py"
    script.write_text("\n".join(blocks))
    environment = {**os.environ, "MPLBACKEND": "Agg", "PYNN_DEVICE": "cpu"}
    done = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        env=environment,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "validation accuracy:" in done.stdout and "Total params: 61,706" in done.stdout
    assert done.stderr == "", done.stderr[-3000:]
    for written in ("best.pynn", "iris.pynn", "iris.weights.safetensors", "curves.png"):
        assert (tmp_path / written).stat().st_size > 0


def test_the_shell_commands_name_real_extras():
    text = README.read_text()
    extras = set(re.findall(r"pip install -e '\.\[(\w+)\]'", text))
    pyproject = (README.parent / "pyproject.toml").read_text()
    for extra in extras:
        assert re.search(rf"^{extra} = \[", pyproject, flags=re.MULTILINE), extra
