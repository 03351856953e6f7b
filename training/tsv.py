"""Reading GLUE-style TSV files: the project's one TSV reader.

Format (GLUE's SST-2, MRPC, RTE, ... after their usual conversion): UTF-8,
tab-separated, one header row naming the columns, one example per row, no
quoting (a `"` is an ordinary character, as in GLUE's files, which are read
with `csv.QUOTE_NONE`). The text columns are `sentence` (single sentences)
or `sentence1` and `sentence2` (pairs); the `label` column holds the class
name. Other columns are ignored; blank rows are skipped.

Example:

>>> data = read_tsv("train.tsv")  # sentence<TAB>label
>>> data.text_columns, data.texts[0][0], data.labels[0]
(('sentence',), 'a touching film .', '1')
>>> names = label_names(data)          # ['0', '1']
>>> label_ids(data, names)             # array([1, 0, ...], dtype=int32)
"""

import csv
import dataclasses
import os
from typing import Iterator, List, Sequence, Tuple

import numpy as np

SINGLE_COLUMNS = ("sentence",)
PAIR_COLUMNS = ("sentence1", "sentence2")
LABEL_COLUMN = "label"


class TsvError(ValueError):
  """Bad TSV input; the message is one line naming the file and line."""


@dataclasses.dataclass(frozen=True)
class TsvData:
  """The examples of one TSV file.

  Attributes:
    path: str. The file read.
    text_columns: tuple of str. `("sentence",)` or
      `("sentence1", "sentence2")`.
    texts: tuple of lists of str: one list per text column, one entry per
      example.
    labels: list of str. The label of each example (stripped).
    line_numbers: list of int. The 1-based line of each example.
  """
  path: str
  text_columns: Tuple[str, ...]
  texts: Tuple[List[str], ...]
  labels: List[str]
  line_numbers: List[int]

  def __len__(self):
    return len(self.labels)


def _decoded_lines(name: str, f) -> Iterator[str]:
  """The lines of a binary file as str, an error naming the bad line."""
  for number, raw in enumerate(f, start=1):
    try:
      # A byte order mark (some editors write one) is not part of the header.
      yield raw.decode("utf-8-sig" if number == 1 else "utf-8")
    except UnicodeDecodeError as e:
      raise TsvError(f"{name} line {number}: not valid UTF-8 ({e.reason} at "
                     f"byte {e.start})") from None


def _text_columns(name: str, header: Sequence[str]) -> Tuple[str, ...]:
  """The text columns the header names; an error naming the missing ones."""
  if LABEL_COLUMN in header and all(c in header for c in PAIR_COLUMNS):
    return PAIR_COLUMNS
  if LABEL_COLUMN in header and SINGLE_COLUMNS[0] in header:
    return SINGLE_COLUMNS
  wanted = (PAIR_COLUMNS if any(c in header for c in PAIR_COLUMNS) else
            SINGLE_COLUMNS) + (LABEL_COLUMN,)
  missing = ", ".join(repr(c) for c in wanted if c not in header)
  raise TsvError(
      f"{name} line 1: missing column {missing}; the header has "
      f"{list(header)!r}, expected 'sentence' and 'label' (or 'sentence1', "
      "'sentence2', 'label'), tab-separated")


def read_rows(path: str) -> List[Tuple[int, List[str]]]:
  """The non-blank rows of a tab-separated file (no quoting), with line numbers.

  The reading every TSV format of the project shares (this module's header
  format, `training.glue`'s column layouts): UTF-8 (a byte order mark on the
  first line is dropped), `csv.QUOTE_NONE`, rows with only whitespace
  skipped.

  Args:
    path: str or path-like. The file.

  Returns:
    A list of `(line_number, fields)`: the 1-based line and the row's
    fields (unstripped), for every non-blank row; empty for an empty file.

  Raises:
    TsvError: (a `ValueError`) a missing file or invalid UTF-8; the message
      names the file (and the line).
  """
  name = os.fspath(path)
  if not os.path.isfile(name):
    raise TsvError(f"{name}: no such file")
  with open(name, "rb") as f:
    reader = csv.reader(_decoded_lines(name, f), delimiter="\t",
                        quoting=csv.QUOTE_NONE, strict=True)
    try:
      rows = [(reader.line_num, row) for row in reader]
    except csv.Error as e:
      raise TsvError(f"{name} line {reader.line_num}: {e}") from None
  return [(number, row) for number, row in rows
          if any(field.strip() for field in row)]


def read_tsv(path: str) -> TsvData:
  """Reads a GLUE-style TSV file (header row, no quoting).

  Args:
    path: str or path-like. The file.

  Returns:
    A `TsvData` with every non-blank row after the header.

  Raises:
    TsvError: (a `ValueError`) a missing or empty file, a missing column, a
      row with too few fields, an empty label, invalid UTF-8, or no
      examples; the message names the file and the line.
  """
  name = os.fspath(path)
  rows = read_rows(name)
  if not rows:
    raise TsvError(
        f"{name}: the file is empty; expected a header line with the columns "
        "'sentence' and 'label' (or 'sentence1', 'sentence2', 'label')")
  (header_line, header), rows = rows[0], rows[1:]
  if header_line != 1:
    raise TsvError(f"{name} line 1: blank; the first line must be the header "
                   "with the column names")
  header = [column.strip() for column in header]
  text_columns = _text_columns(name, header)
  indices = [header.index(c) for c in text_columns]
  label_index = header.index(LABEL_COLUMN)
  needed = max(indices + [label_index]) + 1
  texts = tuple([] for _ in text_columns)
  labels, numbers = [], []
  for number, fields in rows:
    if len(fields) < needed:
      raise TsvError(
          f"{name} line {number}: expected {len(header)} tab-separated "
          f"fields ({', '.join(header)}), found {len(fields)}")
    label = fields[label_index].strip()
    if not label:
      raise TsvError(f"{name} line {number}: empty label")
    for column, index in zip(texts, indices):
      column.append(fields[index])
    labels.append(label)
    numbers.append(number)
  if not labels:
    raise TsvError(f"{name}: no examples after the header line")
  return TsvData(name, text_columns, texts, labels, numbers)


def label_names(data: TsvData) -> List[str]:
  """The distinct labels of (training) data: class `i` is the `i`-th.

  Sorted numerically if every label is an integer ("2" before "10"), else
  as strings.

  Raises:
    TsvError: fewer than 2 distinct labels.
  """
  distinct = set(data.labels)
  try:
    names = sorted(distinct, key=int)
  except ValueError:
    names = sorted(distinct)
  if len(names) < 2:
    raise TsvError(f"{data.path}: all examples have the label {names[0]!r}; "
                   "a classifier needs at least 2 labels")
  return names


def label_ids(data: TsvData, names: Sequence[str],
              source: str = "the training data") -> np.ndarray:
  """The class id of each example's label, int32 `[len(data)]`.

  Args:
    data: `TsvData`.
    names: sequence of str. The label of each class.
    source: str. Where `names` come from, for the error message. Defaults to
      "the training data".

  Raises:
    TsvError: a label not in `names`, naming the file and line.
  """
  index = {n: i for i, n in enumerate(names)}
  ids = []
  for label, number in zip(data.labels, data.line_numbers):
    if label not in index:
      raise TsvError(
          f"{data.path} line {number}: unknown label {label!r}; {source} has "
          f"the labels {', '.join(repr(n) for n in names)}")
    ids.append(index[label])
  return np.asarray(ids, np.int32)
