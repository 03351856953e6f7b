"""Training: fine-tuning, pretraining data and (coming) pretraining CLIs.

One module per job:

* `tsv`: reading GLUE-style TSV files;
* `pretraining_data`: masked-LM + next-sentence examples (NumPy);
* `evaluation`: masked-LM top-k accuracy and cross-entropy;
* `run_classifier`: the fine-tuning CLI (`python -m training.run_classifier`).

Optimizers and schedules come from `mobilebert_tf.optimization`.
"""
