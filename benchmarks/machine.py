"""What a benchmark result records about the machine and the software.

Imports no TensorFlow: the versions come from the installed distributions'
metadata, the CPU from /proc/cpuinfo.
"""

import datetime
import importlib.metadata
import os
import platform
import re
import subprocess
from typing import Dict, Optional

# The distributions whose versions a result records, in report order.
PACKAGES = ("tensorflow", "tf_keras", "tf-models-official", "tensorflow-hub",
            "ai-edge-litert", "torch", "transformers", "numpy")

_REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def cpu_model(cpuinfo: str = "/proc/cpuinfo") -> str:
  """The CPU model name (`model name` of /proc/cpuinfo), else platform's."""
  try:
    with open(cpuinfo, encoding="utf-8") as f:
      for line in f:
        if line.startswith("model name"):
          return line.split(":", 1)[1].strip()
  except OSError:
    pass
  return platform.processor() or "unknown"


def cpu_slug(cpu: str) -> str:
  """A file-name-safe short form of a CPU model name.

  >>> cpu_slug("Intel(R) Xeon(R) Platinum 8375C CPU @ 2.90GHz")
  'intel-xeon-platinum-8375c'
  >>> cpu_slug("AMD EPYC 9R14 96-Core Processor")
  'amd-epyc-9r14-96-core'
  """
  text = cpu.split("@")[0].lower()
  text = re.sub(r"\((r|tm)\)|\bcpu\b|\bprocessor\b", " ", text)
  slug = re.sub(r"[^a-z0-9]+", "-", text).strip("-")
  return slug[:40].strip("-") or "unknown-cpu"


def versions() -> Dict[str, Optional[str]]:
  """Installed version of each of `PACKAGES` (None where not installed)."""
  found = {}
  for package in PACKAGES:
    try:
      found[package] = importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
      found[package] = None
  return found


def git_commit() -> Optional[str]:
  """The checkout's commit, with "-dirty" if files differ; None without git."""
  try:
    commit = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=_REPO_ROOT, capture_output=True,
        text=True, timeout=10, check=True).stdout.strip()
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no"],
        cwd=_REPO_ROOT, capture_output=True, text=True, timeout=10,
        check=True).stdout.strip()
  except (OSError, subprocess.SubprocessError):
    return None
  return commit + ("-dirty" if dirty else "")


def machine_record(now: Optional[datetime.datetime] = None
                  ) -> Dict[str, object]:
  """Date, CPU model, core counts, load and versions of this run.

  Args:
    now: the run's start, UTC. Defaults to the current time.

  Returns:
    dict with `date` ("YYYY-MM-DD HH:MM:SS UTC"), `timestamp` (the file-name
    form, "YYYYMMDDTHHMMSSZ"), `cpu`, `cpu_slug`, `logical_cores`,
    `usable_cores` (this process's CPU affinity), `python`, `platform`,
    `versions` (see `PACKAGES`), `git_commit` and `load_average_start`.
  """
  now = now or datetime.datetime.now(datetime.timezone.utc)
  cpu = cpu_model()
  try:
    usable = len(os.sched_getaffinity(0))
  except AttributeError:  # Not on Linux.
    usable = None
  return dict(
      date=now.strftime("%Y-%m-%d %H:%M:%S UTC"),
      timestamp=now.strftime("%Y%m%dT%H%M%SZ"),
      cpu=cpu, cpu_slug=cpu_slug(cpu), logical_cores=os.cpu_count(),
      usable_cores=usable, python=platform.python_version(),
      platform=platform.platform(), versions=versions(),
      git_commit=git_commit(), load_average_start=list(os.getloadavg()))
