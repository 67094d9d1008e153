"""The README's option tables and the CLI's own options cannot drift apart.

Each ``| option | default | meaning |`` table in the README belongs to the command named in the
heading above it. Every option of that command appears in its table and nothing else does, and a
default written as a number in the table is the default the command really has (which the CLI
reads from the library's settings, so the library, the CLI and the README say one thing).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import typer.main

from agebatch.cli import app

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCUMENTS = [README, *sorted((ROOT / "docs").glob("*.md"))]  # option tables live in README and docs/
HEADING = re.compile(r"^#{2,4} .*?`agebatch (\w+)")


def _tables() -> dict[str, list[tuple[str, str]]]:
    """command -> [(first cell, default cell)] for every option table in the README and docs/."""
    tables: dict[str, list[tuple[str, str]]] = {}
    for document in DOCUMENTS:
        _read_tables(document.read_text(encoding="utf-8").splitlines(), tables)
    return tables


def _read_tables(lines: list[str], tables: dict[str, list[tuple[str, str]]]) -> None:
    command = None
    for number, line in enumerate(lines):
        heading = HEADING.match(line)
        if heading:
            command = heading.group(1)
        if line.startswith("| option | default | meaning |") and command:
            rows = tables.setdefault(command, [])
            for row in lines[number + 2 :]:
                if not row.startswith("|"):
                    break
                cells = [c.strip() for c in re.split(r"(?<!\\)\|", row)[1:-1]]
                rows.append((cells[0], cells[1]))


TABLES = _tables()


def _command(name: str):
    group = typer.main.get_command(app)
    return group.commands[name]


def test_the_docs_have_option_tables_for_the_main_commands():
    assert {"scan", "report", "serve", "train"} <= set(TABLES)


def test_links_between_the_documents_lead_to_files_that_exist():
    for document in [*DOCUMENTS, ROOT / "ARCHITECTURE.md"]:
        for target in re.findall(r"\]\(([^)#:]+?\.md)(?:#[^)]*)?\)", document.read_text(encoding="utf-8")):
            assert (document.parent / target).is_file(), f"{document.name} links to missing {target}"


@pytest.mark.parametrize("name", sorted(TABLES))
def test_each_option_of_the_command_is_in_its_readme_table_and_nothing_else(name):
    documented = {flag for cell, _ in TABLES[name] for flag in re.findall(r"--[a-z][a-z0-9-]*", cell)}
    options = [
        {o for o in param.opts + param.secondary_opts if o.startswith("--")}
        for param in _command(name).params
        if param.param_type_name == "option" and "--help" not in param.opts
    ]
    undocumented = sorted(min(names) for names in options if not names & documented)
    unknown = sorted(documented - set().union(*options))
    assert not undocumented and not unknown, f"not in the README: {undocumented}; not an option: {unknown}"


NUMBER = r"-?\d+(\.\d+)?(e-?\d+)?"
WITH_NUMBERS = sorted(name for name, rows in TABLES.items() if any(re.fullmatch(NUMBER, d) for _, d in rows))


@pytest.mark.parametrize("name", WITH_NUMBERS)
def test_numeric_defaults_in_the_readme_are_the_commands_defaults(name):
    params = {o: p for p in _command(name).params for o in p.opts}
    checked = 0
    for cell, default in TABLES[name]:
        flag = re.search(r"--[a-z][a-z0-9-]*", cell)
        if flag and re.fullmatch(NUMBER, default):
            actual = params[flag.group()].default
            assert float(getattr(actual, "value", actual)) == float(default), flag.group()
            checked += 1
    assert checked > 0


@pytest.mark.parametrize("name", sorted(typer.main.get_command(app).commands))
def test_help_at_80_columns_names_every_option_in_full_and_no_python_types(name):
    from typer.testing import CliRunner

    result = CliRunner().invoke(app, [name, "--help"], terminal_width=80, env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    text = result.output
    for param in _command(name).params:
        for flag in param.opts + param.secondary_opts:
            if flag.startswith("--"):
                assert flag in text, flag
    assert not re.search(r"<(list|int|float|path|text)\b|\[Path\]|\.\.\.\}", text), text
    assert max(len(line) for line in text.splitlines()) <= 80, "examples and help fit an 80-column terminal"


@pytest.mark.slow
def test_the_readme_demo_table_is_what_the_demo_prints(tmp_path):
    """The README shows what the bundled demo really says with the shipped model, not an older one's."""
    import contextlib
    import io
    import os
    import subprocess
    import sys

    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env.pop("AGEBATCH_MODEL", None)
    results = tmp_path / "results.csv"
    scanned = subprocess.run(
        [sys.executable, "-m", "agebatch", "scan", "examples/photos", "--out", str(results), "-q"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert scanned.returncode == 0, scanned.stderr
    sys.path.insert(0, str(ROOT / "examples"))
    try:
        import demo_table
    finally:
        sys.path.remove(str(ROOT / "examples"))
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        demo_table.main(str(results))
    readme = README.read_text(encoding="utf-8")
    table, sentence = printed.getvalue().strip().split("\n\n")
    assert table in readme
    assert sentence in " ".join(readme.split()), "the sentence under the Grad-CAM picture"
