"""mobilebert_tf.cli: the behaviour every command-line tool shares."""

from absl import flags
import pytest

from mobilebert_tf import cli


def _flags():
  values = flags.FlagValues()
  flags.DEFINE_string("name", None, "A name.", flag_values=values)
  flags.DEFINE_integer("count", 1, "A count.", flag_values=values)
  return values


def test_wants_help_ignores_the_program_name():
  assert cli.wants_help(["prog", "--count=2", "--help"])
  assert cli.wants_help(["prog", "-h"])
  assert not cli.wants_help(["--help"])  # argv[0] is the program
  assert not cli.wants_help(["prog", "--name=--help-me"])


def test_parse_sets_values():
  values = _flags()
  assert cli.parse(values, ["prog", "--name=x", "--count=3"]) == ["prog"]
  assert (values.name, values.count) == ("x", 3)


@pytest.mark.parametrize("argv, message", [
    (["prog", "--unknown=1"], "unknown"),
    (["prog", "--count=many"], "count"),
    (["prog", "stray"], "unexpected arguments stray"),
    (["prog", "--count=2"], "--name is required"),
], ids=["unknown-flag", "bad-value", "positional", "missing"])
def test_parse_turns_mistakes_into_usage_errors(argv, message):
  with pytest.raises(cli.UsageError, match=message):
    cli.parse(_flags(), argv, required=("name",))


def test_require_names_the_first_missing_flag():
  values = _flags()
  cli.parse(values, ["prog", "--count=2"])
  cli.require(values, ("count",))
  with pytest.raises(cli.UsageError, match=r"^--name is required \(see "
                                           r"--help\)$"):
    cli.require(values, ("count", "name"))
  values.name = ""
  with pytest.raises(cli.UsageError, match="--name is required"):
    cli.require(values, ("name",))


def test_first_line():
  assert cli.first_line(ValueError("one\ntwo")) == "one"
  assert cli.first_line(KeyError("missing key")) == "missing key"
  assert cli.first_line(RuntimeError()) == "RuntimeError"
  assert cli.first_line(ValueError("x" * 300)).endswith("...")
  assert len(cli.first_line(ValueError("x" * 300), limit=None)) == 300
  # An error from inside a tf.function names its innermost cause.
  traced = ValueError(
      "in user code:\n\n    File \"a.py\", line 3, in f  *\n        g()\n\n"
      "    ValueError: Exception encountered when calling layer 'encoder'.\n"
      "\n    in user code:\n\n        ValueError: Dimensions must be "
      "equal, but are 128 and 64\n")
  assert cli.first_line(traced) == "Dimensions must be equal, but are 128 and 64"


def test_error_prints_one_line_and_returns_the_code(capsys):
  assert cli.error("prog", "bad\n  input", code=2) == 2
  captured = capsys.readouterr()
  assert captured.out == ""
  assert captured.err == "prog: error: bad input\n"


# Every command line of the product (`python -m MODULE`).
CLI_MODULES = (
    "checkpoints.convert", "checkpoints.to_tf1", "checkpoints.demo.data",
    "checkpoints.demo.evaluate", "export.to_savedmodel", "export.to_tflite",
    "export.saved_model_cli", "training.run_classifier", "training.pretrain",
    "training.create_pretraining_data", "training.distill",
    "training.run_squad", "checkpoints.demo.qa_set", "export.tflite_metadata",
    "checkpoints.demo.sentence_set")


def _module_path(module):
  import os  # pylint: disable=g-import-not-at-top
  from tests import helpers  # pylint: disable=g-import-not-at-top
  return os.path.join(helpers.REPO_ROOT, *module.split(".")) + ".py"


@pytest.mark.parametrize("module", CLI_MODULES)
def test_a_cli_sets_legacy_keras_only_as_a_program_before_tensorflow(module):
  # See `mobilebert_tf.cli`: `TF_USE_LEGACY_KERAS=1` under
  # `if __name__ == "__main__"`, before the first project or TensorFlow
  # import (those import TensorFlow); imported as a module, nothing is set.
  import ast  # pylint: disable=g-import-not-at-top
  with open(_module_path(module), encoding="utf-8") as f:
    tree = ast.parse(f.read())
  guard = heavy = None
  for index, node in enumerate(tree.body):
    if isinstance(node, ast.If) and "TF_USE_LEGACY_KERAS" in ast.unparse(
        node) and ast.unparse(node.test) == "__name__ == '__main__'":
      guard = index if guard is None else guard
    elif isinstance(node, (ast.Import, ast.ImportFrom)) and heavy is None:
      names = ([a.name for a in node.names] if isinstance(node, ast.Import)
               else [node.module or ""])
      if any(n.split(".")[0] not in ("os", "sys", "absl", "typing",
                                     "__future__") and n.split(".")[0]
             in ("tensorflow", "tf_keras", "mobilebert_tf", "checkpoints",
                 "export", "training", "numpy") for n in names):
        heavy = index
  assert guard is not None, f"{module}: no TF_USE_LEGACY_KERAS guard"
  assert heavy is not None and guard < heavy, module
  assert "TF_USE_LEGACY_KERAS" not in __import__("os").environ


def test_a_cli_process_does_not_import_keras_3():
  # The start-up saving of `mobilebert_tf.cli`, in a fresh process: Keras 3's
  # shim (keras._tf_keras, which pulls in scikit-learn) is never imported.
  import os  # pylint: disable=g-import-not-at-top
  import subprocess  # pylint: disable=g-import-not-at-top
  import sys  # pylint: disable=g-import-not-at-top
  from tests import helpers  # pylint: disable=g-import-not-at-top
  env = {k: v for k, v in os.environ.items() if k != "TF_USE_LEGACY_KERAS"}
  module = "checkpoints.to_tf1"
  source = (f"import os, runpy, sys\nsys.argv = [{module!r}, '--help']\n"
            "try:\n"
            f"  runpy.run_module({module!r}, run_name='__main__')\n"
            "except SystemExit:\n  pass\n"
            "print('keras3' if 'keras._tf_keras' in sys.modules else 'none',"
            " 'tf_keras' in sys.modules, os.environ.get('TF_USE_LEGACY_KERAS'))\n")
  result = subprocess.run([sys.executable, "-c", source], env=env,
                          cwd=helpers.REPO_ROOT, capture_output=True,
                          text=True, timeout=120, check=True)
  assert result.stdout.strip().splitlines()[-1] == "none True 1", (
      result.stdout)
