"""Every shell command and Python snippet of the documentation runs as written.

Each fenced ```sh or ```python block of README.md, docs/*.md and
checkpoints/demo/README.md is executed in a fresh process, in a workspace
(`tests/workspace.py`) whose files carry the placeholder names the documents
use (`DIR`, `CONFIG.json`, `CKPT`, `vocab.txt`, `train.tsv`, ...): the
documents' text is run unchanged. A block that cannot run here is preceded by
`<!-- doc-test: skip REASON -->` (for example, it needs Google's released
checkpoint), and one that a dedicated test runs in its own environment by
`<!-- test: NAME -->` (docs/keras3.md, tests/test_keras3.py): then its
syntax and the names it uses are checked here instead: the
modules and attributes a Python block imports and uses exist, and each
`python -m MODULE --flag` of a shell block names a module that runs and
flags that it defines. Blocks of other languages (the layout tree, tables)
are text.
"""

import ast
import glob
import json
import os
import re
import shlex

import pytest

from tests import workspace

DOCUMENTS = sorted(
    ["README.md", os.path.join("checkpoints", "demo", "README.md")] +
    [os.path.relpath(p, workspace.REPO) for p in glob.glob(
        os.path.join(workspace.REPO, "docs", "*.md"))])

_BLOCK = re.compile(
    r"(?:<!--\s*(?P<kind>doc-test|test):\s*(?P<directive>[^>]*?)\s*-->\s*\n)?"
    r"^```(?P<language>[a-z]*)\n(?P<body>.*?)^```", re.S | re.M)
RUNNABLE = ("sh", "python")


def blocks(document):
  """[(id, language, body, skip reason or None)] of a document."""
  with open(os.path.join(workspace.REPO, document), encoding="utf-8") as f:
    text = f.read()
  result = []
  for match in _BLOCK.finditer(text):
    language = match.group("language")
    if language not in RUNNABLE:
      continue
    line = text.count("\n", 0, match.start("body"))
    directive = match.group("directive")
    skip = None
    if match.group("kind") == "test":
      # `<!-- test: NAME -->`: a dedicated test runs it (docs/keras3.md's
      # blocks need their own environments: tests/test_keras3.py).
      skip = f"run by a dedicated test ({directive})"
    elif directive:
      if not directive.startswith("skip"):
        raise ValueError(f"{document}:{line}: unknown doc-test directive "
                         f"{directive!r}; use `skip REASON`.")
      skip = directive[len("skip"):].strip() or "no reason given"
    result.append((f"{document}:{line}", language, match.group("body"),
                   skip))
  return result


ALL_BLOCKS = [b for d in DOCUMENTS for b in blocks(d)]


def _shell_commands(body):
  """The commands of a shell block, continuation lines joined."""
  return [c for c in body.replace("\\\n", " ").splitlines()
          if c.strip() and not c.strip().startswith("#")]


def _module_of(words):
  """The MODULE of a `python -m MODULE ...` command's words, else None."""
  return words[words.index("-m") + 1] if "-m" in words else None


def _check_python_names(body):
  """Imports resolve and every attribute used on an imported module exists."""
  tree = ast.parse(body)
  modules = {}
  for node in ast.walk(tree):
    if isinstance(node, ast.Import):
      for alias in node.names:
        modules[alias.asname or alias.name.split(".")[0]] = __import__(
            alias.name, fromlist=["_"] if alias.asname else [])
    elif isinstance(node, ast.ImportFrom):
      module = __import__(node.module, fromlist=["_"])
      for alias in node.names:
        if not hasattr(module, alias.name):
          __import__(f"{node.module}.{alias.name}")
        modules[alias.asname or alias.name] = getattr(module, alias.name)
  for node in ast.walk(tree):
    if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
        and node.value.id in modules):
      assert hasattr(modules[node.value.id], node.attr), (
          f"{node.value.id}.{node.attr} does not exist")


# Runs `python -m MODULE --help` for each module named on its command line,
# in one process (a fresh process each would pay TensorFlow's import each
# time); prints {module: help text} as JSON after a marker line.
_HELP_SCRIPT = """
import contextlib, io, json, runpy, sys
texts = {}
for module in sys.argv[1:]:
  sys.argv = [module, "--help"]
  with contextlib.redirect_stdout(io.StringIO()) as text:
    try:
      runpy.run_module(module, run_name="__main__", alter_sys=True)
    except SystemExit as e:
      if e.code not in (0, None):
        raise RuntimeError(f"python -m {module} --help exited {e.code}")
  texts[module] = text.getvalue()
print("MOBILEBERT_HELP_TEXTS")
print(json.dumps(texts))
"""
_USAGE = {}  # module -> its `--help` text


def _skipped_shell_modules():
  """The modules that skipped shell blocks run with `python -m`."""
  modules = set()
  for _, language, body, skip in ALL_BLOCKS:
    if skip and language == "sh":
      modules.update(_module_of(shlex.split(c, comments=True))
                     for c in _shell_commands(body))
  return sorted(modules - {None})


def _usage(module, cwd):
  if not _USAGE:
    modules = _skipped_shell_modules()
    output = workspace.run(
        "python - " + " ".join(modules) + " <<'MOBILEBERT_HELP'\n" +
        _HELP_SCRIPT + "MOBILEBERT_HELP\n", cwd=cwd).stdout
    _USAGE.update(json.loads(output.split("MOBILEBERT_HELP_TEXTS\n")[-1]))
  return _USAGE[module]


def _check_shell_names(body, cwd):
  with open(os.path.join(workspace.REPO, "Makefile"), encoding="utf-8") as f:
    targets = set(re.findall(r"^([a-z][\w-]*):", f.read(), re.M))
  for command in _shell_commands(body):
    words = shlex.split(command, comments=True)
    if words and words[0] == "make":
      assert set(words[1:]) <= targets, f"no Makefile target {words[1:]}"
      continue
    module = _module_of(words)
    if module is None:
      continue
    usage = _usage(module, cwd)
    for word in words:
      if word.startswith("--") and word not in ("--help", "--helpfull"):
        flag = word[2:].split("=", 1)[0]
        assert re.search(rf"--(\[no\])?{re.escape(flag)}\b", usage), (
            f"`python -m {module}` has no flag --{flag}")


@pytest.mark.parametrize("block_id, language, body, skip", ALL_BLOCKS,
                         ids=[b[0] for b in ALL_BLOCKS])
def test_documented_block_runs(block_id, language, body, skip,
                               workspace_dir):
  if skip:
    if language == "python":
      _check_python_names(body)
    else:
      _check_shell_names(body, workspace_dir)
    return
  if language == "python":
    command = "python - <<'MOBILEBERT_DOC_SNIPPET'\n" + body + (
        "MOBILEBERT_DOC_SNIPPET\n")
  else:
    command = body
  workspace.run(command, cwd=workspace_dir, timeout=900)


def test_readme_export_command_is_the_one_the_workspace_runs():
  """README's export block runs when the workspace is built (its `DIR`)."""
  assert workspace.EXPORT_COMMAND in [b[2] for b in blocks("README.md")]


def test_every_document_has_runnable_blocks():
  """The parser finds the blocks (a regression in it would skip them all)."""
  readme = blocks("README.md")
  assert sum(1 for b in readme if b[3] is None) >= 5
  assert {b[1] for b in readme} == set(RUNNABLE)


def test_one_process_help_is_each_modules_own(workspace_dir):
  """The skipped blocks' flags are checked against the help that one process
  gathers for every module (`_usage`): it is what `python -m MODULE --help`
  prints in a process of its own."""
  module = "training.distill"
  assert module in _skipped_shell_modules()
  own = workspace.run(f"python -m {module} --help", cwd=workspace_dir).stdout
  assert _usage(module, workspace_dir) == own
  assert "--teacher_checkpoint" in own
