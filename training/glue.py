"""The GLUE tasks (and XNLI): their files, columns, labels and metrics.

Each task is a frozen `Task`: the files `--data_dir` holds (GLUE's own
directory, e.g. `glue_data/MNLI`), which tab-separated fields of each file
are the texts and the label, whether it has a header line, the fixed label
list, the metrics and, for each test file, the GLUE submission file. The
layouts are those of GLUE's files as google-research/bert's
`run_classifier.py` processors read them (CoLA, MNLI, MRPC, XNLI) and
transformers' `glue.py` processors for the others. Fields count from 0; -1
is the last field (MNLI's `gold_label` after a varying number of
annotator labels).

| task  | texts; label (train, dev) | texts (test) | metrics              |
|-------|---------------------------|--------------|----------------------|
| cola  | 3; 1                      | 1            | matthews_corrcoef    |
| sst-2 | 0; 1                      | 1            | accuracy             |
| mrpc  | 3, 4; 0                   | 3, 4         | accuracy, f1         |
| sts-b | 7, 8; -1 (a score)        | 7, 8         | pearson, spearman    |
| qqp   | 3, 4; 5                   | 1, 2         | accuracy, f1         |
| mnli  | 8, 9; -1                  | 8, 9         | accuracy             |
| qnli  | 1, 2; -1                  | 1, 2         | accuracy             |
| rte   | 1, 2; -1                  | 1, 2         | accuracy             |
| wnli  | 1, 2; -1                  | 1, 2         | accuracy             |
| xnli  | 0, 1; 2 (train), 6, 7; 1 (dev) | -       | accuracy             |

The labels: `BINARY_LABELS` ("0", "1") for CoLA, SST-2, MRPC, QQP and
WNLI; `NLI_LABELS` for MNLI and XNLI; `ENTAILMENT_LABELS` for QNLI and
RTE; STS-B is a regression (a score from 0 to 5).

The files are `train.tsv`, `dev.tsv` and `test.tsv`, whose submission
file is `<title>.tsv` (`CoLA.tsv`, `SST-2.tsv`, ...); CoLA's train and dev
files have no header line. MNLI has two dev sets, `dev_matched.tsv` and
`dev_mismatched.tsv`, and two test sets, `test_matched.tsv` and
`test_mismatched.tsv`, submitted as `MNLI-m.tsv` and `MNLI-mm.tsv`.
XNLI's files are the original's: the training file of XNLI-MT-1.0
(`multinli/multinli.train.<language>.tsv`, its label `contradictory` read
as `contradiction`) and XNLI-1.0's `xnli.dev.tsv`, of which the rows whose
field 0 is the language are kept; there is no test set. Every test file
has the example's index in field 0. Files are read by
`training.tsv.read_rows` (UTF-8, no quoting).

A submission file (`submission_tsv`) has the header `index<TAB>prediction`
and one row per test example in file order: its index and the predicted
label (STS-B: the score).

Example:

>>> task = get_task("mnli")
>>> data = read_examples(task, task.dev[0][1], "glue_data/MNLI")
>>> data.texts[0][0], data.labels[0], targets(task, data)[0]
('The new rights are nice enough', 'neutral', 2)
"""

import dataclasses
import os
from typing import Dict, List, Optional, Tuple

import numpy as np

from training import glue_metrics
from training import tsv

NLI_LABELS = ("contradiction", "entailment", "neutral")
BINARY_LABELS = ("0", "1")
ENTAILMENT_LABELS = ("entailment", "not_entailment")
SUBMISSION_HEADER = ("index", "prediction")
# The language of XNLI's evaluation rows, unless another is asked for: the
# original's XnliProcessor's.
XNLI_DEFAULT_LANGUAGE = "zh"


class GlueError(tsv.TsvError):
  """Bad GLUE input; the message is one line naming the file and line."""


@dataclasses.dataclass(frozen=True)
class FileLayout:
  """Where one file's examples are.

  Attributes:
    file: str. The path below `--data_dir`.
    header: bool. The first line names the columns (and is skipped).
    text_fields: tuple of int. The field of each text (1 or 2).
    label_field: int or None. The label's field (-1: the last); None for a
      test file (no labels).
    id_field: int or None. The field of a test example's index (the
      submission's `index`).
    keep: (int, str) or None. Only the rows whose field has this value
      (XNLI's language); None keeps every row.
    label_aliases: tuple of (str, str). Labels read as another.
  """
  file: str
  header: bool
  text_fields: Tuple[int, ...]
  label_field: Optional[int] = None
  id_field: Optional[int] = None
  keep: Optional[Tuple[int, str]] = None
  label_aliases: Tuple[Tuple[str, str], ...] = ()

  @property
  def min_fields(self) -> int:
    """The fewest fields a row can have."""
    fields = [f for f in self.text_fields + (self.label_field, self.id_field)
              if f is not None]
    if self.keep:
      fields.append(self.keep[0])
    needed = max(f for f in fields if f >= 0) + 1
    if self.label_field is not None and self.label_field < 0:
      needed += -self.label_field  # After the texts, not one of them.
    return needed


@dataclasses.dataclass(frozen=True)
class Task:
  """One GLUE (or XNLI) task.

  Attributes:
    name: str. The `--task_name` ("mnli").
    title: str. GLUE's name ("MNLI").
    labels: tuple of str, or None for regression (STS-B). Class `i` is the
      `i`-th label.
    metrics: tuple of str. Names in `training.glue_metrics.METRICS`.
    train: `FileLayout` of the training file.
    dev: tuple of (name, `FileLayout`): the evaluation sets ("dev"; MNLI
      "dev_matched" and "dev_mismatched").
    test: tuple of (submission file name, `FileLayout`): the test sets; empty
      if there is nothing to submit (XNLI).
  """
  name: str
  title: str
  labels: Optional[Tuple[str, ...]]
  metrics: Tuple[str, ...]
  train: FileLayout
  dev: Tuple[Tuple[str, FileLayout], ...]
  test: Tuple[Tuple[str, FileLayout], ...] = ()

  @property
  def is_regression(self) -> bool:
    return self.labels is None

  @property
  def text_columns(self) -> Tuple[str, ...]:
    """The names of the texts: `tsv.SINGLE_COLUMNS` or `tsv.PAIR_COLUMNS`."""
    return (tsv.SINGLE_COLUMNS if len(self.train.text_fields) == 1 else
            tsv.PAIR_COLUMNS)


def _glue_task(name, title, labels, metrics, fields, label_field,
               test_fields, header=True):
  """A task with train.tsv, dev.tsv and test.tsv (index in field 0)."""
  def labelled(file):
    return FileLayout(file, header, fields, label_field)
  return Task(name, title, labels, metrics, labelled("train.tsv"),
              (("dev", labelled("dev.tsv")),),
              ((f"{title}.tsv", FileLayout("test.tsv", True, test_fields,
                                           id_field=0)),))


def _mnli() -> Task:
  def labelled(file):
    return FileLayout(file, True, (8, 9), -1)
  def test(file):
    return FileLayout(file, True, (8, 9), id_field=0)
  return Task("mnli", "MNLI", NLI_LABELS, ("accuracy",),
              labelled("train.tsv"),
              (("dev_matched", labelled("dev_matched.tsv")),
               ("dev_mismatched", labelled("dev_mismatched.tsv"))),
              (("MNLI-m.tsv", test("test_matched.tsv")),
               ("MNLI-mm.tsv", test("test_mismatched.tsv"))))


def xnli_task(language: str = XNLI_DEFAULT_LANGUAGE) -> Task:
  """XNLI in one language, as the original's `XnliProcessor`.

  Args:
    language: str. The XNLI language code ("zh", "de", ...): the training
      file `multinli/multinli.train.<language>.tsv` and the rows of
      `xnli.dev.tsv` whose field 0 is `language`. Defaults to "zh" (the
      original's).

  Raises:
    ValueError: `language` is empty or not a plain name.
  """
  if not language or language != language.strip() or any(
      c in language for c in "/\\\t") or language in (".", ".."):
    raise ValueError("`language` must be an XNLI language code such as 'zh'. "
                     f"Received: language={language!r}")
  train = FileLayout(os.path.join("multinli", f"multinli.train.{language}.tsv"),
                     True, (0, 1), 2,
                     label_aliases=(("contradictory", "contradiction"),))
  dev = FileLayout("xnli.dev.tsv", True, (6, 7), 1, keep=(0, language))
  return Task("xnli", "XNLI", NLI_LABELS, ("accuracy",), train,
              (("dev", dev),))


TASKS: Dict[str, Task] = {task.name: task for task in (
    _glue_task("cola", "CoLA", BINARY_LABELS, ("matthews_corrcoef",), (3,),
               1, (1,), header=False),
    _glue_task("sst-2", "SST-2", BINARY_LABELS, ("accuracy",), (0,), 1,
               (1,)),
    _glue_task("mrpc", "MRPC", BINARY_LABELS, ("accuracy", "f1"), (3, 4), 0,
               (3, 4)),
    _glue_task("sts-b", "STS-B", None, ("pearson", "spearman"), (7, 8), -1,
               (7, 8)),
    _glue_task("qqp", "QQP", BINARY_LABELS, ("accuracy", "f1"), (3, 4), 5,
               (1, 2)),
    _mnli(),
    _glue_task("qnli", "QNLI", ENTAILMENT_LABELS, ("accuracy",), (1, 2), -1,
               (1, 2)),
    _glue_task("rte", "RTE", ENTAILMENT_LABELS, ("accuracy",), (1, 2), -1,
               (1, 2)),
    _glue_task("wnli", "WNLI", BINARY_LABELS, ("accuracy",), (1, 2), -1,
               (1, 2)),
    xnli_task(),
)}
TASK_NAMES = tuple(TASKS)


def get_task(name: str, xnli_language: str = XNLI_DEFAULT_LANGUAGE) -> Task:
  """The task called `name` (any case: "MNLI", "sst-2").

  Args:
    name: str. One of `TASK_NAMES`.
    xnli_language: str. For "xnli": the language (`xnli_task`). Defaults to
      "zh".

  Raises:
    ValueError: an unknown name or a bad language.
  """
  key = str(name).lower()
  if key not in TASKS:
    raise ValueError(f"`name` must be one of {', '.join(TASK_NAMES)}. "
                     f"Received: name={name!r}")
  return xnli_task(xnli_language) if key == "xnli" else TASKS[key]


@dataclasses.dataclass(frozen=True)
class TestData:
  """The examples of a test file (no labels).

  Attributes:
    path: str. The file read.
    text_columns: tuple of str, as `tsv.TsvData.text_columns`.
    texts: tuple of lists of str: one list per text, one entry per example.
    ids: list of str. Each example's index (the submission's `index`).
    line_numbers: list of int. The 1-based line of each example.
  """
  path: str
  text_columns: Tuple[str, ...]
  texts: Tuple[List[str], ...]
  ids: List[str]
  line_numbers: List[int]

  def __len__(self):
    return len(self.ids)


def _rows(task: Task, layout: FileLayout, data_dir: str):
  """(path, [(line, fields)]): the example rows, each with enough fields."""
  path = os.path.join(os.fspath(data_dir), layout.file)
  try:
    rows = tsv.read_rows(path)
  except tsv.TsvError as e:  # A missing file, invalid UTF-8.
    raise GlueError(str(e)) from None
  if layout.header:
    if not rows:
      raise GlueError(f"{path}: the file is empty; expected a header line "
                      f"and examples ({task.title})")
    rows = rows[1:]
  kept = []
  for number, fields in rows:
    if len(fields) < layout.min_fields:
      raise GlueError(
          f"{path} line {number}: expected at least {layout.min_fields} "
          f"tab-separated fields ({task.title} {os.path.basename(path)}), "
          f"found {len(fields)}")
    if layout.keep and fields[layout.keep[0]].strip() != layout.keep[1]:
      continue
    kept.append((number, fields))
  if not kept:
    which = (f" of the language {layout.keep[1]!r} (field {layout.keep[0]})"
             if layout.keep else "")
    raise GlueError(f"{path}: no examples{which}")
  return path, kept


def read_examples(task: Task, layout: FileLayout, data_dir: str
                  ) -> tsv.TsvData:
  """Reads a training or dev file of `task`.

  Args:
    task: `Task`.
    layout: `FileLayout` with a label: `task.train` or one of `task.dev`.
    data_dir: str. The task's directory.

  Returns:
    `tsv.TsvData` with `task.text_columns`, the texts, and each label
    stripped (after `label_aliases`). `targets` checks the labels.

  Raises:
    GlueError: (a `tsv.TsvError`) a missing or empty file, a row with too
      few fields, an empty label, invalid UTF-8, or no examples; the message
      names the file and the line.
  """
  if layout.label_field is None:
    raise ValueError(f"`layout` must have a label (a training or dev file). "
                     f"Received: a test layout ({layout.file})")
  path, rows = _rows(task, layout, data_dir)
  aliases = dict(layout.label_aliases)
  texts = tuple([] for _ in layout.text_fields)
  labels, numbers = [], []
  for number, fields in rows:
    label = fields[layout.label_field].strip()
    if not label:
      raise GlueError(f"{path} line {number}: empty label")
    for column, index in zip(texts, layout.text_fields):
      column.append(fields[index])
    labels.append(aliases.get(label, label))
    numbers.append(number)
  return tsv.TsvData(path, task.text_columns, texts, labels, numbers)


def read_test(task: Task, layout: FileLayout, data_dir: str) -> TestData:
  """Reads a test file of `task` (one of `task.test`).

  Raises:
    GlueError: as `read_examples`, and an empty index.
  """
  if layout.id_field is None:
    raise ValueError(f"`layout` must be a test layout (with an index "
                     f"field). Received: {layout.file}")
  path, rows = _rows(task, layout, data_dir)
  texts = tuple([] for _ in layout.text_fields)
  ids, numbers = [], []
  for number, fields in rows:
    index = fields[layout.id_field].strip()
    if not index:
      raise GlueError(f"{path} line {number}: empty index (field "
                      f"{layout.id_field})")
    for column, field in zip(texts, layout.text_fields):
      column.append(fields[field])
    ids.append(index)
    numbers.append(number)
  return TestData(path, task.text_columns, texts, ids, numbers)


def targets(task: Task, data: tsv.TsvData) -> np.ndarray:
  """What the model learns: int32 class ids, or float32 scores (STS-B).

  The ids index the task's fixed `labels` (not the labels a file happens to
  have), so every file maps a label to the same class.

  Raises:
    GlueError: a label not in `task.labels`, or a score that is not a finite
      number; the message names the file and the line.
  """
  if not task.is_regression:
    try:
      return tsv.label_ids(data, task.labels, source=task.title)
    except tsv.TsvError as e:
      raise GlueError(str(e)) from None
  scores = []
  for label, number in zip(data.labels, data.line_numbers):
    try:
      score = float(label)
    except ValueError:
      score = float("nan")
    if not np.isfinite(score):
      raise GlueError(f"{data.path} line {number}: the score {label!r} is not "
                      f"a finite number ({task.title} is a regression)")
    scores.append(score)
  return np.asarray(scores, np.float32)


def predictions(task: Task, outputs) -> np.ndarray:
  """Model outputs -> int class ids (argmax) or float scores (regression).

  Args:
    task: `Task`.
    outputs: float `[n, num_classes]` logits or probabilities, or `[n, 1]`
      (or `[n]`) scores for regression.
  """
  outputs = np.asarray(outputs)
  if task.is_regression:
    return outputs.reshape(len(outputs)).astype(np.float32)
  return outputs.argmax(axis=-1).astype(np.int32)


def evaluate(task: Task, target_values, outputs) -> Dict[str, float]:
  """The task's metrics of `outputs` against `targets(task, data)`.

  Classification tasks also report `accuracy` where it is not one of their
  metrics (CoLA), as the original's `eval_accuracy`.

  Returns:
    dict metric name -> float (`training.glue_metrics`).
  """
  names = task.metrics
  if not task.is_regression and "accuracy" not in names:
    names = names + ("accuracy",)
  return glue_metrics.compute(names, np.asarray(target_values),
                              predictions(task, outputs))


def submission_tsv(task: Task, data: TestData, outputs) -> str:
  """The GLUE submission file's text for the test examples `data`.

  Args:
    task: `Task`.
    data: `TestData` (from `read_test`).
    outputs: the model's outputs for `data`'s examples, in order (as
      `predictions` takes them).

  Returns:
    str. `index<TAB>prediction`, then one line per example: its index and
    its predicted label (the score, 6 significant digits, for STS-B).

  Raises:
    ValueError: `outputs` has another number of examples than `data`.
  """
  predicted = predictions(task, outputs)
  if len(predicted) != len(data):
    raise ValueError(f"`outputs` must have one row per test example "
                     f"({len(data)} in {data.path}). Received: "
                     f"{len(predicted)} rows")
  if task.is_regression:
    values = [f"{float(p):.6g}" for p in predicted]
  else:
    values = [task.labels[p] for p in predicted]
  lines = ["\t".join(SUBMISSION_HEADER)]
  lines += [f"{i}\t{v}" for i, v in zip(data.ids, values)]
  return "\n".join(lines) + "\n"
