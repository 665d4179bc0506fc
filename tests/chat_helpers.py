"""Tiny models and runs for the chat tests (engine and screen).

The shared tiny model (``tests/conftest.py``) ties its output layer to its embeddings, and a
random 2-layer model with tied embeddings only repeats its last prompt token (a newline
after the chat template's assistant header): every answer would be empty. The chat tests
need answers that differ between models, so their model has its own random output layer.
"""

from __future__ import annotations

import shutil
from pathlib import Path

RUN_NAME = "2026-01-01_00-00-00-chat"
SYSTEM = "You answer in one line."


def build_chatty_model(out_dir: Path, seed: int = 0) -> Path:
    """A random 2-layer Llama (hidden 64) on the bundled tokenizer, output layer untied."""
    from cockpit.models.sources import build_tiny_model

    return build_tiny_model(out_dir, seed=seed, tied=False)


def make_chat_run(root: Path, base: Path, *, method: str = "lora", state: str = "finished",
                  system_prompt: str | None = SYSTEM, name: str = RUN_NAME) -> Path:
    """A run directory as the trainer leaves it: a LoRA adapter with random B matrices (a
    fresh adapter is all zeros and would answer like the base), or for ``method="full"``
    the base's weights, perturbed, as the trained model."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from cockpit.config import TrainConfig, config_to_yaml
    from cockpit.run.status import write_status

    run = root / name
    (run / "model").mkdir(parents=True)
    model = AutoModelForCausalLM.from_pretrained(str(base))
    torch.manual_seed(1)
    if method == "lora":
        from peft import LoraConfig, get_peft_model

        model = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj", "up_proj"],
                                                 task_type="CAUSAL_LM"))
        with torch.no_grad():
            for pname, p in model.named_parameters():
                if "lora_B" in pname:
                    p.normal_(0, 0.2)
    else:
        with torch.no_grad():
            model.lm_head.weight.add_(torch.randn_like(model.lm_head.weight) * 0.05)
    model.save_pretrained(str(run / "model"))
    AutoTokenizer.from_pretrained(str(base)).save_pretrained(str(run / "model"))
    cfg = TrainConfig(model=str(base), method=method, system_prompt=system_prompt, data="data/dsl_train.jsonl",
                      output_dir=str(root), lora_r=8, lora_alpha=16,
                      lora_target_modules=["q_proj", "v_proj", "up_proj"], sample_prompts=["What does wv.drizzle do?"])
    (run / "config_used.yaml").write_text(config_to_yaml(cfg))
    write_status(run, state=state, pid=0, step=4, total_steps=4, loss=2.5, model=str(base), method=method)
    return run


def export_gguf(run: Path) -> Path:
    """The run's f16 GGUF through the project's export pipeline (merge, convert; no proof)."""
    from cockpit.export import export_run

    result = export_run(run, target="gguf", quant="f16", name="chat-tiny", verify_export=False,
                        verify_logits=False)
    shutil.rmtree(run / "export" / "merged", ignore_errors=True)
    return Path(result.gguf) if getattr(result, "gguf", None) else next((run / "export").glob("*.gguf"))
