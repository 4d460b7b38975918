"""
The plain GPT: nanoGPT's model, read top to bottom in the order data meets it.

References:
1) OpenAI's GPT-2 TensorFlow implementation:
   https://github.com/openai/gpt-2/blob/master/src/model.py
2) karpathy/nanoGPT model.py, of which this is a close relative. Differences: generation uses a KV cache
   (nanoGPT re-runs the whole context for every new token), the MLP uses GPT-2's tanh GELU so that
   from_pretrained matches Hugging Face's logits to 1e-5, estimate_mfu knows more than the A100, and
   forward(..., stats={}) returns diagnostics for the training loop (DAGGPT adds its DAG's).
"""

import functools
import inspect
import math
from dataclasses import dataclass

import torch
import torch.nn as nn
from torch.nn import functional as F


class LayerNorm(nn.Module):
    """LayerNorm with an optional bias (PyTorch's has no bias=False). x (..., ndim) -> (..., ndim)."""

    def __init__(self, ndim, bias):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(ndim))
        self.bias = nn.Parameter(torch.zeros(ndim)) if bias else None

    def forward(self, x):
        return F.layer_norm(x, self.weight.shape, self.weight, self.bias, 1e-5)


class KVCache:
    """Keys and values of every layer for incremental decoding, preallocated to max_len positions.

    k, v: (n_layer, B, n_head, max_len, head_dim). `pos` is the number of positions already stored; it
    advances once all layers have written the current chunk (the last layer calls `advance`).
    The cache knows nothing of tokens or sampling: GPT.generate drives it.
    """

    def __init__(self, n_layer, batch_size, n_head, max_len, head_dim, device, dtype):
        shape = (n_layer, batch_size, n_head, max_len, head_dim)
        self.k = torch.zeros(shape, device=device, dtype=dtype)
        self.v = torch.zeros(shape, device=device, dtype=dtype)
        self.max_len = max_len
        self.pos = 0

    def update(self, layer_idx, k, v):
        """Store k, v (B, nh, T, hs) at positions pos..pos+T-1; return all keys and values so far (B, nh, pos+T, hs)."""
        T = k.size(2)
        if self.pos + T > self.max_len:
            raise ValueError(f"KVCache overflow: {self.pos} + {T} positions > max_len {self.max_len}; "
                             f"make the cache larger or crop the context")
        self.k[layer_idx, :, :, self.pos:self.pos + T] = k
        self.v[layer_idx, :, :, self.pos:self.pos + T] = v
        return self.k[layer_idx, :, :, :self.pos + T], self.v[layer_idx, :, :, :self.pos + T]


class CausalSelfAttention(nn.Module):

    def __init__(self, config, layer_idx=0):
        super().__init__()
        assert config.n_embd % config.n_head == 0, "n_embd must be divisible by n_head"
        self.layer_idx = layer_idx
        # key, query, value projections for all heads, in one batch
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd, bias=config.bias)
        self.c_proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)
        self.attn_dropout = config.dropout
        self.resid_dropout = nn.Dropout(config.dropout)
        self.n_head = config.n_head
        self.n_embd = config.n_embd

    def forward(self, x, kv_cache=None):
        B, T, C = x.size()
        q, k, v = self.c_attn(x).split(self.n_embd, dim=2)
        q = q.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)  # (B, nh, T, hs)
        k = k.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        v = v.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        past = 0
        if kv_cache is not None:
            past = kv_cache.pos
            k, v = kv_cache.update(self.layer_idx, k, v)  # (B, nh, past+T, hs)
        dropout_p = self.attn_dropout if self.training else 0.0
        if past == 0:
            y = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p, is_causal=True)
        else:
            # new queries sit at positions past..past+T-1: each sees every cached key and the new ones up to itself
            mask = torch.ones(T, past + T, dtype=torch.bool, device=x.device).tril(diagonal=past)
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout_p)
        y = y.transpose(1, 2).contiguous().view(B, T, C)  # re-assemble all head outputs side by side
        return self.resid_dropout(self.c_proj(y))


class MLP(nn.Module):

    def __init__(self, config):
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd, bias=config.bias)
        self.gelu = nn.GELU(approximate='tanh')  # GPT-2's "gelu_new", so pretrained weights match exactly
        self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd, bias=config.bias)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x):
        return self.dropout(self.c_proj(self.gelu(self.c_fc(x))))


class Block(nn.Module):

    def __init__(self, config, layer_idx=0):
        super().__init__()
        self.ln_1 = LayerNorm(config.n_embd, bias=config.bias)
        self.attn = CausalSelfAttention(config, layer_idx)
        self.ln_2 = LayerNorm(config.n_embd, bias=config.bias)
        self.mlp = MLP(config)

    def forward(self, x, kv_cache=None):
        x = x + self.attn(self.ln_1(x), kv_cache)
        x = x + self.mlp(self.ln_2(x))
        return x


@dataclass
class GPTConfig:
    block_size: int = 1024
    vocab_size: int = 50304  # GPT-2 vocab_size of 50257, padded up to nearest multiple of 64 for efficiency
    n_layer: int = 12
    n_head: int = 12
    n_embd: int = 768
    dropout: float = 0.0
    bias: bool = True  # True: bias in Linears and LayerNorms, like GPT-2. False: a bit better and faster


# Peak dense bf16 tensor-core FLOP/s by GPU name fragment, for estimate_mfu (vendor data sheets)
PEAK_FLOPS = {'H200': 989e12, 'H100': 989e12, 'A100': 312e12, 'A10G': 125e12, 'L4': 121e12, 'V100': 125e12}


def device_peak_flops(device_type='cuda'):
    """Peak bf16 FLOP/s of the current CUDA device from PEAK_FLOPS, or None when unknown (CPU, other GPUs)."""
    if device_type != 'cuda' or not torch.cuda.is_available():
        return None
    name = torch.cuda.get_device_name()
    return next((flops for key, flops in PEAK_FLOPS.items() if key in name), None)


def inference(fn):
    """Decorator for a decoding loop that returns a tensor: run it under torch.inference_mode (no autograd
    bookkeeping at all: a GPT+DAG token is ~3,000 small ops; bench.py's 500 cached tokens on this project's CPU went
    from 189 to 250-257 tokens/s for GPT+DAG, NOTES.md, twenty-ninth session) and return its result as an ordinary
    tensor, cloned outside inference mode, so that a caller may still feed it to a model that trains (an inference
    tensor cannot be saved for backward)."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with torch.inference_mode():
            out = fn(*args, **kwargs)
        return out.clone()
    return wrapper


class GPT(nn.Module):
    config_class = GPTConfig  # the config a subclass's from_pretrained builds (DAGGPT sets DAGGPTConfig)

    def __init__(self, config):
        super().__init__()
        assert config.vocab_size is not None
        assert config.block_size is not None
        self.config = config

        self.transformer = nn.ModuleDict(dict(
            wte=nn.Embedding(config.vocab_size, config.n_embd),
            wpe=nn.Embedding(config.block_size, config.n_embd),
            drop=nn.Dropout(config.dropout),
            h=nn.ModuleList([Block(config, i) for i in range(config.n_layer)]),
            ln_f=LayerNorm(config.n_embd, bias=config.bias),
        ))
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        # weight tying (https://paperswithcode.com/method/weight-tying): the input embedding and the
        # output projection share one matrix, which saves parameters and trains better at this size
        self.transformer.wte.weight = self.lm_head.weight

        self.apply(self._init_weights)
        # apply special scaled init to the residual projections, per GPT-2 paper
        for pn, p in self.named_parameters():
            if pn.endswith('c_proj.weight'):
                torch.nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layer))

        # report number of parameters
        print(f"number of parameters: {self.get_num_params() / 1e6:.2f}M")

    def get_num_params(self, non_embedding=True):
        """Number of parameters. With non_embedding (the default) the position embeddings are left out; the
        token embeddings are counted, because weight tying makes them the lm_head weights too."""
        n_params = sum(p.numel() for p in self.parameters())
        if non_embedding:
            n_params -= self.transformer.wpe.weight.numel()
        return n_params

    def _init_weights(self, module):
        if isinstance(module, nn.Linear):
            torch.nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if module.bias is not None:
                torch.nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            torch.nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def hidden_states(self, idx, kv_cache=None):
        """Token ids idx (B, T) -> final-layer-normed hidden states h (B, T, n_embd).

        With a kv_cache, idx holds the positions after the cached ones and the cache is advanced by T."""
        device = idx.device
        b, t = idx.size()
        past = kv_cache.pos if kv_cache is not None else 0
        if past + t > self.config.block_size:
            raise ValueError(f"Cannot forward sequence of length {past + t}, block size is only "
                             f"{self.config.block_size}: crop the context to the last block_size tokens")
        pos = torch.arange(past, past + t, dtype=torch.long, device=device)  # shape (t)

        tok_emb = self.transformer.wte(idx)  # (b, t, n_embd)
        pos_emb = self.transformer.wpe(pos)  # (t, n_embd)
        x = self.transformer.drop(tok_emb + pos_emb)
        for block in self.transformer.h:
            x = block(x, kv_cache)
        if kv_cache is not None:
            kv_cache.pos += t
        return self.transformer.ln_f(x)

    def forward(self, idx, targets=None, kv_cache=None, stats=None):
        """idx (B, T) token ids, targets (B, T) or None -> (logits, loss).

        With targets: logits (B, T, vocab_size) and the mean cross-entropy (targets of -1 are ignored).
        Without: logits of the last position only, (B, 1, vocab_size), and loss None (inference-time
        optimization, as in nanoGPT). stats, a dict, receives the pass's diagnostics as 0-dim tensors:
        for the plain GPT 'lm_loss' (with targets)."""
        x = self.hidden_states(idx, kv_cache)
        if targets is not None:
            logits = self.lm_head(x)
            loss = F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1), ignore_index=-1)
            if stats is not None:
                stats['lm_loss'] = loss.detach()
        else:
            logits = self.lm_head(x[:, [-1], :])  # note: using list [-1] to preserve the time dim
            loss = None
        return logits, loss

    def crop_block_size(self, block_size):
        """Model surgery to a smaller block size, e.g. to run a pretrained GPT-2 (1024) with block_size 256."""
        if block_size > self.config.block_size:
            raise ValueError(f"can only crop to a smaller block_size, got {block_size} > {self.config.block_size}")
        self.config.block_size = block_size
        self.transformer.wpe.weight = nn.Parameter(self.transformer.wpe.weight[:block_size])

    @classmethod
    def from_pretrained(cls, model_type, override_args=None):
        """GPT-2 weights from Hugging Face: model_type is gpt2, gpt2-medium, gpt2-large, gpt2-xl (downloaded
        by `transformers`) or a local directory saved by `transformers` (GPT2LMHeadModel.save_pretrained).

        override_args may set `dropout` and, for subclasses such as DAGGPT, their own config fields; the
        architecture of the checkpoint fixes everything else. Raises ValueError for an unknown model_type and
        OSError (saying what to pass offline) when the weights cannot be loaded."""
        import os
        override_args = dict(override_args or {})
        from transformers import GPT2LMHeadModel
        hub_types = {'gpt2', 'gpt2-medium', 'gpt2-large', 'gpt2-xl'}
        if model_type not in hub_types and not os.path.isdir(model_type):
            raise ValueError(f"from_pretrained: {model_type!r} is neither one of {sorted(hub_types)} nor a "
                             f"local directory saved by transformers")
        print(f"loading weights from pretrained gpt: {model_type}")
        try:
            model_hf = GPT2LMHeadModel.from_pretrained(model_type)
        except OSError as e:  # no network, no cached copy, or a directory without the weights
            raise OSError(f"could not load GPT-2 weights {model_type!r} ({str(e).splitlines()[0]}); offline, "
                          f"pass the path of a directory saved by GPT2LMHeadModel.save_pretrained") from e
        hf = model_hf.config
        config_args = dict(n_layer=hf.n_layer, n_head=hf.n_head, n_embd=hf.n_embd,
                           vocab_size=hf.vocab_size, block_size=hf.n_positions, bias=True)
        config_args.update(override_args)
        model = cls(cls.config_class(**config_args))
        sd = model.state_dict()

        sd_hf = model_hf.state_dict()
        sd_keys_hf = [k for k in sd_hf if not k.endswith(('.attn.masked_bias', '.attn.bias'))]  # buffers
        # OpenAI's checkpoints use a "Conv1D" module: these weights are transposed relative to nn.Linear
        transposed = ['attn.c_attn.weight', 'attn.c_proj.weight', 'mlp.c_fc.weight', 'mlp.c_proj.weight']
        for k in sd_keys_hf:
            if k not in sd:
                raise ValueError(f"from_pretrained: checkpoint key {k} has no place in {cls.__name__}")
            src = sd_hf[k].t() if any(k.endswith(w) for w in transposed) else sd_hf[k]
            assert src.shape == sd[k].shape, f"{k}: {tuple(src.shape)} vs {tuple(sd[k].shape)}"
            with torch.no_grad():
                sd[k].copy_(src)
        return model

    def configure_optimizers(self, weight_decay, learning_rate, betas, device_type):
        """AdamW with weight decay on every >= 2-D tensor (matmuls, embeddings) and none on biases and norms.
        Fused AdamW on CUDA when this PyTorch has it."""
        param_dict = {pn: p for pn, p in self.named_parameters() if p.requires_grad}
        decay_params = [p for p in param_dict.values() if p.dim() >= 2]
        nodecay_params = [p for p in param_dict.values() if p.dim() < 2]
        optim_groups = [
            {'params': decay_params, 'weight_decay': weight_decay},
            {'params': nodecay_params, 'weight_decay': 0.0},
        ]
        num_decay_params = sum(p.numel() for p in decay_params)
        num_nodecay_params = sum(p.numel() for p in nodecay_params)
        print(f"num decayed parameter tensors: {len(decay_params)}, with {num_decay_params:,} parameters")
        print(f"num non-decayed parameter tensors: {len(nodecay_params)}, with {num_nodecay_params:,} parameters")
        fused_available = 'fused' in inspect.signature(torch.optim.AdamW).parameters
        use_fused = fused_available and device_type == 'cuda'
        extra_args = dict(fused=True) if use_fused else dict()
        optimizer = torch.optim.AdamW(optim_groups, lr=learning_rate, betas=betas, **extra_args)
        print(f"using fused AdamW: {use_fused}")
        return optimizer

    def estimate_mfu(self, fwdbwd_per_iter, dt, peak_flops=None):
        """Model FLOPs utilization: achieved FLOP/s over peak_flops (FLOP/s). peak_flops None means the
        current CUDA device's from PEAK_FLOPS; returns None when it is unknown (e.g. on a CPU).
        FLOPs per token as in the PaLM paper, Appendix B (https://arxiv.org/abs/2204.02311)."""
        peak_flops = peak_flops or device_peak_flops()
        if not peak_flops:
            return None
        N = self.get_num_params()
        cfg = self.config
        L, H, Q, T = cfg.n_layer, cfg.n_head, cfg.n_embd // cfg.n_head, cfg.block_size
        flops_per_token = 6 * N + 12 * L * H * Q * T
        flops_per_iter = flops_per_token * T * fwdbwd_per_iter
        return flops_per_iter / dt / peak_flops

    def new_kv_cache(self, batch_size, max_len):
        """An empty KVCache for this model's layers, on its device and dtype."""
        cfg = self.config
        w = self.lm_head.weight
        return KVCache(cfg.n_layer, batch_size, cfg.n_head, max_len, cfg.n_embd // cfg.n_head, w.device, w.dtype)

    @inference
    def generate(self, idx, max_new_tokens, temperature=1.0, top_k=None, use_cache=True):
        """Complete idx (B, T) with max_new_tokens tokens -> (B, T + max_new_tokens).

        temperature 0 is greedy (argmax); top_k keeps the k most likely tokens. With use_cache the prompt is
        run once and each new token costs one position; once the sequence outgrows block_size the window is
        cropped to the last block_size tokens and re-run every step, exactly as nanoGPT (and use_cache=False)
        do, so both paths give the same tokens. Put the model in eval mode first."""
        step = next_logits(self, use_cache)
        for _ in range(max_new_tokens):
            idx_next = sample_next(step(idx)[:, -1, :], temperature, top_k)
            idx = torch.cat((idx, idx_next), dim=1)
        return idx


def next_logits(model, use_cache):
    """A function idx (B, T) -> the logits after idx (B, 1, vocab_size) for a decoding loop that appends one
    token per call. With use_cache (model.new_kv_cache) only the tokens not yet seen run, while idx fits in
    block_size; past it, and without use_cache, the last block_size tokens are re-run, as nanoGPT does."""
    block_size = model.config.block_size
    state = {'cache': None, 'fed': 0}  # fed: how many tokens of idx are already in the cache

    def step(idx):
        if use_cache and idx.size(1) <= block_size:
            if state['cache'] is None:
                state['cache'] = model.new_kv_cache(idx.size(0), block_size)
            logits, _ = model(idx[:, state['fed']:], kv_cache=state['cache'])
            state['fed'] = idx.size(1)
            return logits
        return model(idx[:, -block_size:])[0]
    return step


def sample_next(logits, temperature=1.0, top_k=None):
    """Pick the next token from logits (B, vocab_size) -> (B, 1): argmax at temperature 0, else a sample
    from softmax(logits / temperature), restricted to the top_k most likely tokens when top_k is given."""
    if temperature == 0:
        return logits.argmax(dim=-1, keepdim=True)
    logits = logits / temperature
    if top_k is not None:
        v, _ = torch.topk(logits, min(top_k, logits.size(-1)))
        logits[logits < v[:, [-1]]] = -float('Inf')
    probs = F.softmax(logits, dim=-1)
    return torch.multinomial(probs, num_samples=1)


@inference
def greedy_decode(model, idx, max_new_tokens, stop_token=None, use_cache=False):
    """The plain greedy loop over any model's forward: idx LongTensor (B, T) -> (B, T + max_new_tokens).

    Each step runs `logits, _ = model(idx_cond)` and appends logits[:, -1, :].argmax(-1); idx_cond is idx
    cropped to the last model.config.block_size tokens when the model has such a config. No cache and no
    model-specific logic, so one helper scores every model the same way (the numeric evaluation, the
    hand-wired adder). With stop_token (an int), the loop ends early, once every row has generated it: the
    tokens up to each row's first stop_token are the same as without it. use_cache, for a GPT or GPT+DAG,
    runs each new token once with the model's KV cache (next_logits): the same tokens, much faster."""
    block_size = getattr(getattr(model, 'config', None), 'block_size', None)
    step = next_logits(model, True) if use_cache else \
        (lambda idx: model(idx if block_size is None else idx[:, -block_size:])[0])  # noqa: E731
    stopped = torch.zeros(idx.size(0), dtype=torch.bool, device=idx.device)
    for _ in range(max_new_tokens):
        logits = step(idx)
        idx = torch.cat((idx, logits[:, -1, :].argmax(dim=-1, keepdim=True)), dim=1)
        if stop_token is not None:
            stopped |= idx[:, -1] == stop_token
            if stopped.all():
                break
    return idx
