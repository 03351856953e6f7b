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
