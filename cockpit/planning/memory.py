"""Peak training memory of one micro-batch, as a breakdown, before anything is downloaded.

``estimate_memory(spec, method, batch, seq, ...)`` returns a :class:`MemoryEstimate` whose
``breakdown`` sums to ``total_bytes``: what is alive at the moment of the peak.

Notation: P parameters, L layers, h hidden, q = heads x head_dim, kv = kv_heads x head_dim,
I intermediate, H heads, V vocabulary, b micro-batch, s sequence length, r LoRA rank;
``a`` bytes per activation element (4 on the CPU, where our trainer runs fp32; 2 on a GPU
under bf16/fp16 autocast).

Weights (what the trainer loads; ``cockpit/training/recipe.py``)
  full   CPU: fp32, 4P. GPU: fp32 master weights under 16-bit autocast (4P), plus the 16-bit
         copies autocast makes of every matmul weight and keeps for the backward pass (2 B
         each). The usual "16-18 bytes per parameter" (ZeRO paper, Rajbhandari et al. 2020,
         sec. 3.1: 2+2+12 for mixed-precision Adam).
  lora   the frozen base at its training dtype: 4P on the CPU, 2P (bf16/fp16) on a GPU.
  int8   bitsandbytes LLM.int8 (Dettmers et al. 2022): 1 byte per projection weight plus an
         fp32 scale per output row; everything else (embeddings, output layer, norms) stays
         fp32 on the CPU and 16-bit on a GPU.
  qlora  NF4 with double quantization (Dettmers et al. 2023, sec. 3): 4 bits per weight, one
         8-bit absmax per 64 weights and one fp32 constant per 256 absmax values:
         0.5 + 1/64 + 4/(64*256) = 0.5159 bytes per projection weight. The rest as for int8.
  The QLoRA reference code keeps embeddings and the output layer in 16-bit after
  ``prepare_model_for_kbit_training`` (which would cast them to fp32); we assume that.

Trainable-parameter states (AdamW, Loshchilov & Hutter 2019; torch keeps m and v in the
parameter's dtype): LoRA adapters r*(d_in+d_out) per target matrix (Hu et al. 2021) are
fp32 (PEFT upcasts them): weight 4 + gradient 4 + m 4 + v 4 = 16 B per trainable parameter.
Full fine-tuning: gradient 4 + m 4 + v 4 on top of the fp32 weights. ``adamw_8bit`` keeps m
and v in 1 byte each; ``sgd`` keeps none.

Activations (what autograd saves for the backward pass). Korthikanti et al. 2022
("Reducing Activation Recomputation in Large Transformer Models", sec. 4.1) count
sbh(34 + 5as/h) bytes for a GPT layer in 16-bit; its 5as/h term (the attention matrix) is
gone with SDPA's fused kernels, which save only q, k, v, the output and a logsumexp
(FlashAttention, Dao et al. 2022). A Llama layer differs (RMSNorm, SwiGLU of width I,
grouped-query attention, frozen weights under LoRA), so we count it ourselves from what
autograd saves in transformers' Llama code (checked against ``saved_tensors_hooks`` in
``tests/unit/test_memory.py``), per token and layer:

  RMSNorm (2 per layer; 4 in Gemma 2)   4h (its fp32 input) + 4 (rsqrt) [+ a*h normalized,
                                        only when the norm weight trains]
  projection inputs                     full/int8: a*h (q,k,v share it) + a*q (o) + a*h
                                        (gate, up share it) + a*I (down); frozen 16/32-bit
                                        and 4-bit bases save none
  LoRA, per target with d_in            dropout > 0: (a + 1)*d_in (its own dropped-out copy
                                        and a bool mask); dropout 0: the shared input; plus
                                        a*r (the rank-r middle)
  attention (SDPA)                      a*q (rotated q) + 2a*kv (k, v; 2a*q when a padding
                                        mask forces repeat_kv) + a*q (output) + 4H (lse)
                                        + a*s (the padding mask, materialized per layer)
  attention (Gemma 2, eager, softcap)   3a*q + a*H*s (tanh) + 4H*s (fp32 softmax)
                                        [+ a*H*s 16-bit copy of the probabilities]
  SwiGLU / GeGLU MLP                    3a*I (gate output, activation output, up output)

so a full fine-tune of a Llama layer in fp32 saves ~(24h + 12q + 8kv + 16I) bytes per
token, and LoRA (dropout 0.05, all 7 projections) ~(33h + 17q + 8kv + 17I). With gradient
checkpointing (Chen et al. 2016) only each layer's input (a*h per token) stays, and one
layer's activations are rebuilt during the backward pass.

Logits: the trainer's loss (``cockpit.training.learned_loss``, the default) applies the output layer
only at the learned positions, ``chunk_rows`` at a time, and computes each chunk's gradient
at once: one chunk of fp32 logits (64 MiB on the CPU, 512 MiB on a GPU at most, plus its
16-bit copy on a GPU), the selected hidden states and their gradient (2 x 4 x b*s*h), and for
full fine-tuning the output layer's fp32 gradient, all alive at the end of the forward pass.
transformers' own loss (``learned_loss=false``, and Gemma 2, whose logits are soft-capped):
the (b, s, V) logits are upcast to fp32 (``transformers.loss.ForCausalLMLoss``);
cross-entropy saves the fp32 log-softmax; at the start of the backward pass the log-softmax
output, the NLL gradient and the log-softmax gradient are alive together: 12 bytes x b*s*V.
Gemma 2's logit soft-capping saves one more a x b*s*V (the tanh output).

Peak: the largest of (1) the start of the backward pass (weights + optimizer states +
all activations + logits), (2) for full fine-tuning, right after the output layer's
backward (its weight gradient appears while all activations are still alive), (3) the
end of the backward pass / the optimizer step (weights + gradients + optimizer states;
the activations are gone by then), (4) with checkpointing, the recomputation of one layer.

Preference stages (TRL's DPOTrainer, KTOTrainer). DPO and ORPO concatenate each pair's
chosen and rejected answer into one forward pass: the activations of 2b sequences of length
s. KTO trains on b single answers (its KL estimate is a gradient-free pass). The reference
log-probabilities come from a gradient-free forward pass before the policy's, whose
activations are freed layer by layer (below the policy's peak, not counted). What the
reference holds: ``full`` a second fp32 copy of the weights (TRL loads it in the policy's
dtype); a new adapter, nothing (the same weights with the adapters off); a continued
adapter, a frozen fp32 copy of it. TRL switches dropout off in both (its
``disable_dropout``, on by default), so ``lora_dropout`` saves nothing. TRL's fused output layer (``trl.kernels.chunked_logprob``)
scores the positions in tiles of at most 4096 rows x 32768 vocabulary columns: on a GPU one
tile in the compute dtype (Triton folds it in place); on a CPU its torch fallback makes the
backward pass's tile and eight fp32 temporaries of the tile's size alive at once (counted in
TRL 1.16's ``_backward_tile``: the upcast, the scaled logits, log p, p, the gradient and the
three terms of its update), 9 x 4 bytes per tile element, which dominates the CPU peak of a
small model (``docs/calibration.md``). Both keep the fp32 gradient of the hidden states.

Runtime overhead. CPU (measured, ``docs/calibration.md``): thread pools, kernel code paged
in and small allocations cost ~25 MiB above the post-import baseline plus ~1 MiB per decoder
layer (``CPU_BASE_OVERHEAD``, ``CPU_LAYER_OVERHEAD``; two constants fitted to the standard
table, checked on held-out configurations), provided the process runs with
:func:`cockpit.planning.hardware.tune_cpu_allocator`. With glibc's default dynamic mmap threshold,
freed activation memory stays resident and the peak RSS lands 10-130% above this estimate,
in no predictable proportion (the same table shows it). GPU (not measured here: no GPU
was available): the CUDA context and cuBLAS/cuDNN workspaces (``CUDA_CONTEXT_BYTES``;
DESIGN.md: ~0.5-1.5 GB) plus ``CUDA_FRAGMENTATION`` of the dynamic memory for the
caching allocator.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from cockpit.models.catalog import ModelSpec
from cockpit.config import LORA_ALL_LINEAR, METHODS
from cockpit.errors import CockpitError
from cockpit.training.learned_loss import chunk_rows

OPTIMIZERS = ("adamw", "adamw_8bit", "sgd")
DEVICES = ("cpu", "cuda")
ALL_LINEAR = LORA_ALL_LINEAR

NF4_BYTES_PER_PARAM = 0.5 + 1 / 64 + 4 / (64 * 256)  # 4-bit codes + 8-bit absmax + fp32 second level
CPU_BASE_OVERHEAD = 24 * 2**20  # fitted: docs/calibration.md
CPU_LAYER_OVERHEAD = 1 * 2**20  # per decoder layer (module objects, autograd nodes, kernel caches)
CUDA_CONTEXT_BYTES = 800 * 2**20
CUDA_FRAGMENTATION = 0.10
GIB = 2**30

BREAKDOWN_KEYS = ("weights", "reference", "trainable_states", "activations", "logits", "overhead")
STAGES = ("sft", "dpo", "orpo", "kto")
PAIRED_STAGES = ("dpo", "orpo")


@dataclass(frozen=True)
class MemoryEstimate:
    """Peak memory of a training step; ``breakdown`` (name -> bytes) sums to ``total_bytes``."""

    total_bytes: int
    breakdown: dict[str, int]
    details: dict[str, int]  # every component, whether alive at the peak or not
    peak_phase: str  # backward start | output-layer backward | optimizer step | recomputation
    params: int
    trainable_params: int
    method: str
    device: str
    batch: int
    seq: int
    lora_r: int
    grad_ckpt: bool
    notes: list[str] = field(default_factory=list)

    @property
    def total_gib(self) -> float:
        return self.total_bytes / GIB

    def to_dict(self) -> dict[str, Any]:
        return {
            "total_bytes": self.total_bytes, "breakdown": dict(self.breakdown), "details": dict(self.details),
            "peak_phase": self.peak_phase, "params": self.params, "trainable_params": self.trainable_params,
            "method": self.method, "device": self.device, "batch": self.batch, "seq": self.seq,
            "lora_r": self.lora_r, "grad_ckpt": self.grad_ckpt, "notes": list(self.notes),
        }


def lora_params(spec: ModelSpec, lora_r: int, targets: Sequence[str] = ALL_LINEAR) -> int:
    """Trainable LoRA parameters: r x (d_in + d_out) per target matrix per layer."""
    shapes = spec.linear_shapes()
    return spec.layers * sum(lora_r * (shapes[t][0] + shapes[t][1]) for t in targets if t in shapes)


def weight_bytes(spec: ModelSpec, method: str, device: str) -> int:
    """Bytes of the model weights as the trainer holds them (see the module docstring)."""
    other = spec.other_params
    sixteen = 4 if device == "cpu" else 2
    if method == "full":
        return 4 * spec.params
    if method == "lora":
        return sixteen * spec.params
    rows = spec.layers * sum(out for _, out in spec.linear_shapes().values())
    if method == "int8":
        return spec.linear_params + 4 * rows + sixteen * other
    return int(NF4_BYTES_PER_PARAM * spec.linear_params) + sixteen * other


def layer_activation_bytes(spec: ModelSpec, method: str, tokens: int, seq: int, *, a: int, padded: bool,
                           targets: Sequence[str], lora_r: int, dropout: float, device: str) -> int:
    """Bytes autograd saves in one decoder layer for ``tokens`` = b*s tokens (module docstring)."""
    h, q, kv, inter, heads = spec.hidden, spec.q_dim, spec.kv_dim, spec.intermediate, spec.heads
    full = method == "full"
    eager = spec.arch == "gemma2"
    mask_bytes = a if device == "cpu" else 1  # CPU dropout keeps its mask in the input dtype, CUDA as bool
    cast_inputs = device == "cuda" and a == 2 and not full  # PEFT casts 16-bit inputs to fp32 adapters
    per_token = spec.norms_per_layer * (4 * h + 4 + (a * h if full else 0))
    # Projection inputs: (width, the projections that read it). SDPA's output tensor already
    # is o_proj's input (same storage), so o_proj's input costs nothing extra there.
    groups = ((h, ("q_proj", "k_proj", "v_proj")), (q, ("o_proj",)), (h, ("gate_proj", "up_proj")),
              (inter, ("down_proj",)))
    for width, readers in groups:
        already = readers == ("o_proj",) and not eager
        base_saves = full or method == "int8"  # bnb's 8-bit matmul keeps its input (ctx.A)
        lora = [] if full else [t for t in readers if t in targets]
        if base_saves and not already:
            per_token += a * width
        if lora and dropout > 0:
            per_token += len(lora) * (a + mask_bytes) * width
        elif lora and cast_inputs:
            per_token += len(lora) * a * width
        elif lora and not base_saves and not already:
            per_token += a * width
        per_token += len(lora) * a * lora_r
    if eager:  # Gemma 2: eager attention with soft-capped scores keeps s x s matrices
        per_token += 3 * a * q + (a + 4) * heads * seq + (a * heads * seq if a != 4 else 0)
    else:
        repeated = padded and spec.kv_heads < spec.heads
        per_token += a * q + 2 * a * (q if repeated else kv) + a * q + 4 * heads + (a * seq if padded else 0)
    per_token += 3 * a * inter
    return per_token * tokens


TRL_TOKEN_TILE, TRL_VOCAB_TILE = 4096, 32768  # trl.kernels.chunked_logprob (TRL 1.16)
TRL_CPU_TILE_BUFFERS = 9


def trl_head_bytes(spec: ModelSpec, tokens: int, a: int, device: str) -> int:
    """TRL's fused output layer at the start of the backward pass (module docstring,
    "Preference stages"): its tile buffers and the fp32 gradient of the hidden states."""
    tile = min(tokens, TRL_TOKEN_TILE) * min(spec.vocab, TRL_VOCAB_TILE)
    buffers = tile * 4 * TRL_CPU_TILE_BUFFERS if device == "cpu" else tile * a
    return buffers + 4 * tokens * spec.hidden


def estimate_memory(
    spec: ModelSpec,
    method: str = "lora",
    batch: int = 4,
    seq: int = 512,
    lora_r: int = 16,
    targets: Sequence[str] | None = None,
    grad_ckpt: bool = False,
    device: str = "cpu",
    precision: str = "auto",
    optimizer: str = "adamw",
    lora_dropout: float = 0.05,
    learned_loss: bool = True,
    stage: str = "sft",
    continued: bool = False,
) -> MemoryEstimate:
    """Peak memory of training ``spec`` with ``method`` on ``device`` (cpu | cuda).

    ``precision`` only matters on a GPU (fp32, or 16-bit for auto/bf16/fp16); the CPU trains
    in fp32 whatever is asked, like the trainer. ``learned_loss``: the trainer's chunked loss
    on the learned positions (its default; never for Gemma 2's soft-capped logits), else
    transformers' loss over full logits.

    ``stage``: a preference stage through TRL (module docstring, "Preference stages"):
    dpo/orpo put the chosen and the rejected answer of each pair through one forward pass
    (2 x ``batch`` rows); the reference of ``full`` is a second frozen copy of the weights,
    that of a ``continued`` adapter a frozen copy of it, that of a new adapter the same
    weights with the adapters off (nothing more). TRL's fused output layer scores the
    positions in tiles (:func:`trl_head_bytes`).
    """
    _validate(spec, method, batch, seq, lora_r, device, optimizer, lora_dropout)
    if stage not in STAGES:
        raise CockpitError(f"unknown stage {stage!r}", f"allowed: {' | '.join(STAGES)}")
    pairs = batch
    if stage != "sft":
        learned_loss = True
        lora_dropout = 0.0  # TRL's preference trainers switch dropout off (disable_dropout=True)
        if stage in PAIRED_STAGES:
            batch = 2 * batch
    targets = tuple(ALL_LINEAR if targets is None else targets)
    unknown = [t for t in targets if t not in ALL_LINEAR]
    if unknown and method != "full":
        raise CockpitError(f"LoRA targets {unknown} are not projections of a decoder layer",
                           f"choose among {', '.join(ALL_LINEAR)}")
    a = 4 if device == "cpu" or precision == "fp32" else 2
    tokens = batch * seq
    padded = batch > 1  # one example per batch needs no padding, hence no attention mask
    notes: list[str] = []

    weights = weight_bytes(spec, method, device)
    full = method == "full"
    trainable = spec.params if full else lora_params(spec, lora_r, targets)
    state_bytes = {"adamw": 8, "adamw_8bit": 2, "sgd": 0}[optimizer]
    grads = 4 * trainable
    opt_states = state_bytes * trainable
    adapter_weights = 0 if full else 4 * trainable
    autocast_copies = 0
    if full and a == 2:
        # autograd keeps the 16-bit copy of every weight a matmul used; checkpointed layers
        # drop theirs and make them again when recomputed, only the output layer's stays
        head = spec.vocab * spec.hidden
        autocast_copies = 2 * (head if grad_ckpt else spec.linear_params + head)
        notes.append("full fine-tuning keeps fp32 master weights under 16-bit autocast")

    layer = layer_activation_bytes(spec, method, tokens, seq, a=a, padded=padded, targets=targets,
                                   lora_r=lora_r, dropout=lora_dropout, device=device)
    final = tokens * (4 * spec.hidden + 4 + (2 * a * spec.hidden if full else 0))
    ckpt_inputs = tokens * a * spec.hidden * (spec.layers + 1)
    acts_forward = ckpt_inputs + final if grad_ckpt else spec.layers * layer + final
    learned_loss = learned_loss and spec.arch != "gemma2"
    head_grad = 4 * spec.vocab * spec.hidden if full else 0
    if stage != "sft":
        logits = trl_head_bytes(spec, tokens, a, device) + head_grad
    elif learned_loss:
        # cockpit.training.learned_loss: one chunk's fp32 logits (plus their 16-bit copy for a 16-bit
        # head), the selected hidden states and their gradient; a trained head's fp32 gradient
        # is made in the same pass. Every position counts as learned (the worst case).
        rows = min(tokens, chunk_rows(spec.vocab, device))
        logits = rows * spec.vocab * (4 + (2 if a == 2 else 0)) + 2 * 4 * tokens * spec.hidden + head_grad
    else:
        logits = tokens * spec.vocab * (12 + (a if spec.arch == "gemma2" else 0))

    persistent = weights + adapter_weights + opt_states
    # Gradients do not exist yet at the start of the backward pass; they build up while the
    # activations are freed, and all of them are alive at the optimizer step.
    phases = {"backward start": acts_forward + logits + autocast_copies}
    if full and not learned_loss:
        phases["output-layer backward"] = acts_forward + tokens * spec.vocab * (4 + a) + head_grad + autocast_copies
    # A tied matrix gets a second gradient from the embedding: a dense V x h gradient plus
    # its sum with the output layer's (measured: two V x h fp32 buffers at once).
    phases["optimizer step"] = grads + (8 * spec.vocab * spec.hidden if full and spec.tied else 0)
    if grad_ckpt:
        flowing = 2 * a * spec.hidden * tokens  # the gradient of the hidden states, twice
        # while the first layer is recomputed, every gradient but its own and the embedding's exists
        layer_params = spec.linear_params // spec.layers
        done = grads - (4 * layer_params + (0 if spec.tied else 4 * spec.vocab * spec.hidden) if full else 0)
        phases["recomputation"] = ckpt_inputs + final + layer + flowing + done + autocast_copies
    peak_phase = max(phases, key=lambda k: phases[k])
    dynamic = phases[peak_phase]

    at_peak_acts = {"backward start": acts_forward, "output-layer backward": acts_forward,
                    "optimizer step": 0, "recomputation": ckpt_inputs + final + layer + (
                        2 * a * spec.hidden * tokens if grad_ckpt else 0)}[peak_phase]
    # (a trained head's gradient made by the learned loss counts as a trainable state)
    at_peak_logits = {"backward start": logits - (head_grad if learned_loss else 0),
                      "output-layer backward": tokens * spec.vocab * (4 + a)}.get(peak_phase, 0)
    copies_at_peak = autocast_copies * (peak_phase != "optimizer step")
    states = dynamic - at_peak_acts - at_peak_logits - copies_at_peak
    if device == "cpu":
        overhead = CPU_BASE_OVERHEAD + CPU_LAYER_OVERHEAD * spec.layers
    else:
        overhead = CUDA_CONTEXT_BYTES + int(CUDA_FRAGMENTATION * (at_peak_acts + at_peak_logits))
    reference = 0
    if stage != "sft" and stage != "orpo":
        reference = weights if full else (adapter_weights if continued else 0)
        what = ("a frozen copy of the weights" if full else "a frozen copy of the adapter" if continued
                else "the adapters switched off: no second copy")
        notes.append(f"{stage}: {pairs} pair{'s' if pairs > 1 else ''} = {batch} sequences per forward pass; "
                     f"reference = {what}" if stage in PAIRED_STAGES else f"{stage}: reference = {what}")
    breakdown = {
        "weights": weights + copies_at_peak,
        "reference": reference,
        "trainable_states": adapter_weights + opt_states + states,
        "activations": at_peak_acts,
        "logits": at_peak_logits,
        "overhead": overhead,
    }
    total = sum(breakdown.values())
    details = {
        "base_weights": weights, "autocast_copies": autocast_copies, "adapter_weights": adapter_weights,
        "gradients": grads, "optimizer_states": opt_states, "activations_per_layer": layer,
        "activations_all_layers": spec.layers * layer + final, "checkpointed_inputs": ckpt_inputs if grad_ckpt else 0,
        "logits_peak": logits, "overhead": overhead, "persistent": persistent + reference,
    }
    if device == "cpu" and precision in ("fp16", "bf16"):
        notes.append("the CPU trains in fp32 whatever precision is asked")
    if peak_phase == "optimizer step":
        notes.append("the peak is the optimizer step: gradients and AdamW states outweigh the activations")
    return MemoryEstimate(
        total_bytes=int(total), breakdown={k: int(v) for k, v in breakdown.items()}, details=details,
        peak_phase=peak_phase, params=spec.params, trainable_params=trainable, method=method, device=device,
        batch=pairs, seq=seq, lora_r=lora_r, grad_ckpt=grad_ckpt, notes=notes,
    )


def estimate_for_config(cfg: Any, device: str | None = None) -> dict[str, Any]:
    """The estimate for a :class:`cockpit.config.TrainConfig` as a dict (the ``run_started`` event).

    ``device`` defaults to where torch would train: CUDA when torch is already imported and
    sees a GPU (the trainer has imported it by then), else the CPU. Never touches the network.
    """
    import sys

    from cockpit.models.catalog import resolve_spec

    if device is None:
        torch = sys.modules.get("torch")
        device = "cuda" if torch is not None and torch.cuda.is_available() else "cpu"
    precision = {"fp32": "fp32", "fp16": "fp16", "bf16": "bf16"}.get(cfg.precision, "auto")
    est = estimate_memory(resolve_spec(cfg.model, network=False), cfg.method, cfg.batch_size, cfg.max_length,
                          cfg.lora_r, targets=[t for t in cfg.lora_target_modules if t in ALL_LINEAR] or None,
                          grad_ckpt=cfg.grad_ckpt, device=device, precision=precision,
                          lora_dropout=cfg.lora_dropout, learned_loss=cfg.learned_loss,
                          stage=getattr(cfg, "stage", "sft"),
                          continued=getattr(cfg, "from_run", "") == "continue" and bool(getattr(cfg, "parent_run", None)))
    return est.to_dict()


def _validate(spec: ModelSpec, method: str, batch: int, seq: int, lora_r: int, device: str, optimizer: str,
              dropout: float) -> None:
    if method not in METHODS:
        raise CockpitError(f"unknown method {method!r}", f"choose one of {', '.join(METHODS)}")
    if device not in DEVICES:
        raise CockpitError(f"unknown device {device!r}", "cpu or cuda")
    if optimizer not in OPTIMIZERS:
        raise CockpitError(f"unknown optimizer {optimizer!r}", f"choose one of {', '.join(OPTIMIZERS)}")
    for name, value in (("batch size", batch), ("sequence length", seq), ("LoRA rank", lora_r)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise CockpitError(f"{name} must be a positive integer, got {value!r}", "use 1 or more")
    if not 0 <= dropout < 1:
        raise CockpitError(f"LoRA dropout must be in [0, 1), got {dropout}", "0.05 is usual")
    if spec.params < 1 or spec.layers < 1:
        raise CockpitError(f"model {spec.id} has no parameters", "check the model")


def fmt_params(n: int) -> str:
    """``134_515_008`` -> ``'134.5M'``, ``8_030_261_248`` -> ``'8.03B'``."""
    return f"{n / 1e9:.2f}B" if n >= 1e9 else f"{n / 1e6:.1f}M"
