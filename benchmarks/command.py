"""The command line every result-writing benchmark shares.

`python -m benchmarks.squad`, `.distillation` and `.quantization` take
their flags, print their module docstring and flags for `--help`, and turn
a bad flag into one line on stderr (exit 2) and a failed run into one line
(exit 1).
"""

from typing import Callable, Sequence


def main(argv: Sequence[str], program: str, doc: str,
         define_flags: Callable, run: Callable) -> int:
  """Parses `argv` (argv[0] is the program name) and calls
  `run(values, argv, log)`; returns the exit code."""
  from mobilebert_tf import cli  # pylint: disable=g-import-not-at-top
  values = define_flags()
  if cli.wants_help(argv):
    print(doc)
    print("Flags:\n" + values.get_help())
    return 0
  try:
    cli.parse(values, argv)
    run(values, argv, lambda line: print(line, flush=True))
  except cli.UsageError as e:
    return cli.error(program, str(e))
  except RuntimeError as e:
    return cli.error(program, str(e), code=1)
  return 0
