"""Exporting MobileBERT: TF-Hub SavedModels and TFLite, one job per module.

SavedModels (`python -m export.to_savedmodel`):

* `encoder_model`: the Keras model the encoder SavedModel holds (`.mlm`,
  signatures);
* `encoder_savedmodel`: writes the encoder SavedModel (vocab and config
  assets, `do_lower_case`), reads its config back; the SavedModel contract;
* `preprocessor_savedmodel`: writes the preprocessor SavedModel;
* `assets`: asset files staged so that no source path is saved;
* `verify`: reloads an export and compares it with the in-memory model;
* `pipeline`: checkpoint -> both SavedModels, verified, renamed into place;
* `to_savedmodel`: the command line.

TFLite (`python -m export.to_tflite`):

* `rebuild`: the encoder SavedModel's Keras model, rebuilt from its config
  asset and restored by object graph;
* `tflite_convert`: conversion, quantization, representative data;
* `tflite_verify`: LiteRT run, agreement, thresholds;
* `tflite_export`: convert, verify, write;
* `to_tflite`: the command line.
"""
