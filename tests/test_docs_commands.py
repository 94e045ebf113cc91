"""Every example command of README.md and docs/*.md that runs main.py or tools/*.py parses with
that tool's own argument parser, so no documented flag can go stale; the ones that fit a CPU
in seconds (``--help``, summary.py on the demo config) are run."""
import contextlib
import io
import re
import shlex
import subprocess
import sys

import pytest

from tests.conftest import REPO_ROOT, load_script

DOCS = [REPO_ROOT / "README.md", *sorted((REPO_ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^ *```[^\n]*\n(.*?)^ *```", re.MULTILINE | re.DOTALL)
INLINE = re.compile(r"`(python[^`]*)`")
TOOL = re.compile(r"(?:^|/)(main|tools/\w+)\.py$")


def _commands(text):
    """Commands (backslash continuations joined) from fenced blocks and inline code spans."""
    found = []
    for block in FENCE.findall(text):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split(" # ")[0].strip()  # a trailing comment is not part of it
            if line.startswith("python") or " python" in line.split("#")[0]:
                found.append(line[line.index("python"):])
    found += INLINE.findall(FENCE.sub("", text))
    return found


def _is_synopsis(argv):
    """A usage line with placeholders for choices (``a|b``) or optional parts (``[...]``),
    not a command to run."""
    return any("|" in token or token.startswith("[") for token in argv)


def _split(command):
    """Shell words of ``command``; a command quoted inside another (``srun bash -c "python
    ..."``) was cut at its opening quote, so its closing one is dropped."""
    try:
        return shlex.split(command)
    except ValueError:
        return shlex.split(command.rstrip().rstrip("\"'"))


def _documented():
    """``(doc, command, tool, argv)`` for every command that runs one of the project's tools."""
    items = []
    commands = [(doc, part) for doc in DOCS for command in _commands(doc.read_text("utf-8"))
                for part in command.split(" && ")]  # "a && b": two commands, two tools
    for doc, command in commands:
        tokens = _split(command)
        at = next((i for i, t in enumerate(tokens) if TOOL.search(t)), None)
        if at is None:
            continue
        tool, argv = TOOL.search(tokens[at]).group(1), tokens[at + 1:]
        # a shell variable ($SLURM_NODEID) is a value the shell fills in: "0" parses as any
        argv = ["0" if re.fullmatch(r"\\?\$\w+", token) else token for token in argv]
        if not _is_synopsis(argv):
            items.append((doc.name, command, tool, argv))
    return items


DOCUMENTED = _documented()


def _load(tool):
    return load_script(f"{tool}.py")


def test_the_docs_document_every_tool():
    tools = {tool for _, _, tool, _ in DOCUMENTED}
    assert {"main", "tools/predict", "tools/export_model", "tools/summary",
            "tools/convert_checkpoint", "tools/check_videos"} <= tools


@pytest.mark.parametrize("doc, command, tool, argv", DOCUMENTED,
                         ids=[f"{d}:{c[:60]}" for d, c, _, _ in DOCUMENTED])
def test_documented_command_parses(doc, command, tool, argv):
    abbreviated = "..." in argv
    argv = [token for token in argv if token != "..."]
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            _load(tool).parse_args(argv)
            code = 0
        except SystemExit as exit_:
            code = exit_.code
    message = err.getvalue()
    if abbreviated and "the following arguments are required" in message:
        return  # "main.py ..." leaves the rest out on purpose; the flags it shows parsed
    assert code == 0, f"{doc}: {command}\n{message}"


RUNNABLE = [(doc, command) for doc, command, _, argv in DOCUMENTED
            if argv[-1:] == ["--help"] or ("tools/summary.py" in command
                                          and "slowfast_demo.yaml" in command)]


def test_some_documented_commands_run_here():
    assert any("--help" in c for _, c in RUNNABLE)
    assert any("summary.py" in c for _, c in RUNNABLE)


@pytest.mark.parametrize("doc, command", RUNNABLE, ids=[c for _, c in RUNNABLE])
def test_documented_command_runs(doc, command):
    tokens = shlex.split(command)
    proc = subprocess.run([sys.executable] + tokens[1:], cwd=REPO_ROOT, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, f"{doc}: {command}\n{proc.stderr[-2000:]}"
    expected = "usage:" if tokens[-1] == "--help" else "Parameters:"
    assert expected in proc.stdout
