"""lm-eval model `sinkprune_dlm`: any sinkprune checkpoint (LLaDA, Dream, tiny, pruned) as an LM.

Masked diffusion models score continuations with the Monte Carlo estimator and generate with
blockwise low-confidence remasking (method.md §7); a causal (AR) checkpoint gets exact
next-token log-likelihoods and greedy generation instead. Single process: no accelerate, no
data parallelism.

model_args: pretrained=PATH, mc_num, batch_size, cfg, gen_length, steps, block_length,
temperature, seed, device (auto: cuda if available else cpu), dtype (auto|float32|bfloat16|
float16), max_length (default: the checkpoint's), add_bos (default: whatever the tokenizer does),
estimator (a dict of `likelihood.Estimator` options; from Python or the workflow, not the CLI).
With every estimator option off (the default) each request runs `mc_loglikelihood` on its own,
as before; otherwise all requests go through `likelihood.estimate`, which groups the answer
choices of one item by `Instance.task_name` and `Instance.doc_id`.
`is_greedy` is always False for diffusion models (the release's greedy check would cost
ℓ extra forwards per request; acc metrics do not use it).
"""

from __future__ import annotations

import logging
from typing import Any

import torch
from lm_eval.api.model import LM
from lm_eval.api.registry import register_model
from tqdm import tqdm

from .generate import ar_generate, check_gen_settings, cut_at_stops, diffusion_generate
from .likelihood import (
    Estimator,
    LLRequest,
    ar_loglikelihood,
    estimate,
    mc_loglikelihood,
    request_seed,
)

log = logging.getLogger(__name__)

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
ITEMS_PER_CALL = 1024  # items per `estimate` call (bounds the token ids held at once)


def resolve_device(device: str | None) -> torch.device:
    if device in (None, "", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if str(device).startswith("cuda") and not torch.cuda.is_available():
        # the lm-eval CLI sends device=cuda by default
        log.warning("device %s requested but CUDA is not available: using cpu", device)
        return torch.device("cpu")
    return torch.device(device)


def resolve_dtype(dtype: str | torch.dtype | None, device: torch.device) -> torch.dtype:
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype in (None, "", "auto"):
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    if dtype not in DTYPES:
        raise ValueError(
            f"model_args dtype: expected auto or one of {sorted(DTYPES)}, got {dtype!r}"
        )
    return DTYPES[dtype]


def load_tokenizer(path: str):
    """The tokenizer saved next to the checkpoint (AutoTokenizer, else PreTrainedTokenizerFast).

    The checkpoint's config.json is resolved by sinkprune's registered families, never by its
    `auto_map` (pruned folders carry one): no remote code, no prompt."""
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    import sinkprune.models  # noqa: F401  registers llada / Dream with AutoConfig

    try:
        return AutoTokenizer.from_pretrained(path, trust_remote_code=False)
    except (ValueError, OSError, KeyError) as err:
        log.info("AutoTokenizer failed for %s (%s); using PreTrainedTokenizerFast", path, err)
        return PreTrainedTokenizerFast.from_pretrained(path)


@register_model("sinkprune_dlm")
class SinkpruneDLM(LM):
    """lm-eval LM for sinkprune checkpoints; pass `pretrained=PATH`, or (tests) `adapter` +
    `tokenizer` objects, where the adapter has `mask_token_id`, `causal`, `mdm_logits` (and
    `logits`, raw next-token logits, when causal)."""

    def __init__(
        self,
        pretrained: str | None = None,
        mc_num: int = 128,
        batch_size: int | str = 32,
        cfg: float = 0.0,
        gen_length: int = 256,
        steps: int = 256,
        block_length: int = 32,
        temperature: float = 0.0,
        seed: int = 0,
        estimator: dict | Estimator | None = None,
        device: str | None = "auto",
        dtype: str | None = "auto",
        max_length: int | None = None,
        add_bos: bool | None = None,
        adapter: Any = None,
        tokenizer: Any = None,
        max_batch_size: int | None = None,  # accepted from the lm-eval CLI, unused
        **unused: Any,
    ) -> None:
        super().__init__()
        if unused:
            log.warning("sinkprune_dlm: ignoring unknown model_args %s", sorted(unused))
        self._device = resolve_device(device)
        self.pretrained = pretrained
        if adapter is None:
            if pretrained is None:
                raise ValueError(
                    "sinkprune_dlm needs model_args pretrained=PATH (a checkpoint dir)"
                )
            from sinkprune.models import get_adapter, load_model

            model = load_model(pretrained, self._device, resolve_dtype(dtype, self._device))
            adapter = get_adapter(model)
        self.adapter = adapter
        self.tokenizer = tokenizer if tokenizer is not None else load_tokenizer(pretrained)
        self.max_length = int(max_length or getattr(adapter, "max_length", None) or 4096)
        self.mask_id = int(adapter.mask_token_id)
        self.causal = bool(getattr(adapter, "causal", False))
        self.add_bos = self._detect_bos() if add_bos is None else bool(add_bos)
        self.set_settings(
            mc_num=mc_num,
            batch_size=batch_size,
            cfg=cfg,
            gen_length=gen_length,
            steps=steps,
            block_length=block_length,
            temperature=temperature,
            seed=seed,
            estimator=estimator,
        )

    @classmethod
    def create_from_arg_obj(cls, arg_dict: dict, additional_config: dict | None = None):
        """model_args win over the CLI's --batch_size/--device (the CLI always sends a
        batch_size, default 1; give batch_size in model_args to set the MC batch)."""
        extra = {k: v for k, v in (additional_config or {}).items() if v is not None}
        return cls(**(extra | dict(arg_dict)))

    @classmethod
    def create_from_arg_string(cls, arg_string: str, additional_config: dict | None = None):
        from lm_eval.utils import simple_parse_args_string

        return cls.create_from_arg_obj(simple_parse_args_string(arg_string), additional_config)

    # ------------------------------------------------------------ settings ---
    def set_settings(self, **kw: Any) -> None:
        """Change per-task settings on a loaded model (one load, several tasks)."""
        if "batch_size" in kw:
            bs = kw["batch_size"]
            if isinstance(bs, str) and bs.startswith("auto"):
                log.warning("sinkprune_dlm: batch_size=%s unsupported; using 32", bs)
                bs = 32
            kw["batch_size"] = int(bs)
        casts = {"mc_num": int, "cfg": float, "gen_length": int, "steps": int}
        casts |= {"estimator": Estimator.from_dict}
        casts |= {"block_length": int, "temperature": float, "seed": int, "batch_size": int}
        for key, value in kw.items():
            if key not in casts:
                raise ValueError(f"sinkprune_dlm: unknown setting {key!r}")
            setattr(self, key, casts[key](value))
        if self.mc_num < 1 or self.batch_size < 1:
            raise ValueError("sinkprune_dlm: mc_num and batch_size must be >= 1")

    def get_model_info(self) -> dict[str, Any]:
        return {
            "model": "sinkprune_dlm",
            "pretrained": self.pretrained,
            "causal": self.causal,
            "mask_token_id": self.mask_id,
            "max_length": self.max_length,
            "add_bos": self.add_bos,
            "mc_num": self.mc_num,
            "batch_size": self.batch_size,
            "cfg": self.cfg,
            "gen_length": self.gen_length,
            "steps": self.steps,
            "block_length": self.block_length,
            "temperature": self.temperature,
            "seed": self.seed,
            "estimator": self.estimator.as_dict(),
            "device": str(self._device),
        }

    @property
    def tokenizer_name(self) -> str:
        return str(self.pretrained or type(self.tokenizer).__name__)

    # ------------------------------------------------------------ encoding ---
    def _detect_bos(self) -> bool:
        bos = getattr(self.tokenizer, "bos_token_id", None)
        if bos is None:
            return False
        ids = self.tokenizer("a")["input_ids"]
        return len(ids) > 0 and ids[0] == bos

    def _encode(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def _prefix(self) -> list[int]:
        return [int(self.tokenizer.bos_token_id)] if self.add_bos else []

    def encode_pair(self, context: str, continuation: str) -> tuple[list[int], list[int]]:
        """Context and continuation ids, split as lm-eval does (trailing context spaces move to
        the continuation; the continuation is whole-minus-context), then left-truncated to
        max_length (context first)."""
        n_spaces = len(context) - len(context.rstrip())
        if n_spaces:
            continuation = context[-n_spaces:] + continuation
            context = context[:-n_spaces]
        whole = self._encode(context + continuation)
        ctx = self._encode(context) if context else []
        cont = whole[len(ctx) :]  # lm-eval's and the release's rule, also where tokens merge
        ctx = self._prefix() + ctx
        if self.causal and not ctx:
            ctx = [int(self.tokenizer.eos_token_id or 0)]
        return self._truncate(ctx, cont)

    def answer_text(self, ids: list[int], until: list[str]) -> str:
        """The generated answer as the release's harness returns it: every generated token
        decoded (special tokens included, nothing cut at EOS), cut at each `until` string in
        turn, then the special tokens dropped by re-encoding and decoding without them."""
        text = cut_at_stops(self.tokenizer.decode(ids, skip_special_tokens=False), until)
        return self.tokenizer.decode(self.tokenizer(text)["input_ids"], skip_special_tokens=True)

    def _truncate(self, ctx: list[int], cont: list[int]) -> tuple[list[int], list[int]]:
        over = len(ctx) + len(cont) - self.max_length
        if over > 0:
            log.warning(
                "request of %d tokens left-truncated to %d", len(ctx) + len(cont), self.max_length
            )
            if over <= len(ctx) - (1 if self.causal else 0):
                ctx = ctx[over:]
            else:
                keep_ctx = 1 if self.causal else 0
                ctx = ctx[len(ctx) - keep_ctx :]
                cont = cont[len(cont) - (self.max_length - keep_ctx) :]
        return ctx, cont

    def _logits(self, ids: torch.Tensor) -> torch.Tensor:
        """Diffusion: [:, j] predicts token j; causal: the raw logits ([:, i] predicts i+1)."""
        if self.causal:
            return self.adapter.logits(ids.to(self._device))
        return self.adapter.mdm_logits(ids.to(self._device))

    # ---------------------------------------------------------- lm-eval API ---
    def loglikelihood(self, requests, disable_tqdm: bool = False) -> list[tuple[float, bool]]:
        if not self.causal and not self.estimator.standard:
            return self._estimated_loglikelihood(requests, disable_tqdm)
        out = []
        for req in tqdm(requests, desc="loglikelihood", disable=disable_tqdm):
            context, continuation = req.args
            ctx, cont = self.encode_pair(context, continuation)
            if self.causal:
                ll, greedy = ar_loglikelihood(self._logits, ctx, cont, self._device)
            else:
                ll = mc_loglikelihood(
                    self._logits,
                    ctx,
                    cont,
                    self.mask_id,
                    mc_num=self.mc_num,
                    batch_size=self.batch_size,
                    cfg=self.cfg,
                    seed=self.seed,
                    device=self._device,
                )
                greedy = False
            out.append((ll, greedy))
            self.cache_hook.add_partial("loglikelihood", (context, continuation), (ll, greedy))
        return out

    def _item_of(self, req) -> tuple[str | None, int] | None:
        """(task_name, doc_id): the item whose answer choices are compared (CRN, stopping)."""
        if not (self.estimator.crn or self.estimator.stopping):
            return None
        doc_id = getattr(req, "doc_id", None)
        if doc_id is None:
            raise ValueError(
                "sinkprune_dlm: evaluation.estimator crn/stopping group the answer choices of one "
                f"item by Instance.doc_id, but request {req.args!r} has none"
            )
        return (getattr(req, "task_name", None), int(doc_id))

    def _estimated_loglikelihood(self, requests, disable_tqdm: bool) -> list[tuple[float, bool]]:
        """All requests through `likelihood.estimate`, ITEMS_PER_CALL items at a time (token ids
        of a whole task at once would not fit in host memory for MMLU-sized tasks; the results
        do not depend on the chunking)."""
        groups: dict = {}
        for i, req in enumerate(requests):
            key = self._item_of(req)
            groups.setdefault(i if key is None else key, []).append(i)
        items = list(groups.values())
        results: list = [None] * len(requests)
        bar = tqdm(total=len(requests), desc="loglikelihood", disable=disable_tqdm)
        for start in range(0, len(items), ITEMS_PER_CALL):
            index = [i for item in items[start : start + ITEMS_PER_CALL] for i in item]
            batch = []
            for i in index:
                context, continuation = requests[i].args
                ctx, cont = self.encode_pair(context, continuation)
                # lm-eval's acc_norm divides by the choice's characters (without the delimiter)
                norm = float(max(1, len(continuation.lstrip())))
                batch.append(LLRequest(tuple(ctx), tuple(cont), self._item_of(requests[i]), norm))
            out = estimate(
                batch,
                self._logits,
                self.mask_id,
                self.estimator,
                mc_num=self.mc_num,
                batch_size=self.batch_size,
                cfg=self.cfg,
                seed=self.seed,
                device=self._device,
            )
            for i, res, req in zip(index, out, batch, strict=True):
                results[i] = (res, 2 if self.cfg > 0 and req.context else 1)
            bar.update(len(index))
        bar.close()
        forwards = sum(r.forwards for r, _ in results)
        standard = sum(self.mc_num * g for _, g in results)
        log.info(
            "loglikelihood: %d requests, %d forwards (%.3f of the standard protocol's %d), "
            "%d exact; estimator %s",
            len(requests), forwards, forwards / max(1, standard), standard,
            sum(r.exact for r, _ in results), self.estimator.as_dict(),
        )  # fmt: skip
        out = []
        for req, (res, _) in zip(requests, results, strict=True):
            out.append((res.ll, False))
            self.cache_hook.add_partial("loglikelihood", req.args, (res.ll, False))
        return out

    def loglikelihood_rolling(self, requests, disable_tqdm: bool = False) -> list[float]:
        raise NotImplementedError(
            "sinkprune_dlm does not implement loglikelihood_rolling (perplexity tasks such as "
            "wikitext): a masked diffusion LM has no left-to-right factorisation. Use the "
            "workflow's heldout.json (masked-token CE and ELBO bits per token) instead."
        )

    def generate_until(self, requests, disable_tqdm: bool = False) -> list[str]:
        if not self.causal:
            check_gen_settings(self.gen_length, self.steps, self.block_length)
        out = []
        eos = getattr(self.tokenizer, "eos_token_id", None)
        stop_ids = {i for i in (eos, self.mask_id) if i is not None}  # end of AR generation
        for req in tqdm(requests, desc="generate_until", disable=disable_tqdm):
            context, gen_kwargs = req.args
            until = (gen_kwargs or {}).get("until", [])
            until = [until] if isinstance(until, str) else list(until or [])
            prompt = self._prefix() + self._encode(context)
            prompt = prompt[-max(1, self.max_length - self.gen_length) :]
            if self.causal:
                ids = ar_generate(
                    self._logits, prompt, self.gen_length, tuple(stop_ids), self._device
                )
            else:
                gen = torch.Generator().manual_seed(request_seed(self.seed, prompt))
                ids = diffusion_generate(
                    self._logits,
                    prompt,
                    self.mask_id,
                    gen_length=self.gen_length,
                    steps=self.steps,
                    block_length=self.block_length,
                    temperature=self.temperature,
                    cfg=self.cfg,
                    generator=gen,
                    device=self._device,
                )
            text = self.answer_text(ids, until)
            out.append(text)
            self.cache_hook.add_partial("generate_until", (context, gen_kwargs), text)
        return out
