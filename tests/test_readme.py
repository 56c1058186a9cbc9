"""The README stays short and true: its Python example runs, its models table lists every
registered model, its links point at files that exist."""

import re
from pathlib import Path

from recsys.models.base import registered_models

README = Path(__file__).parents[1] / "README.md"


def test_readme_is_short_and_lists_every_model():
    text = README.read_text()
    assert len(text.splitlines()) < 150
    table = [line for line in text.splitlines() if re.match(r"\| `\w+` \|", line)]
    assert {re.match(r"\| `(\w+)`", line).group(1) for line in table} == set(registered_models())


def test_readme_links_exist():
    text = README.read_text()
    for target in re.findall(r"\]\(([^)#]+)\)", text):
        if not target.startswith("http"):
            assert (README.parent / target).exists(), target


def test_readme_python_example_runs(data_home, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RECSYS_DATA_HOME", str(data_home))
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert blocks
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, "README.md", "exec"), namespace)  # noqa: S102 (our own README)
    assert set(namespace["recs"]["source"]) == {"model"} and (tmp_path / "ease.npz").exists()
