"""Fine-tuning IVT (`ivt train`) with the HF `Trainer`: MLA batches, BMM inside the model, the CMPM loss, retrieval
validation.

- `arguments.py`: `DataArguments`, `IVTTrainingArguments`, `parse_args`, `recipe_arguments`;
- `train.py`: build model, data and trainer; `train_from_arguments` behind `ivt train` and `scripts/train.py`;
- `trainer.py`: `IVTTrainer`;
- `batching.py` (dataset, keyed batches, the MLA collator), `sampler.py` (P x K identities), `text_levels.py` (word /
  phrase / sentence texts);
- `losses.py`: CMPM (pure functions).
"""
