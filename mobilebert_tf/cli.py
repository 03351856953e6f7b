"""What every command-line tool of the project does the same way.

Each CLI defines its absl flags on a fresh `flags.FlagValues` per call (no
clash with other modules' global flags, nothing left over between in-process
calls of `main`), prints usage for `--help`, and turns expected mistakes into
exit code 2 with one line on stderr and no traceback.

Run as a program (`python -m ...`, not when imported), each CLI module sets
`TF_USE_LEGACY_KERAS=1` before it imports TensorFlow: `tf.keras` is then
Keras 2, which the project uses anyway (as `tf_keras`, never through
`tf.keras`), and TensorFlow's import skips loading Keras 3, about 2 of the
6 to 8 seconds every command spends starting (measured on 2 cores).
Nothing changes for a program that imports the library.
"""

import re
import sys
from typing import List, Optional, Sequence

from absl import flags

HELP_FLAGS = ("-h", "--help", "-help", "--helpfull", "--helpshort")


class UsageError(Exception):
  """An expected mistake on the command line: exit 2, one line on stderr."""


def wants_help(argv: Sequence[str]) -> bool:
  """Whether `argv` (argv[0] is the program) asks for the usage text."""
  return any(arg in HELP_FLAGS for arg in argv[1:])


def parse(values: flags.FlagValues, argv: Sequence[str],
          required: Sequence[str] = ()) -> List[str]:
  """Parses `argv` into `values`; returns the positional arguments left.

  Raises:
    UsageError: an unknown or malformed flag, a positional argument, or a
      missing required flag.
  """
  try:
    rest = values(list(argv))
  except flags.Error as e:
    raise UsageError(f"{first_line(e)} (see --help)") from None
  if len(rest) > 1:
    raise UsageError(f"unexpected arguments {' '.join(rest[1:])} (flags are "
                     "--name=value; see --help)")
  require(values, required)
  return rest


def require(values: flags.FlagValues, names: Sequence[str]) -> None:
  """Checks that the flags `names` were given a value (in that order).

  For flags required only in some modes, after `parse`.

  Raises:
    UsageError: the first of `names` without a value.
  """
  for name in names:
    if values[name].value in (None, ""):
      raise UsageError(f"--{name} is required (see --help)")


def first_line(error: BaseException, limit: Optional[int] = 240) -> str:
  """The first line of an exception's message, for a one-line error."""
  text = str(error).strip()
  if isinstance(error, KeyError) and text[:1] in ("'", '"'):
    text = text[1:-1]  # KeyError quotes its message
  lines = [line.strip() for line in text.splitlines() if line.strip()]
  if not lines:
    return type(error).__name__
  line = lines[0]
  if line == "in user code:":
    # An error raised inside a tf.function: the cause is its innermost
    # "SomeError: message" line, after the traced frames.
    causes = [l for l in lines if re.match(r"^\w+(Error|Exception): ", l)]
    if causes:
      line = causes[-1].split(": ", 1)[1]
  return line if limit is None or len(line) <= limit else line[:limit] + "..."


def error(program: str, message: str, code: int = 2) -> int:
  """Prints `program: error: message` on one stderr line; returns `code`."""
  print(f"{program}: error: {' '.join(str(message).split())}",
        file=sys.stderr)
  return code
