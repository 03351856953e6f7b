r"""Writes the demonstration model's corpus as training and held-out text.

Usage:

  python -m checkpoints.demo.data --output_dir=DIR [--max_lines=N]
      [--overwrite]

writes, from the bundled corpus (`checkpoints.demo.corpus`: sentences of the
Python standard library's docstrings, one per line):

  DIR/train.txt      95% of the lines, a document every `DOCUMENT_LINES`
                     lines (a blank line after each): the input of
                     `python -m training.create_pretraining_data`
  DIR/held_out.txt   the other 5% (`is_held_out`: a hash of the line's
                     text, so the split does not depend on the order), the
                     same layout: what `python -m checkpoints.demo.evaluate`
                     measures masked-LM accuracy on, and records for
                     `training.pretrain --do_eval` can be made of

Neighbouring lines come from one module's docstrings, so a document of
consecutive lines gives next-sentence pairs that belong together. The files
appear complete or not at all (written beside the target, then renamed);
existing files are kept unless `--overwrite`. Exit codes: 0 done, 2 bad input
(one line on stderr).
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
if __name__ == "__main__":  # A command line: see `mobilebert_tf.cli`.
  os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

# pylint: disable=g-import-not-at-top
import sys
import zlib
from typing import List, Sequence, Tuple

from absl import flags

from checkpoints.demo import corpus
from mobilebert_tf import cli
from mobilebert_tf import files

_PROGRAM = "python -m checkpoints.demo.data"
# Consecutive corpus lines per document of the written text.
DOCUMENT_LINES = 10
SPLITS = ("train", "held_out")
# A line is held out when the CRC-32 of its UTF-8 text is divisible by this:
# 1 in 20, 5%.
HELD_OUT_MODULUS = 20


def is_held_out(line: str) -> bool:
  """Whether a corpus line belongs to the held-out 5% (a hash of its text)."""
  return zlib.crc32(line.encode("utf-8")) % HELD_OUT_MODULUS == 0


def split_corpus(lines: Sequence[str]) -> Tuple[List[str], List[str]]:
  """Returns `(train_lines, held_out_lines)`, each in corpus order."""
  train = [line for line in lines if not is_held_out(line)]
  held_out = [line for line in lines if is_held_out(line)]
  return train, held_out


def documents_text(lines: Sequence[str]) -> str:
  """The lines, a blank line after every `DOCUMENT_LINES` (and at the end):
  `create_pretraining_data`'s document separator."""
  out = []
  for i, line in enumerate(lines, 1):
    out.append(line)
    if i % DOCUMENT_LINES == 0 or i == len(lines):
      out.append("")
  return "\n".join(out) + "\n" if out else ""


def read_lines(path: str) -> List[str]:
  """The non-blank lines of a text file written by `write_splits`."""
  with open(path, encoding="utf-8") as f:
    return [line.strip() for line in f if line.strip()]


def write_splits(output_dir: str, lines: Sequence[str],
                 overwrite: bool = False) -> dict:
  """Writes `train.txt` and `held_out.txt` of `lines` into `output_dir`.

  Args:
    output_dir: str. Created if missing.
    lines: sequence of str. The corpus lines, in order.
    overwrite: bool. Replace existing files. Defaults to False.

  Returns:
    `{split: {"path", "lines", "documents"}}` for "train" and "held_out".

  Raises:
    FileExistsError: a file exists and `overwrite` is False (nothing is
      written then); NotADirectoryError: `output_dir` is a file.
    ValueError: a split would be empty.
  """
  splits = dict(zip(SPLITS, split_corpus(lines)))
  for split, split_lines in splits.items():
    if not split_lines:
      raise ValueError(f"The {split} split of {len(lines)} corpus lines is "
                       "empty; use more lines (--max_lines).")
  paths = {split: os.path.join(output_dir, f"{split}.txt") for split in SPLITS}
  for path in paths.values():  # Refuse before writing either file.
    files.check_target(path, overwrite)
  os.makedirs(output_dir, exist_ok=True)
  summary = {}
  for split, split_lines in splits.items():
    files.write_text(paths[split], documents_text(split_lines),
                     overwrite=overwrite)
    summary[split] = dict(path=paths[split], lines=len(split_lines),
                          documents=-(-len(split_lines) // DOCUMENT_LINES))
  return summary


def _define_flags() -> flags.FlagValues:
  values = flags.FlagValues()
  define = dict(flag_values=values)
  flags.DEFINE_string("output_dir", None, "Where train.txt and held_out.txt "
                      "go; created if missing.", **define)
  flags.DEFINE_integer("max_lines", None, "Use only the first N corpus "
                       "lines (for quick runs). Default: all.", lower_bound=20,
                       **define)
  flags.DEFINE_boolean("overwrite", False, "Replace existing files.",
                       **define)
  return values


def main(argv: Sequence[str]) -> int:
  """Runs the CLI on `argv` (argv[0] is the program name); returns the exit
  code."""
  values = _define_flags()
  if cli.wants_help(argv):
    print(f"Usage: {_PROGRAM} --output_dir=DIR [--max_lines=N] "
          "[--overwrite]\n\nWrites the demonstration corpus as training and "
          "held-out text.\n\nFlags:\n" + values.get_help())
    return 0
  try:
    cli.parse(values, argv, required=("output_dir",))
    lines = corpus.stdlib_docstring_lines(max_lines=values.max_lines)
    summary = write_splits(values.output_dir, lines,
                           overwrite=values.overwrite)
  except (cli.UsageError, OSError, ValueError) as e:
    return cli.error(_PROGRAM, cli.first_line(e, limit=None))
  words = sum(len(line.split()) for line in lines)
  print(f"{len(lines)} corpus lines, {words} words")
  for split in SPLITS:
    part = summary[split]
    print(f"{part['path']}: {part['lines']} lines in {part['documents']} "
          "documents")
  return 0


if __name__ == "__main__":
  sys.exit(main(sys.argv))
