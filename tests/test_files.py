"""Tests of `mobilebert_tf.files`: staged (write-beside-then-rename) outputs."""

import os
import subprocess
import sys

import pytest

from mobilebert_tf import files


def _entries(directory):
  return sorted(os.listdir(directory))


def _dead_pid():
  """The pid of a process that has exited (and been reaped)."""
  process = subprocess.Popen([sys.executable, "-c", "pass"])
  process.wait()
  return process.pid


# === staged_directory ===


def test_staged_directory_renames_on_success(tmp_path):
  target = tmp_path / "sub" / "out"  # Missing parents are created.
  with files.staged_directory(str(target)) as tmp:
    assert os.path.isdir(tmp) and not target.exists()
    assert os.path.dirname(tmp) == str(target.parent)
    assert os.path.basename(tmp).startswith(f".out.tmp-{os.getpid()}-")
    with open(os.path.join(tmp, "a.txt"), "w") as f:
      f.write("new")
  assert (target / "a.txt").read_text() == "new"
  assert _entries(tmp_path / "sub") == ["out"]


def test_staged_directory_exception_leaves_nothing(tmp_path):
  target = tmp_path / "out"
  with pytest.raises(RuntimeError, match="boom"):
    with files.staged_directory(str(target)) as tmp:
      open(os.path.join(tmp, "half.txt"), "w").close()
      raise RuntimeError("boom")
  assert _entries(tmp_path) == []


def test_staged_directory_exception_keeps_the_old_content(tmp_path):
  target = tmp_path / "out"
  target.mkdir()
  (target / "old.txt").write_text("old")
  with pytest.raises(RuntimeError):
    with files.staged_directory(str(target), overwrite=True):
      raise RuntimeError("boom")
  assert _entries(target) == ["old.txt"]
  assert _entries(tmp_path) == ["out"]


def test_staged_directory_refuses_existing_without_overwrite(tmp_path):
  target = tmp_path / "out"
  target.mkdir()
  (target / "old.txt").write_text("old")
  with pytest.raises(FileExistsError, match="already exists. Pass --overwrite"):
    with files.staged_directory(str(target)):
      pytest.fail("must not be entered")
  assert _entries(target) == ["old.txt"]

  with files.staged_directory(str(target), overwrite=True) as tmp:
    open(os.path.join(tmp, "new.txt"), "w").close()
  assert _entries(target) == ["new.txt"]
  assert _entries(tmp_path) == ["out"]  # The old one moved aside, removed.


def test_staged_directory_target_appearing_meanwhile(tmp_path):
  target = tmp_path / "out"
  with pytest.raises(FileExistsError):
    with files.staged_directory(str(target)):
      target.mkdir()  # Another writer won.
  assert _entries(tmp_path) == ["out"]


def test_parent_is_a_file(tmp_path):
  (tmp_path / "file").write_text("x")
  with pytest.raises(NotADirectoryError, match="is a file, not a directory"):
    files.check_target(str(tmp_path / "file" / "out"), overwrite=False)


# === staged_file ===


def test_staged_file_and_write_helpers(tmp_path):
  target = tmp_path / "model.tflite"
  with files.staged_file(str(target)) as tmp:
    assert os.path.isfile(tmp) and os.path.getsize(tmp) == 0
    with open(tmp, "wb") as f:
      f.write(b"\x00\x01")
  assert target.read_bytes() == b"\x00\x01"
  with pytest.raises(FileExistsError):
    files.write_bytes(str(target), b"other")
  assert files.write_bytes(str(target), b"other", overwrite=True) == str(target)
  assert target.read_bytes() == b"other"
  files.write_text(str(tmp_path / "t.txt"), "é\n")
  assert (tmp_path / "t.txt").read_text(encoding="utf-8") == "é\n"
  assert _entries(tmp_path) == ["model.tflite", "t.txt"]


def test_staged_file_exception_leaves_nothing(tmp_path):
  with pytest.raises(KeyboardInterrupt):
    with files.staged_file(str(tmp_path / "out.bin")) as tmp:
      with open(tmp, "wb") as f:
        f.write(b"half")
      raise KeyboardInterrupt
  assert _entries(tmp_path) == []


# === Stale temporaries ===


def test_stale_temporaries_of_dead_processes_are_removed(tmp_path):
  dead, live = _dead_pid(), os.getppid()
  stale_dir = tmp_path / f".out.tmp-{dead}-abc123"
  stale_dir.mkdir()
  (stale_dir / "x").write_text("x")
  stale_file = tmp_path / f".out.tmp-{dead}-def_456"
  stale_file.write_text("x")
  kept = [f".out.tmp-{live}-abc", f".other.tmp-{dead}-abc", "out.tmp-1-x",
          f".out.tmp-{dead}-"]  # live writer, other target, not ours
  for name in kept:
    (tmp_path / name).write_text("keep")
  assert files.remove_stale_temporaries(str(tmp_path / "out")) == 2
  assert _entries(tmp_path) == sorted(kept)

  # The next writer of the target cleans up too.
  (tmp_path / f".out.tmp-{dead}-zzz").mkdir()
  with files.staged_directory(str(tmp_path / "out")):
    pass
  assert _entries(tmp_path) == sorted(kept + ["out"])


def test_no_parent_directory_means_nothing_stale(tmp_path):
  assert files.remove_stale_temporaries(str(tmp_path / "no" / "out")) == 0


def test_published_permissions_follow_the_umask(tmp_path):
  """Not mkstemp's private 0600: readable as an open() would leave it."""
  mask = os.umask(0)
  os.umask(mask)
  files.write_bytes(str(tmp_path / "f"), b"x")
  with files.staged_directory(str(tmp_path / "d")):
    pass
  assert os.stat(tmp_path / "f").st_mode & 0o777 == 0o666 & ~mask
  assert os.stat(tmp_path / "d").st_mode & 0o777 == 0o777 & ~mask
