"""Shared fixtures: tiny configs, inputs, and TF1 checkpoints built by the tests."""

import os
import shutil

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# The processes the tests start (CLIs, documented commands, workers) run
# beside the two test workers on 2 cores: one intra-op thread each, instead
# of a pool per process that oversubscribes the cores (measured: ~10% less
# CPU time for the subprocess-heavy files).
os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "1")

import filelock
import pytest
import tensorflow as tf

from mobilebert_tf import MobileBertConfig
from tests import helpers
from tests import workspace

# Two threads each: the suite runs on 2 cores, and oversubscription makes
# small graphs slower, not faster.
tf.config.threading.set_inter_op_parallelism_threads(2)
tf.config.threading.set_intra_op_parallelism_threads(2)


@pytest.fixture
def tiny_config():
  return MobileBertConfig.from_dict(helpers.TINY_CONFIG)


@pytest.fixture(scope="session")
def workspace_dir(tmp_path_factory, worker_id):
  """The files the documented commands name (`tests/workspace.py`), shared
  by the tests that run those commands in one test process.

  Under pytest-xdist the first worker that needs it builds it once for all;
  each worker then works in its own copy, as the commands write there.
  """
  own = tmp_path_factory.mktemp("workspace")
  if worker_id == "master":  # not under xdist
    return workspace.build(own)
  shared = tmp_path_factory.getbasetemp().parent  # common to the workers
  with filelock.FileLock(str(shared / "workspace.lock")):
    built = workspace.build_once(shared / "workspace")
  shutil.copytree(built, own, symlinks=True, dirs_exist_ok=True,
                  ignore=shutil.ignore_patterns(".complete"))
  return str(own)


@pytest.fixture
def tiny_inputs(tiny_config):
  return helpers.make_encoder_inputs(tiny_config)
