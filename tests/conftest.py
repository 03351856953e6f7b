"""Shared fixtures: tiny configs, inputs, and TF1 checkpoints built by the tests."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest
import tensorflow as tf

from mobilebert_tf import MobileBertConfig
from tests import helpers

# Two threads each: the suite runs on 2 cores, and oversubscription makes
# small graphs slower, not faster.
tf.config.threading.set_inter_op_parallelism_threads(2)
tf.config.threading.set_intra_op_parallelism_threads(2)


@pytest.fixture
def tiny_config():
  return MobileBertConfig.from_dict(helpers.TINY_CONFIG)


@pytest.fixture
def tiny_inputs(tiny_config):
  return helpers.make_encoder_inputs(tiny_config)
