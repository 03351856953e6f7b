"""Shared fixtures: tiny configs, inputs, and TF1 checkpoints built by the tests."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

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
def workspace_dir(tmp_path_factory):
  """The files the documented commands name (`tests/workspace.py`), made
  once per test process and shared by the tests that run those commands."""
  return workspace.build(tmp_path_factory.mktemp("workspace"))


@pytest.fixture
def tiny_inputs(tiny_config):
  return helpers.make_encoder_inputs(tiny_config)
