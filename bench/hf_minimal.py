"""(A0) of ``bench/variants.py``: the Hugging Face course's training loop, nothing of tunelab's.

The reference for variant A: if A (the seed notebooks' loop) ran much slower or faster than the
loop every HF tutorial teaches, C/A would measure A's quirks rather than what tunelab adds. This
is that loop as the course writes it (chapter 3: datasets, a shuffled DataLoader, AdamW, a linear
schedule, ``model(**batch).loss.backward()``), padded to ``max_length`` like A, timed from outside.
Only the model's location and the texts come from tunelab's config, so both loops see the same.
"""

from __future__ import annotations

import time


def hf_minimal(cfg, texts, labels, args) -> dict:
    """(A0): the training loop of the Hugging Face course (chapter 3), timed from outside."""
    import torch
    from datasets import Dataset
    from torch.utils.data import DataLoader
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, get_scheduler

    from tunelab.models.loading import model_source

    path = model_source(cfg.model)
    tokenizer = AutoTokenizer.from_pretrained(path)
    ds = Dataset.from_dict({"text": list(texts), "labels": [int(x) for x in labels]})
    ds = ds.map(lambda b: tokenizer(b["text"], padding="max_length", truncation=True, max_length=args.max_length),
                batched=True).remove_columns(["text"]).with_format("torch")
    train_dataloader = DataLoader(ds, shuffle=True, batch_size=args.batch_size)
    if cfg.model.random_init:  # the tiny smoke-test model
        from transformers import AutoConfig

        conf = AutoConfig.from_pretrained(path, num_labels=2, **dict(cfg.model.config_overrides or {}))
        model = AutoModelForSequenceClassification.from_config(conf)
    else:
        model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=2)
    optimizer = torch.optim.AdamW(model.parameters(), lr=5e-5)
    n = args.warmup + args.steps
    lr_scheduler = get_scheduler("linear", optimizer=optimizer, num_warmup_steps=0, num_training_steps=n)
    model.train()
    step, samples = 0, 0
    while step < n:
        for batch in train_dataloader:
            if step == args.warmup:
                t0, c0 = time.perf_counter(), time.process_time()
            outputs = model(**batch)
            outputs.loss.backward()
            optimizer.step()
            lr_scheduler.step()
            optimizer.zero_grad()
            if step >= args.warmup:
                samples += len(batch["labels"])
            step += 1
            if step == n:
                break
    dt, cpu = time.perf_counter() - t0, time.process_time() - c0
    return {"seconds": dt, "cpu_seconds": cpu, "samples_per_s": samples / dt, "samples_per_cpu_s": samples / cpu,
            "mean_padded_len": float(args.max_length)}
