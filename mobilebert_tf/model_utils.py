"""Drop-in for tf-models-official's `official.projects.mobilebert.model_utils`.

Its documented snippet works with only the import changed:

  from mobilebert_tf import model_utils
  bert_config = model_utils.BertConfig.from_json_file(config_path)
  pretrainer = model_utils.create_mobilebert_pretrainer(bert_config)
  checkpoint = tf.train.Checkpoint(**pretrainer.checkpoint_items)
  checkpoint.restore(ckpt_path).assert_existing_objects_matched()

(tf-models-official 2.20.0's own module uses `tf_keras` without importing it;
this one has no such gap.)
"""

from mobilebert_tf.config import MobileBertConfig
from mobilebert_tf.pretrainer import MobileBertPretrainer
from mobilebert_tf.pretrainer import build_pretrainer

# The original name of the config class.
BertConfig = MobileBertConfig


def create_mobilebert_pretrainer(bert_config) -> MobileBertPretrainer:
  """Creates the pretrainer (encoder + masked-LM head) with its variables.

  Args:
    bert_config: a `MobileBertConfig`, or any object with `to_dict()` or the
      config's attributes (such as tf-models-official's `BertConfig`).
  """
  if not isinstance(bert_config, MobileBertConfig):
    values = (bert_config.to_dict() if hasattr(bert_config, "to_dict")
              else dict(vars(bert_config)))
    bert_config = MobileBertConfig.from_dict(values)
  return build_pretrainer(bert_config)
