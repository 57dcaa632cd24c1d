"""The Python examples run as written: every one in the README, and those in docs/ that promise
what they print (a fragment of a page is not run). The README's figures come from
scripts/readme_figures.py, which knows the README's commands."""

import importlib.util
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCKS = [
    (page, code)
    for page in PAGES
    for code in re.findall(r"```python\n(.*?)```", page.read_text(encoding="utf-8"), re.DOTALL)
    if page.name == "README.md" or re.search(r"^print\(.*  # ", code, re.MULTILINE)
]


def _figures_script():
    spec = importlib.util.spec_from_file_location(
        "readme_figures", ROOT / "scripts/readme_figures.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_readme_has_python_examples():
    assert any(page.name == "README.md" for page, _ in BLOCKS)


@pytest.mark.parametrize(
    "page, code", BLOCKS, ids=[f"{page.stem}-{i}" for i, (page, _) in enumerate(BLOCKS)]
)
def test_example_runs_and_prints_what_its_comments_say(page, code, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # examples may write files
    exec(compile(code, str(page), "exec"), {})
    printed = capsys.readouterr().out.splitlines()
    promised = [
        comment
        for line in code.splitlines()
        if line.startswith("print(") and (comment := line.partition("  # ")[2])
    ]
    assert printed == promised


def test_the_figures_script_runs_the_readmes_commands():
    script = _figures_script()
    commands = script.readme_commands((ROOT / "README.md").read_text(encoding="utf-8"))
    assert commands[0] == "rnnkit train"  # the set-up command's last step
    assert set(script.READ) | script.NOT_RUN <= set(commands)


def test_every_figures_block_is_in_the_readme_once():
    script = _figures_script()
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for name in ("results", "sample", "diagnose"):
        assert script.replace_block(readme, name, "new").count("new") >= 1


def test_replace_block_swaps_only_the_block():
    script = _figures_script()
    text = "a\n<!-- figures:x -->\nold\n<!-- /figures:x -->\nb\n"
    assert script.replace_block(text, "x", "new\n") == (
        "a\n<!-- figures:x -->\nnew\n<!-- /figures:x -->\nb\n"
    )
    with pytest.raises(SystemExit, match="figures:y"):
        script.replace_block(text, "y", "new")


def test_ci_runs_the_readmes_test_command_word_for_word():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    test_command = next(
        line
        for block in re.findall(r"```bash\n(.*?)```", readme, re.DOTALL)
        for line in block.splitlines()
        if line.endswith("python -m pytest")
    )
    assert test_command in (ROOT / ".ci/run").read_text(encoding="utf-8").splitlines()
