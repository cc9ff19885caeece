"""A finished run's fine-tuned model (for export and analysis) and its merged export: the run's
base with its trained update folded in, saved so that the usual tools predict what the studio
predicts:
  - a classifier with the model's own head (pooling cls) or a causal LM: a transformers folder,
    ``AutoModelForSequenceClassification`` / ``pipeline("text-classification")`` or
    ``AutoModelForCausalLM``;
  - a mean-pooled classifier (MiniLM's default): transformers' classes would read BERT's [CLS]
    pooler instead, so the folder is also a sentence-transformers model: Transformer, mean
    Pooling, and a Dense layer holding the classifier (identity activation), whose
    ``SentenceTransformer(folder).encode(texts)`` are the studio's logits.
Every export carries a README.md that says how to load it.
"""
from __future__ import annotations

import json
from pathlib import Path

from ..errors import RunError
from ..models.pooling import CONFIG_KEY, mean_pooled
from ..runs.folder import RunFolder


def fine_tuned_model(folder: str | Path):
    """(fine-tuned model, tokenizer) of a finished run, as its method's registry entry loads it:
    an adapter merged into the run's base, or the whole saved model (full fine-tuning)."""
    run, kwargs = finished_run(folder)
    config, saved = run.config, run.saved()
    if not saved.is_dir():
        raise RunError(f"{run.path} has no {saved.name}/ folder, which a finished {config.method} run saves")
    model, tokenizer = config.method_spec.load(run.path, config.source, config.task, **kwargs)
    if config.task == "classification":  # label names travel with the model (pipelines, exports)
        labels = run.summary()["labels"]
        model.config.id2label = dict(enumerate(labels))
        model.config.label2id = {name: i for i, name in enumerate(labels)}
    return model, tokenizer


def finished_run(folder: str | Path):
    """(RunFolder, load_model keyword arguments) of a finished run; RunError otherwise."""
    run = RunFolder(folder)
    summary = run.summary()
    if run.status()["state"] != "finished" or summary is None:
        raise RunError(
            f"{run.path} has not finished ({run.status()['state']}); only a finished run can be exported or analysed"
        )
    if run.config.task != "classification":
        return run, {}
    return run, {"num_labels": len(summary["labels"]), "pooling": run.config.pooling}


def export_merged(folder: str | Path, target: str | Path | None = None) -> Path:
    """The run's fine-tuned model (fine_tuned_model: the base with its adapter merged in, or the
    fully fine-tuned model) saved with its tokenizer to ``target`` (default: the run's merged/
    folder), with the sentence-transformers files of a mean-pooled classifier and a README.md
    saying how to load it."""
    run, _ = finished_run(folder)
    target = Path(target) if target is not None else run.merged_path
    merged, tokenizer = fine_tuned_model(folder)
    merged.save_pretrained(target)
    if tokenizer is not None:
        tokenizer.model_max_length = run.config.seq_len  # truncate where the studio does
        tokenizer.save_pretrained(target)
    if getattr(merged.config, CONFIG_KEY, None) == "mean":
        write_sentence_transformers_files(target, merged)
    (target / "README.md").write_text(how_to_load(target, run.config.task))
    return target


def write_sentence_transformers_files(target: Path, model) -> None:
    """Make a merged mean-pooled classifier folder a sentence-transformers model too (the files
    sentence-transformers 6 writes): modules.json, the Transformer at the root, 1_Pooling (mean),
    2_Dense (the classifier's weight and bias, identity activation)."""
    from safetensors.torch import save_file

    head = model.classifier
    hidden, labels = head.in_features, head.out_features
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.base.modules.transformer.Transformer"},
        {
            "idx": 1,
            "name": "1",
            "path": "1_Pooling",
            "type": "sentence_transformers.sentence_transformer.modules.pooling.Pooling",
        },
        {"idx": 2, "name": "2", "path": "2_Dense", "type": "sentence_transformers.base.modules.dense.Dense"},
    ]
    (target / "modules.json").write_text(json.dumps(modules, indent=2))
    (target / "sentence_bert_config.json").write_text(json.dumps({
        "transformer_task": "feature-extraction",
        "modality_config": {"text": {"method": "forward", "method_output_name": "last_hidden_state"}},
        "module_output_name": "token_embeddings"}, indent=4))
    (target / "1_Pooling").mkdir(exist_ok=True)
    (target / "1_Pooling" / "config.json").write_text(json.dumps(
        {"embedding_dimension": hidden, "pooling_mode": "mean", "include_prompt": True}, indent=4))
    (target / "2_Dense").mkdir(exist_ok=True)
    (target / "2_Dense" / "config.json").write_text(json.dumps(
        {"in_features": hidden, "out_features": labels, "bias": True,
         "activation_function": "torch.nn.modules.linear.Identity", "module_input_name": "sentence_embedding",
         "module_output_name": "sentence_embedding"}, indent=4))
    save_file({"linear.weight": head.weight.detach().float().contiguous().cpu(),
               "linear.bias": head.bias.detach().float().contiguous().cpu()},
              str(target / "2_Dense" / "model.safetensors"))


def how_to_load(target: Path, task: str) -> str:
    """The export's README: what to load it with so that it predicts what the studio predicts."""
    name = target.name
    if task == "causal-lm":
        code = (f'from transformers import AutoModelForCausalLM, AutoTokenizer\n'
                f'model = AutoModelForCausalLM.from_pretrained("{name}")\n'
                f'tokenizer = AutoTokenizer.from_pretrained("{name}")')
        intro = "A causal language model fine-tuned with LaMDA Studio; plain transformers loads it."
    elif mean_pooled(target):
        code = (f'from sentence_transformers import SentenceTransformer\n'
                f'model = SentenceTransformer("{name}")\n'
                f'probabilities = model.encode(["a text"], convert_to_tensor=True).softmax(-1)\n'
                f'labels = model[0].auto_model.config.id2label  # column i of probabilities is labels[i]')
        intro = ("A classifier fine-tuned with LaMDA Studio that reads the **mean of the token states** (mean "
                 "pooling, as all-MiniLM-L6-v2 was trained). Load it with **sentence-transformers**: its "
                 "encode() returns the classifier's logits, exactly the studio's. "
                 "`AutoModelForSequenceClassification` or `pipeline(\"text-classification\")` would read BERT's "
                 "[CLS] pooler instead and predict differently.")
    else:
        code = (f'from transformers import pipeline\n'
                f'classify = pipeline("text-classification", model="{name}", top_k=None)')
        intro = "A classifier fine-tuned with LaMDA Studio (the model's own [CLS] head); plain transformers loads it."
    return f"# {name}\n\n{intro}\n\n```python\n{code}\n```\n"
