"""docs/python.md is executable: its ```python blocks run in order, in one namespace (a tutorial that works)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[2] / "docs" / "python.md"


def python_blocks(text: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", text, flags=re.S | re.M)


def test_the_tutorial_runs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    blocks = python_blocks(DOC.read_text(encoding="utf-8"))
    assert len(blocks) >= 8
    namespace: dict[str, object] = {"__name__": "docs_python"}
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        for n, block in enumerate(blocks, start=1):
            exec(compile(block, f"{DOC.name} block {n}", "exec"), namespace)
    finally:
        os.chdir(cwd)
    assert "no user 'shopper-999'" in capsys.readouterr().out
