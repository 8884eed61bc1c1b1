"""The README's Python example runs as written (with a concrete trajectory)."""

import re
from pathlib import Path

import numpy as np

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_python_example_runs():
    block = re.search(r"```python\n(.*?)```", README.read_text(), re.S).group(1)
    c2w = np.tile(np.eye(4), (17, 1, 1))
    c2w[:, 2, 3] = np.linspace(0, 1, 17)
    scope = {"c2w": c2w, "fx": 80.0, "fy": 80.0, "cx": 48.0, "cy": 32.0}
    exec(compile(block, str(README), "exec"), scope)
    assert scope["v"].shape == (1, 8, 3, 2, 3)
    assert scope["state"].frames_done == 1
