r"""Makes BERT pretraining records (masked LM + next sentence) from raw text.

  python -m training.create_pretraining_data \
    --input_file=corpus.txt --vocab_file=vocab.txt \
    --output_file=train-0.tfrecord,train-1.tfrecord \
    [--do_lower_case --do_whole_word_mask --max_seq_length=128 \
     --max_predictions_per_seq=20 --random_seed=12345 --dupe_factor=10 \
     --masked_lm_prob=0.15 --short_seq_prob=0.1 --num_workers=N --overwrite]

The flags and the algorithm are google-research/bert's
`create_pretraining_data.py` (`training.pretraining_instances`); the records
are its `tf.train.Example`s (`training.records`), read by
tf-models-official's `BertPretrainDataLoader` and by `training.records.
read_dataset`.

Input: text files (`--input_file`, comma-separated globs), one sentence per
line, a blank line between documents; invalid UTF-8 is decoded with
replacement characters (counted in the summary) and the tokenizer drops
them.

Scale: the corpus is streamed. Documents are taken
`--documents_per_buffer` at a time, in input order; each buffer is a small
run of the original: its documents shuffled, `--dupe_factor` passes, random
next segments drawn from the same buffer, its instances shuffled, with a
`random.Random` seeded by `(--random_seed, buffer index)`. The original
holds the whole corpus and draws random next documents and the instance
order from all of it: here both stay within a buffer (so instances come out
grouped by buffer; shards and the trainer's shuffle mix them). Buffers are
processed by `--num_workers` processes; the instances are written in buffer
order, round-robin over the `--output_file`s, so the files depend on the
flags and the input only, never on `--num_workers` (this process and
`--num_workers - 1` started ones; a corpus of one buffer is processed here
alone).

Output: every file is written beside its target and renamed into place at
the end (`mobilebert_tf.files`): an interrupted run leaves no output file,
and its temporaries are removed by the next run. A progress line goes to
stderr, a summary (documents, instances, masked tokens, next-sentence label
balance, files) to stdout.

Exit codes: 0 done; 2 bad input or flags (one line on stderr, nothing
written).
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
if __name__ == "__main__":  # A command line: see `mobilebert_tf.cli`.
  os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import collections
import contextlib
import dataclasses
import multiprocessing
import random
import sys
import time
from typing import Iterable, Iterator, List, Optional, Sequence, Tuple

from absl import flags
import tensorflow as tf

from mobilebert_tf import cli
from mobilebert_tf import files
from mobilebert_tf import preprocessing
from training import pretraining_instances as pi
from training import records

_PROGRAM = "python -m training.create_pretraining_data"
DOCUMENTS_PER_BUFFER = 1000
# Seconds between progress lines.
PROGRESS_INTERVAL = 10.0


class InputError(ValueError):
  """Bad user input; exit 2 with this one-line message."""


# === Reading ===


@dataclasses.dataclass
class ReadStats:
  """What the reader saw.

  Attributes:
    lines: int. Non-blank lines read.
    invalid_utf8: int. Lines that were not valid UTF-8.
    first_invalid: str. `path:line` of the first of those, or "".
    bytes_read: int. Bytes read so far.
  """
  lines: int = 0
  invalid_utf8: int = 0
  first_invalid: str = ""
  bytes_read: int = 0


def input_paths(patterns: str) -> List[str]:
  """The files of `--input_file` (`files.expand_globs`).

  Raises:
    InputError: a glob matches nothing, or a match is a directory.
  """
  try:
    return files.expand_globs(patterns, "--input_file")
  except FileNotFoundError as e:
    raise InputError(str(e)) from None


def read_documents(paths: Sequence[str], stats: ReadStats
                   ) -> Iterator[List[str]]:
  """Yields the documents of the files: lists of stripped, non-blank lines.

  A blank line (or the end of a file) ends a document. Invalid UTF-8 is
  decoded with U+FFFD and counted in `stats`.
  """
  for path in paths:
    document = []
    with tf.io.gfile.GFile(path, "rb") as f:
      for number, raw in enumerate(f, 1):
        stats.bytes_read += len(raw)
        try:
          line = raw.decode("utf-8")
        except UnicodeDecodeError:
          line = raw.decode("utf-8", errors="replace")
          stats.invalid_utf8 += 1
          if not stats.first_invalid:
            stats.first_invalid = f"{path}:{number}"
        line = line.strip()
        if line:
          document.append(line)
          stats.lines += 1
        elif document:
          yield document
          document = []
    if document:
      yield document


def _batched(items: Iterable, size: int) -> Iterator[Tuple[int, list]]:
  """(index, list of up to `size` items), in order."""
  batch, index = [], 0
  for item in items:
    batch.append(item)
    if len(batch) == size:
      yield index, batch
      batch, index = [], index + 1
  if batch:
    yield index, batch


# === Instances of one buffer (in a worker or in-process) ===


@dataclasses.dataclass(frozen=True)
class JobConfig:
  """Everything a worker needs to turn a buffer into serialized records."""
  vocab_file: str
  do_lower_case: bool
  options: pi.InstanceOptions
  dupe_factor: int
  random_seed: int


@dataclasses.dataclass
class BufferResult:
  """The records of one buffer and what they hold."""
  records: List[bytes]
  documents: int
  masked_tokens: int
  random_next: int


class BufferProcessor:
  """Raw documents of one buffer -> serialized records (see the module doc)."""

  def __init__(self, config: JobConfig):
    self.config = config
    self.tokenize = pi.LineTokenizer(config.vocab_file, config.do_lower_case)
    self.vocab = pi.MaskingVocab.from_tokens(
        preprocessing.read_vocab(config.vocab_file))

  def __call__(self, item: Tuple[int, List[List[str]]]) -> BufferResult:
    index, raw_documents = item
    ids = iter(self.tokenize([line for doc in raw_documents for line in doc]))
    documents = [[s for s in (next(ids) for _ in doc) if s]
                 for doc in raw_documents]
    documents = [d for d in documents if d]
    # A string seed: hashed with SHA-512, the same in every process.
    rng = random.Random(f"{self.config.random_seed}/{index}")
    options = self.config.options
    instances = pi.create_instances(documents, self.vocab, options,
                                    self.config.dupe_factor, rng)
    serialized = []
    for instance in instances:
      example = records.to_example(pi.instance_features(
          instance, options.max_seq_length, options.max_predictions_per_seq))
      # Deterministic: map fields (the features) in key order, not in an
      # order that may differ between processes.
      serialized.append(example.SerializeToString(deterministic=True))
    return BufferResult(
        records=serialized, documents=len(documents),
        masked_tokens=sum(len(x.positions) for x in instances),
        random_next=sum(x.is_random_next for x in instances))


_WORKER: Optional[BufferProcessor] = None


def _init_worker(config: JobConfig) -> None:
  global _WORKER
  # One thread each: the workers already use every core.
  tf.config.threading.set_intra_op_parallelism_threads(1)
  tf.config.threading.set_inter_op_parallelism_threads(1)
  _WORKER = BufferProcessor(config)


def _process_in_worker(item) -> BufferResult:
  return _WORKER(item)


def _process_buffers(buffers: Iterator, config: JobConfig,
                     num_workers: int) -> Iterator[BufferResult]:
  """The results of `buffers`, in order, from `num_workers` processes.

  This process is one of the workers (it takes every `num_workers`-th
  buffer) and `num_workers - 1` more are started. A single buffer (a small
  corpus) is processed here alone: starting processes (each imports
  TensorFlow) would cost more than it saves.
  """
  first = next(buffers, None)
  if first is None:
    return
  second = next(buffers, None)
  if num_workers == 1 or second is None:
    local = BufferProcessor(config)
    yield local(first)
    if second is not None:
      yield local(second)
      for item in buffers:
        yield local(item)
    return
  # `spawn`: forking a process that has started TensorFlow's threads can
  # deadlock the child.
  context = multiprocessing.get_context("spawn")
  with context.Pool(num_workers - 1, initializer=_init_worker,
                    initargs=(config,)) as pool:
    local = BufferProcessor(config)  # While the workers start.
    pending = collections.deque()
    for item in _chain([first, second], buffers):
      if item[0] % num_workers == num_workers - 1:
        # Ours: the round's other buffers were handed out first.
        pending.append(local(item))
      else:
        pending.append(pool.apply_async(_process_in_worker, (item,)))
      # At most two buffers per worker in flight: bounded memory.
      while len(pending) >= 2 * num_workers:
        yield _result(pending.popleft())
    while pending:
      yield _result(pending.popleft())


def _result(pending) -> BufferResult:
  return pending if isinstance(pending, BufferResult) else pending.get()


def _chain(head, tail):
  yield from head
  yield from tail


# === Writing ===


@dataclasses.dataclass
class Summary:
  """What a run wrote.

  Attributes:
    documents: int. Documents with at least one piece.
    lines: int. Non-blank input lines.
    invalid_utf8: int. Input lines that were not valid UTF-8.
    instances: int. Records written.
    masked_tokens: int. Masked-LM predictions in all records.
    random_next: int. Records with next-sentence label 1.
    files: list of str. The files written.
    per_file: list of int. Records per file.
  """
  documents: int = 0
  lines: int = 0
  invalid_utf8: int = 0
  instances: int = 0
  masked_tokens: int = 0
  random_next: int = 0
  files: List[str] = dataclasses.field(default_factory=list)
  per_file: List[int] = dataclasses.field(default_factory=list)

  @property
  def random_next_fraction(self) -> float:
    return self.random_next / max(1, self.instances)

  def lines_of_text(self) -> List[str]:
    """The summary printed at the end."""
    per = self.masked_tokens / max(1, self.instances)
    shown = [f"{p} ({n})" for p, n in zip(self.files, self.per_file)]
    if len(shown) > 4:
      shown = shown[:2] + ["..."] + shown[-1:]
    return [
        f"Wrote {self.instances} instances to {len(self.files)} file(s): "
        + ", ".join(shown),
        f"  documents: {self.documents}, lines: {self.lines}, invalid "
        f"UTF-8 lines: {self.invalid_utf8}",
        f"  masked tokens: {self.masked_tokens} ({per:.2f} per instance), "
        f"next-sentence label 1 (random next): "
        f"{100 * self.random_next_fraction:.1f}%",
    ]


class _Progress:
  """A progress line on stderr every `PROGRESS_INTERVAL` seconds."""

  def __init__(self, total_bytes: int, enabled: bool = True):
    self.total = max(1, total_bytes)
    self.enabled = enabled
    self.start = self.last = time.time()

  def update(self, stats: ReadStats, summary: Summary, final=False) -> None:
    now = time.time()
    if not self.enabled or (not final and now - self.last <
                            PROGRESS_INTERVAL):
      return
    self.last = now
    fraction = min(1.0, stats.bytes_read / self.total)
    bar = "=" * int(20 * fraction)
    print(f"[{bar:<20}] {100 * fraction:5.1f}% of the input, "
          f"{summary.documents} documents, {summary.instances} instances, "
          f"{now - self.start:.0f} s", file=sys.stderr, flush=True)


def create_pretraining_data(input_files: Sequence[str],
                            output_files: Sequence[str], config: JobConfig,
                            num_workers: int = 1,
                            documents_per_buffer: int = DOCUMENTS_PER_BUFFER,
                            overwrite: bool = False,
                            progress: bool = True) -> Summary:
  """Reads the text, writes the records (the CLI minus parsing).

  Args:
    input_files: sequence of str. Text files, read in this order.
    output_files: sequence of str. Records are written round-robin to them.
    config: `JobConfig`.
    num_workers: int. Processes making instances, this one included.
      Defaults to 1 (this one only).
    documents_per_buffer: int. Documents per buffer. Defaults to 1000.
    overwrite: bool. Replace existing outputs. Defaults to False.
    progress: bool. Progress lines on stderr. Defaults to True.

  Returns:
    A `Summary`.

  Raises:
    InputError: the input has no text (nothing is written).
    FileExistsError: an output exists and `overwrite` is False.
  """
  summary = Summary(files=[os.path.abspath(p) for p in output_files],
                    per_file=[0] * len(output_files))
  stats = ReadStats()
  meter = _Progress(sum(tf.io.gfile.stat(p).length for p in input_files),
                    enabled=progress)
  buffers = _batched(read_documents(input_files, stats), documents_per_buffer)
  with contextlib.ExitStack() as stack:
    # Every file is staged; an exception anywhere removes them all.
    writers = [stack.enter_context(records.serialized_record_writer(
        path, overwrite)) for path in output_files]
    for result in _process_buffers(buffers, config, num_workers):
      for record in result.records:
        shard = summary.instances % len(writers)
        writers[shard](record)
        summary.per_file[shard] += 1
        summary.instances += 1
      summary.documents += result.documents
      summary.masked_tokens += result.masked_tokens
      summary.random_next += result.random_next
      meter.update(stats, summary)
    summary.lines, summary.invalid_utf8 = stats.lines, stats.invalid_utf8
    if not summary.instances:
      raise InputError(
          f"--input_file: no text in {', '.join(input_files)} (every line is "
          "blank or has no word piece); nothing was written")
  if summary.instances >= 1000 or time.time() - meter.start > 1:
    meter.update(stats, summary, final=True)
  if stats.invalid_utf8:
    print(f"{_PROGRAM}: warning: {stats.invalid_utf8} input line(s) were "
          f"not valid UTF-8 (first: {stats.first_invalid}); decoded with "
          "replacement characters, which the tokenizer drops",
          file=sys.stderr)
  return summary


# === Command line ===


def _define_flags() -> flags.FlagValues:
  # A fresh FlagValues per call: no values left over between in-process calls.
  values = flags.FlagValues()
  define = dict(flag_values=values)
  flags.DEFINE_string("input_file", None, "Input raw text file (or "
                      "comma-separated list of files or globs): one sentence "
                      "per line, a blank line between documents.", **define)
  flags.DEFINE_string("output_file", None, "Output TFRecord file (or "
                      "comma-separated list of files: shards, written "
                      "round-robin).", **define)
  flags.DEFINE_string("vocab_file", None, "The WordPiece vocabulary of the "
                      "model.", **define)
  flags.DEFINE_boolean("do_lower_case", True, "Lower-case and strip accents "
                       "(True for uncased models, False for cased).",
                       **define)
  flags.DEFINE_boolean("do_whole_word_mask", False, "Mask whole words (a "
                       "piece and its ## continuations) rather than single "
                       "pieces.", **define)
  flags.DEFINE_integer("max_seq_length", 128, "Maximum sequence length "
                       "(at least 5).", **define)
  flags.DEFINE_integer("max_predictions_per_seq", 20, "Maximum number of "
                       "masked LM predictions per sequence.", **define)
  flags.DEFINE_integer("random_seed", 12345, "Random seed for data "
                       "generation.", **define)
  flags.DEFINE_integer("dupe_factor", 10, "Number of times to duplicate the "
                       "input data (with different masks).", **define)
  flags.DEFINE_float("masked_lm_prob", 0.15, "Masked LM probability.",
                     **define)
  flags.DEFINE_float("short_seq_prob", 0.1, "Probability of creating "
                     "sequences which are shorter than the maximum length.",
                     **define)
  flags.DEFINE_integer("num_workers", None, "Processes making instances "
                       "(this one and num_workers - 1 started ones); "
                       "default: the CPU cores available. The output does "
                       "not depend on it.", **define)
  flags.DEFINE_integer("documents_per_buffer", DOCUMENTS_PER_BUFFER,
                       "Documents held and mixed at a time (random next "
                       "segments and the instance order stay within a "
                       "buffer); the output depends on it.", **define)
  flags.DEFINE_boolean("overwrite", False, "Replace existing output files.",
                       **define)
  return values


def _usage(values: flags.FlagValues) -> str:
  return (f"Usage: {_PROGRAM} --input_file=TXT[,GLOB...] "
          "--output_file=OUT.tfrecord[,...] --vocab_file=vocab.txt "
          "[--[no]do_lower_case --do_whole_word_mask --max_seq_length=128 "
          "--max_predictions_per_seq=20 --dupe_factor=10 ...]\n\n"
          "Makes BERT pretraining records (masked LM + next sentence) from "
          "raw text.\n\nFlags:\n" + values.get_help())


def available_cores() -> int:
  """CPU cores this process may run on."""
  try:
    return len(os.sched_getaffinity(0))
  except AttributeError:  # Not on Linux.
    return os.cpu_count() or 1


def _check_flags(values) -> None:
  """Raises InputError for flag values out of range."""
  if values.max_seq_length < 5:
    raise InputError(f"--max_seq_length must be >= 5 ([CLS] A [SEP] B [SEP]"
                     f" with a piece each); received {values.max_seq_length}")
  for name in ("max_predictions_per_seq", "dupe_factor",
               "documents_per_buffer"):
    if values[name].value < 1:
      raise InputError(f"--{name} must be >= 1; received "
                       f"{values[name].value}")
  if values.num_workers is not None and values.num_workers < 1:
    raise InputError(f"--num_workers must be >= 1; received "
                     f"{values.num_workers}")
  if not 0.0 < values.masked_lm_prob <= 1.0:
    raise InputError(f"--masked_lm_prob must be in (0, 1]; received "
                     f"{values.masked_lm_prob}")
  if not 0.0 <= values.short_seq_prob <= 1.0:
    raise InputError(f"--short_seq_prob must be in [0, 1]; received "
                     f"{values.short_seq_prob}")


def _output_paths(values) -> List[str]:
  """The `--output_file`s, checked before anything is read."""
  paths = [p.strip() for p in values.output_file.split(",")]
  if not all(paths):
    raise InputError(f"--output_file: an empty file name in "
                     f"{values.output_file!r}")
  absolute = [os.path.abspath(p) for p in paths]
  if len(set(absolute)) != len(absolute):
    raise InputError(f"--output_file names a file twice: "
                     f"{values.output_file!r}")
  for path in paths:
    try:
      files.check_target(path, values.overwrite)
    except FileExistsError:
      raise InputError(f"--output_file {os.path.abspath(path)} already "
                       "exists; pass --overwrite to replace it") from None
    except NotADirectoryError as e:
      raise InputError(f"--output_file: {e}") from None
  return paths


def parse_flags(argv: Sequence[str]) -> flags.FlagValues:
  """Parses and checks the command line (argv[0] is the program name).

  Raises:
    InputError: unknown, missing or out-of-range flags.
  """
  values = _define_flags()
  argv = list(argv)
  if argv and argv[0].startswith("-"):
    argv = [_PROGRAM] + argv
  try:
    cli.parse(values, argv,
              required=("input_file", "output_file", "vocab_file"))
  except cli.UsageError as e:
    raise InputError(str(e)) from None
  _check_flags(values)
  return values


def run(values, log=print) -> Summary:
  """Checks the files named by the flags, then makes the records.

  Raises:
    InputError: a bad vocabulary, input or output (nothing is written).
  """
  try:
    preprocessing.read_vocab(values.vocab_file)  # Special tokens, UTF-8.
  except (FileNotFoundError, ValueError) as e:
    raise InputError(f"--vocab_file: {cli.first_line(e, limit=None)}"
                     ) from None
  inputs = input_paths(values.input_file)
  outputs = _output_paths(values)
  options = pi.InstanceOptions(
      max_seq_length=values.max_seq_length,
      max_predictions_per_seq=values.max_predictions_per_seq,
      masked_lm_prob=values.masked_lm_prob,
      short_seq_prob=values.short_seq_prob,
      do_whole_word_mask=values.do_whole_word_mask)
  if values.max_predictions_per_seq < options.rate_predictions:
    print(f"{_PROGRAM}: warning: --max_predictions_per_seq="
          f"{values.max_predictions_per_seq} is less than round("
          f"--max_seq_length * --masked_lm_prob) = "
          f"{options.rate_predictions}: long sequences get at most "
          f"{values.max_predictions_per_seq} predictions, fewer than "
          f"--masked_lm_prob asks", file=sys.stderr)
  config = JobConfig(vocab_file=values.vocab_file,
                     do_lower_case=values.do_lower_case, options=options,
                     dupe_factor=values.dupe_factor,
                     random_seed=values.random_seed)
  num_workers = values.num_workers or available_cores()
  summary = create_pretraining_data(
      inputs, outputs, config, num_workers=num_workers,
      documents_per_buffer=values.documents_per_buffer,
      overwrite=values.overwrite)
  for line in summary.lines_of_text():
    log(line)
  return summary


def main(argv: Sequence[str]) -> int:
  """Runs the CLI on `argv` (argv[0]: the program); returns the exit code."""
  if cli.wants_help([_PROGRAM] + list(argv)):
    print(_usage(_define_flags()))
    return 0
  try:
    values = parse_flags(argv)
    run(values, log=lambda line: print(line, flush=True))
  except InputError as e:
    return cli.error(_PROGRAM, str(e))
  except (FileExistsError, NotADirectoryError) as e:
    # An output appeared while we were writing: nothing was replaced.
    return cli.error(_PROGRAM, cli.first_line(e, limit=None))
  except (OSError, tf.errors.OpError) as e:
    # An input or output that cannot be read or written (permissions, a
    # full disk): nothing was written.
    return cli.error(_PROGRAM, cli.first_line(e, limit=None))
  return 0


if __name__ == "__main__":
  sys.exit(main(sys.argv))
