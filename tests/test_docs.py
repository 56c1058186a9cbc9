"""The documentation's shell and TOML examples are checked against the real parsers (the
Python examples run as doctests: ``make docs``): every ``recsys ...`` command line in the docs
and the README parses with the CLI's argparse, every TOML block passes the job-file schema."""

import re
import shlex
from pathlib import Path

import pytest

from recsys.cli import build_parser
from recsys.config import load_config

ROOT = Path(__file__).parents[1]
PAGES = sorted((ROOT / "docs").rglob("*.rst")) + [ROOT / "README.md"]


def _blocks(path: Path, language: str) -> list[str]:
    text = path.read_text()
    blocks = re.findall(rf"```{language}\n(.*?)```", text, flags=re.S)
    for match in re.finditer(rf"\.\. code-block:: {language}\n\n((?:(?:   .*)?\n)+)", text):
        lines = match.group(1).splitlines()
        blocks.append("\n".join(line[3:] for line in lines))
    return blocks


def _commands(block: str) -> list[list[str]]:
    """``recsys`` invocations of a shell block, variables (``D="..."``) expanded."""
    text = block.replace("\\\n", " ")
    variables, out = {}, []
    for line in text.splitlines():
        line = line.split(" #")[0].strip()
        assign = re.fullmatch(r"(\w+)=(.*)", line)
        if assign:
            variables[assign.group(1)] = shlex.split(assign.group(2))[0]
            continue
        for part in line.split("&&"):
            for name, value in variables.items():
                part = part.replace(f"${name}", value)
            words = shlex.split(part)
            if words[:1] == ["recsys"]:
                out.append(words[1:])
    return out


COMMANDS = [(path.relative_to(ROOT), words) for path in PAGES
            for block in _blocks(path, "bash") for words in _commands(block)]


def test_the_docs_show_commands():
    assert len(COMMANDS) >= 15


@pytest.mark.parametrize("page, words", COMMANDS, ids=[" ".join(w[:2]) for _, w in COMMANDS])
def test_every_documented_command_parses(page, words, capsys):
    try:
        build_parser().parse_args(words)
    except SystemExit:
        pytest.fail(f"{page}: `recsys {' '.join(words)}` does not parse: "
                    f"{capsys.readouterr().err.strip()}")


@pytest.mark.parametrize("page", [p for p in PAGES if _blocks(p, "toml")],
                         ids=lambda p: p.name)
def test_every_documented_job_file_passes_the_schema(page, tmp_path):
    for block in _blocks(page, "toml"):
        job = tmp_path / "job.toml"
        job.write_text(block)
        assert load_config(job)
