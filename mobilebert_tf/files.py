"""Writing files and directories so that nothing is ever half-written.

Every writer in the project stages its output in a hidden temporary path
beside the target (same directory, so the final rename is atomic on POSIX),
and renames it into place only when it is complete. A crash leaves at most
a stale temporary, which the next run that writes the same target removes.

Temporary names are `.<target name>.tmp-<pid>-<random>`; the pid tells a
live writer's temporary (kept) from a dead one's (removed).

Example:

    with files.staged_directory("out/export", overwrite=False) as tmp:
      model.save(tmp)          # any number of files under tmp
    # out/export now exists, complete; on an exception nothing is left.
"""

import contextlib
import errno
import glob
import os
import re
import shutil
import tempfile
from typing import Iterator, List, Sequence, Union

_TMP_PATTERN = re.compile(r"^\.(?P<name>.+)\.tmp-(?P<pid>\d+)-[A-Za-z0-9_]+$")


def _umask() -> int:
  mask = os.umask(0)
  os.umask(mask)
  return mask


# mkstemp/mkdtemp create private (0600/0700) paths; what we publish gets the
# permissions a plain open()/makedirs() would give (readable by TF Serving).
_UMASK = _umask()


def temporary_prefix(target: str) -> str:
  """The prefix of this process's temporaries for `target`."""
  return f".{os.path.basename(target)}.tmp-{os.getpid()}-"


def _pid_alive(pid: int) -> bool:
  if pid == os.getpid():
    return True
  try:
    os.kill(pid, 0)
  except OSError as e:
    return e.errno == errno.EPERM
  return True


def remove_stale_temporaries(target: str) -> int:
  """Removes temporaries for `target` left behind by dead processes.

  Args:
    target: str. The file or directory a writer stages.

  Returns:
    The number of stale temporaries removed.
  """
  target = os.path.abspath(os.fspath(target))
  parent, name = os.path.split(target)
  if not os.path.isdir(parent):
    return 0
  removed = 0
  for entry in os.listdir(parent):
    match = _TMP_PATTERN.match(entry)
    if not match or match.group("name") != name:
      continue
    if _pid_alive(int(match.group("pid"))):
      continue
    path = os.path.join(parent, entry)
    if os.path.isdir(path) and not os.path.islink(path):
      shutil.rmtree(path, ignore_errors=True)
    else:
      with contextlib.suppress(FileNotFoundError):
        os.remove(path)
    removed += 1
  return removed


def check_target(target: str, overwrite: bool) -> str:
  """Checks that `target` may be written; returns its absolute path.

  Raises:
    FileExistsError: `target` exists and `overwrite` is False.
    NotADirectoryError: the parent of `target` is a file.
  """
  target = os.path.abspath(os.fspath(target))
  if os.path.lexists(target) and not overwrite:
    raise FileExistsError(
        f"{target} already exists. Pass --overwrite (overwrite=True) to "
        "replace it, or choose another path.")
  parent = os.path.dirname(target)
  if os.path.exists(parent) and not os.path.isdir(parent):
    raise NotADirectoryError(
        f"Cannot write {target}: {parent} is a file, not a directory.")
  return target


def replace(staged: str, target: str) -> None:
  """Renames the complete `staged` file or directory to `target`.

  An existing `target` is moved aside first and removed after the rename,
  so `target` is always either the old or the new content, never a mix.
  """
  target = os.path.abspath(os.fspath(target))
  if os.path.isdir(target) and not os.path.islink(target):
    parent = os.path.dirname(target)
    old = tempfile.mkdtemp(prefix=temporary_prefix(target), dir=parent)
    os.rename(target, os.path.join(old, "old"))
    os.rename(staged, target)
    shutil.rmtree(old, ignore_errors=True)
  else:
    os.replace(staged, target)


@contextlib.contextmanager
def staged_directory(target: str, overwrite: bool = False) -> Iterator[str]:
  """Yields a temporary directory beside `target`; renames it on success.

  Args:
    target: str. The directory to write.
    overwrite: bool. Replace an existing `target`. Defaults to False.

  Raises:
    FileExistsError: `target` exists and `overwrite` is False (raised before
      anything is written, and again at the end if it appeared meanwhile).
  """
  target = check_target(target, overwrite)
  parent = os.path.dirname(target)
  os.makedirs(parent, exist_ok=True)
  remove_stale_temporaries(target)
  tmp = tempfile.mkdtemp(prefix=temporary_prefix(target), dir=parent)
  os.chmod(tmp, 0o777 & ~_UMASK)
  try:
    yield tmp
    check_target(target, overwrite)
    replace(tmp, target)
  except BaseException:
    shutil.rmtree(tmp, ignore_errors=True)
    raise


@contextlib.contextmanager
def staged_file(target: str, overwrite: bool = False) -> Iterator[str]:
  """Yields a temporary file path beside `target`; renames it on success.

  The yielded path exists (empty); write it by name.

  Args:
    target: str. The file to write.
    overwrite: bool. Replace an existing `target`. Defaults to False.

  Raises:
    FileExistsError: `target` exists and `overwrite` is False.
  """
  target = check_target(target, overwrite)
  parent = os.path.dirname(target)
  os.makedirs(parent, exist_ok=True)
  remove_stale_temporaries(target)
  fd, tmp = tempfile.mkstemp(prefix=temporary_prefix(target), dir=parent)
  os.close(fd)
  os.chmod(tmp, 0o666 & ~_UMASK)
  try:
    yield tmp
    check_target(target, overwrite)
    os.replace(tmp, target)
  except BaseException:
    with contextlib.suppress(FileNotFoundError):
      os.remove(tmp)
    raise


def checkpoint_files(prefix: str) -> List[str]:
  """The existing files of checkpoint `prefix`: the index, then the data."""
  return [p for p in [prefix + ".index"] + sorted(glob.glob(
      glob.escape(prefix) + ".data-*")) if os.path.exists(p)]


@contextlib.contextmanager
def staged_prefix(prefix: str, overwrite: bool = False) -> Iterator[str]:
  """Yields a temporary checkpoint prefix beside `prefix`; moves it on success.

  The temporary directory is named like the other temporaries here, so a
  crashed writer's is removed by the next. On success the files
  `<tmp>.data-*` and `<tmp>.index` are renamed to `prefix.*`, the index
  last: without the index an interrupted move leaves nothing that looks
  like a checkpoint. Old files of `prefix` (other shardings too) are
  removed first.

  Args:
    prefix: str. The checkpoint prefix to write.
    overwrite: bool. Replace an existing checkpoint at `prefix`. Defaults to
      False.

  Raises:
    FileExistsError: a checkpoint exists at `prefix` and `overwrite` is
      False.
  """
  prefix = os.path.abspath(os.fspath(prefix))
  existing = checkpoint_files(prefix)
  if existing and not overwrite:
    raise FileExistsError(
        f"{existing[0]} already exists. Pass --overwrite (overwrite=True) to "
        "replace the checkpoint, or choose another prefix.")
  parent = os.path.dirname(prefix)
  os.makedirs(parent, exist_ok=True)
  remove_stale_temporaries(prefix)
  tmp_dir = tempfile.mkdtemp(prefix=temporary_prefix(prefix), dir=parent)
  try:
    tmp_prefix = os.path.join(tmp_dir, os.path.basename(prefix))
    yield tmp_prefix
    if not os.path.exists(tmp_prefix + ".index"):
      raise RuntimeError(f"Internal error: nothing was written at "
                         f"{tmp_prefix}.")
    for stale in checkpoint_files(prefix):
      os.remove(stale)
    for path in sorted(glob.glob(glob.escape(tmp_prefix) + ".data-*")):
      replace(path, prefix + path[len(tmp_prefix):])
    replace(tmp_prefix + ".index", prefix + ".index")
  finally:
    shutil.rmtree(tmp_dir, ignore_errors=True)


def write_text(target: str, text: str, overwrite: bool = False) -> str:
  """Writes `text` (UTF-8) to `target` atomically; returns the path."""
  with staged_file(target, overwrite) as tmp:
    with open(tmp, "w", encoding="utf-8") as f:
      f.write(text)
  return os.path.abspath(target)


def write_bytes(target: str, data: bytes, overwrite: bool = False) -> str:
  """Writes `data` to `target` atomically; returns the path."""
  with staged_file(target, overwrite) as tmp:
    with open(tmp, "wb") as f:
      f.write(data)
  return os.path.abspath(target)


def expand_globs(patterns: Union[str, Sequence[str]], name: str) -> List[str]:
  """The files of comma-separated (or listed) globs: each sorted, in order.

  Every input flag that takes "comma-separated globs" (`--input_file`,
  `--text_file`, ...) reads them with this one function. Each glob must
  match at least one file (a typo is an error, not an empty corpus); a file
  matched by two globs is listed once; directories are refused.

  Args:
    patterns: str of comma-separated globs, or a sequence of globs (local
      paths or any `tf.io.gfile` file system).
    name: the flag or argument, for the messages (e.g. "--input_file").

  Raises:
    FileNotFoundError: a glob matches nothing, a match is a directory, or
      there is no glob at all; the message starts with `name`.
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  if isinstance(patterns, str):
    patterns = patterns.split(",")
  paths = []
  for pattern in (p.strip() for p in patterns):
    if not pattern:
      continue
    matches = sorted(tf.io.gfile.glob(pattern))
    if not matches:
      raise FileNotFoundError(f"{name}: no file matches {pattern!r}")
    for path in matches:
      if tf.io.gfile.isdir(path):
        raise FileNotFoundError(f"{name}: {path} is a directory; pass the "
                                "files in it (e.g. DIR/*)")
    paths += [p for p in matches if p not in paths]
  if not paths:
    raise FileNotFoundError(f"{name}: no file given")
  return paths
