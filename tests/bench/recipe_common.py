"""The workshop recipe as a user would write it from the guides: HF Trainer + PEFT LoRA.

Nothing here comes from llm-cockpit: this is the baseline the cockpit is measured
against. Training text follows the workshop's rule, ``prompt + "\\n" + completion + EOS``,
with the prompt tokens masked out of the loss (label -100). The two benchmark scripts
differ only in how a batch is padded:

* ``recipe_padded.py``: ``padding="max_length"``, every example padded to 512 tokens
  (what most guides copy), batched by ``default_data_collator``;
* ``recipe_dynamic.py``: no padding at tokenization, ``DataCollatorForSeq2Seq`` pads each
  batch to its longest example.

Two measurements ride along without changing the training: a forward pre-hook counts
the tokens the model actually saw (attention-mask sums = useful tokens, ``input_ids``
sizes = tokens including padding), and a callback times the training loop on the same
clock the cockpit uses for its ``step`` events (from ``on_train_begin`` to the last
logged step). The numbers are written as JSON to ``--result``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from tests.bench import settings as S


def parse_args(argv: list[str] | None, padding: str) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=f"Workshop LoRA recipe, padding={padding}")
    p.add_argument("--model", required=True, help="local model directory (safetensors + tokenizer)")
    p.add_argument("--data", default=S.DATA, help="prompt/completion JSONL")
    p.add_argument("--steps", type=int, default=S.DEFAULT_STEPS, help="optimizer steps")
    p.add_argument("--seed", type=int, default=S.SEED)
    p.add_argument("--text", choices=("plain", "chat"), default="plain",
                   help="plain: prompt + newline + completion + EOS (workshop); chat: the chat template")
    p.add_argument("--output-dir", required=True, help="Trainer output directory (the final adapter goes here)")
    p.add_argument("--result", required=True, help="where to write the measurements (JSON)")
    return p.parse_args(argv)


def split_row(row: dict) -> tuple[str, str]:
    """``(prompt, completion)`` of a prompt/completion row or a chat row (last turn = answer)."""
    if "messages" in row:
        *context, answer = row["messages"]
        return "\n".join(m["content"] for m in context), answer["content"]
    return row["prompt"], row["completion"]


def texts(tokenizer, row: dict, mode: str) -> tuple[str, str]:
    """``(prompt_part, full_text)``: the full text starts with the prompt part, which is masked."""
    prompt, completion = split_row(row)
    if mode == "chat":
        user = [{"role": "user", "content": prompt}]
        head = tokenizer.apply_chat_template(user, tokenize=False, add_generation_prompt=True)
        full = tokenizer.apply_chat_template(user + [{"role": "assistant", "content": completion}], tokenize=False)
        return head, full
    head = prompt + "\n"
    return head, head + completion + tokenizer.eos_token


def make_tokenize(tokenizer, padding: str | bool, mode: str, max_length: int = S.MAX_LENGTH):
    """The ``datasets.map`` function: ids, attention mask and labels with the prompt masked."""

    def tokenize(row: dict) -> dict:
        head, full = texts(tokenizer, row, mode)
        enc = tokenizer(full, max_length=max_length, truncation=True, padding=padding)
        n_prompt = len(tokenizer(head)["input_ids"])
        labels = [tok if keep else -100 for tok, keep in zip(enc["input_ids"], enc["attention_mask"])]
        labels[:n_prompt] = [-100] * min(n_prompt, len(labels))
        enc["labels"] = labels
        return enc

    return tokenize


class TokenMeter:
    """Counts what every training forward pass consumes: real tokens and padded positions."""

    def __init__(self) -> None:
        self.useful = 0
        self.seen = 0

    def attach(self, model) -> None:
        def hook(module, args, kwargs):
            if not module.training:
                return
            ids = kwargs.get("input_ids", args[0] if args else None)
            mask = kwargs.get("attention_mask")
            if ids is not None:
                self.seen += int(ids.numel())
            self.useful += int(mask.sum()) if mask is not None else int(ids.numel()) if ids is not None else 0

        model.register_forward_pre_hook(hook, with_kwargs=True)


def make_clock():
    """A callback that times the loop like the cockpit does and keeps every logged loss."""
    from transformers import TrainerCallback

    class LoopClock(TrainerCallback):
        def __init__(self) -> None:
            self.t0 = self.t_last = None
            self.losses: list[float] = []

        def on_train_begin(self, args, state, control, **kwargs):
            self.t0 = self.t_last = time.perf_counter()

        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and "loss" in logs:
                self.t_last = time.perf_counter()
                self.losses.append(float(logs["loss"]))

        @property
        def seconds(self) -> float | None:
            return None if self.t0 is None else round(self.t_last - self.t0, 3)

    return LoopClock()


def run_recipe(padding: str, argv: list[str] | None = None) -> int:
    """Train with ``padding`` ("max_length" or "longest") and write the measurements."""
    import torch
    import transformers
    from datasets import load_dataset
    from peft import LoraConfig, get_peft_model
    from transformers import (AutoModelForCausalLM, AutoTokenizer, DataCollatorForSeq2Seq, Trainer,
                              TrainingArguments, default_data_collator)

    args = parse_args(argv, padding)
    transformers.set_seed(args.seed)
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    dataset = load_dataset("json", data_files=args.data, split="train")
    pad_at_tokenize = "max_length" if padding == "max_length" else False
    dataset = dataset.map(make_tokenize(tokenizer, pad_at_tokenize, args.text), remove_columns=dataset.column_names)
    if padding == "max_length":
        collator = default_data_collator
    else:
        collator = DataCollatorForSeq2Seq(tokenizer, padding="longest", label_pad_token_id=-100)

    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.float32)
    model.config.use_cache = False
    model = get_peft_model(model, LoraConfig(r=S.LORA_R, lora_alpha=S.LORA_ALPHA, lora_dropout=S.LORA_DROPOUT,
                                             target_modules=S.LORA_TARGETS, task_type="CAUSAL_LM"))
    meter, clock = TokenMeter(), make_clock()
    meter.attach(model)
    training_args = TrainingArguments(
        output_dir=args.output_dir, per_device_train_batch_size=S.BATCH_SIZE,
        gradient_accumulation_steps=S.GRAD_ACCUM, learning_rate=S.LR, max_steps=args.steps,
        warmup_steps=S.WARMUP_RATIO,  # a float < 1 is a share of the steps (transformers 5)
        lr_scheduler_type=S.LR_SCHEDULER, weight_decay=S.WEIGHT_DECAY, max_grad_norm=S.MAX_GRAD_NORM,
        logging_steps=1, save_strategy="no", eval_strategy="no", report_to="none",
        seed=args.seed, data_seed=args.seed, disable_tqdm=True,
    )
    trainer = Trainer(model=model, args=training_args, train_dataset=dataset, data_collator=collator,
                      processing_class=tokenizer, callbacks=[clock])
    t0 = time.perf_counter()
    trainer.train()
    train_call_s = time.perf_counter() - t0
    trainer.save_model(args.output_dir)  # the final adapter, as every recipe ends

    result = {
        "padding": padding, "text": args.text, "steps": trainer.state.global_step,
        "examples": len(dataset), "useful_tokens": meter.useful, "seen_tokens": meter.seen,
        "train_s": clock.seconds, "train_call_s": round(train_call_s, 3),
        "final_loss": clock.losses[-1] if clock.losses else None, "losses": clock.losses,
        "torch_threads": torch.get_num_threads(),
    }
    Path(args.result).write_text(json.dumps(result, indent=2), encoding="utf-8")
    print(json.dumps({k: v for k, v in result.items() if k != "losses"}), file=sys.stderr)
    return 0
