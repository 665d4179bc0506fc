"""The advice lines of the workshop's debugging checklist, in one place.

Events, status files and the UI quote these, so a newcomer reads the same words
wherever the problem shows up.
"""

ADVICE = {
    "nan": ("lower the learning rate tenfold (e.g. lr=2e-5), then check the data for empty or "
            "broken examples; the last good checkpoint was kept"),
    "grad_spike": ("usually one bad or unusually long example, or a learning rate on the high side: "
                   "gradient clipping (max_grad_norm) limits the damage; inspect the data if it repeats"),
    "loss_spike": ("often a few bad samples: look at the examples of this step's batch; keep gradient "
                   "clipping on (max_grad_norm=1.0)"),
    "loss_flat": ("the learning rate is too low or the labels are wrong: check the data and the prompt "
                  "masking (llm-cockpit data check shows what is learned), then raise the learning rate"),
    "overfit": "eval loss rising while train loss falls is overfitting: fewer epochs or early stopping",
    "oom": ("try, in order: a smaller batch_size with more grad_accum, grad_ckpt=true, "
            "method=qlora, a shorter max_length, a smaller model"),
    "mem_high": "memory is close to the limit: a smaller batch_size or grad_ckpt=true leaves room",
    "slow_io": ("training waits for its batches: put the data on a local disk, use a bigger batch, "
                "or tokenize once ahead (the tokenized cache is reused by later runs)"),
    "gpu_hot": "the GPU runs hotter than 85 C: check the cooling and the fan curve",
    "gpu_idle": ("the GPU is often idle: the input pipeline is likely the bottleneck, or the batch is too "
                 "small for the card; try a bigger batch_size, or packing=true"),
    "pref_margin_high": ("beta or the learning rate is too high: lower lr (DPO usually trains at 5e-7 to 5e-6 "
                         "for full weights, about 1e-5 with LoRA) or raise beta (0.1 to 0.5); check the samples "
                         "for degenerate answers"),
    "pref_stuck": ("the model cannot tell chosen from rejected: check that the pairs really differ (llm-cockpit "
                   "data check shows them) and that the reference is not the policy itself; a higher lr helps "
                   "only once the data is right"),
    "pref_chosen_falling": ("DPO is lowering the good answers too: lower the learning rate, raise beta, or start "
                            "from a model trained on the chosen answers first (an sft run, then model=RUN)"),
}
