"""
A much shorter version of train.py for benchmarking, as nanoGPT's bench.py: training ms/iter, tokens/s and
MFU, optionally under the torch profiler; plus generation speed with and without the KV cache.
With dag_depth > 0 the plain GPT of the same size is measured too, their steps interleaved, and the ratio printed.

$ python bench.py                                   # the CPU shakespeare_char model (4 layers, 128 dims)
$ python bench.py --dag_depth=4                     # GPT+DAG against GPT
$ python bench.py --n_layer=12 --n_head=12 --n_embd=768 --block_size=1024 --compile=True   # GPT-2 on a GPU
"""
import os
import statistics
import sys
import time
from contextlib import nullcontext

import numpy as np
import torch

from checkpoint import build_model, compile_model
from configurator import check_device, check_rules, configure, model_rules
from dag_model import has_multi_digit_tokens
from tokenizer import token_texts

# -----------------------------------------------------------------------------
batch_size = 12
block_size = 64
bias = False
n_layer = 4
n_head = 4
n_embd = 128
dropout = 0.0
dag_depth = 0  # > 0: benchmark GPT+DAG and, for the ratio, the plain GPT of the same size
dag_key_dim = 0  # GPT+DAG: dimensions of the operand queries and node keys (0: n_embd)
dag_train_positions = 1.0  # GPT+DAG: share of the positions the DAG runs at in a training step (train.py's)
real_data = True  # data/<dataset>/train.bin when it exists, else random tokens
dataset = 'shakespeare_char'
vocab_size = 0  # 0: the dataset's meta.pkl, else GPT-2's 50304
tiktoken_file = ''  # GPT+DAG on GPT-2 BPE: a local gpt2.tiktoken, to read the tokens' digits offline
seed = 1337
device = 'cuda' if torch.cuda.is_available() else 'cpu'  # examples: 'cpu', 'cuda', 'cuda:0', 'cuda:1', etc.
dtype = ('bfloat16' if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else
         'float16' if torch.cuda.is_available() else 'float32')
compile = torch.cuda.is_available()  # use PyTorch 2.0 to compile the model to be faster
profile = False  # use pytorch profiler, or just simple benchmarking?
train_iters = 20  # timed training iterations of each model (after 10 of burn-in), interleaved
gen_new_tokens = 500  # new tokens per generation benchmark (0 skips it)
peak_flops = 0.0  # the device's peak FLOP/s for MFU; 0 = look up the GPU
# -----------------------------------------------------------------------------
configure(globals())
check_device(device, dtype)
check_rules('bench.py', model_rules(batch_size, block_size, n_layer, n_head, n_embd, dropout, dag_depth,
                                     dag_key_dim, dag_train_positions) + [
    (train_iters >= 1, f"--train_iters={train_iters}: time at least 1 iteration"),
    (gen_new_tokens >= 0, f"--gen_new_tokens={gen_new_tokens}: use 0 to skip generation, or a number of tokens"),
    (vocab_size >= 0, f"--vocab_size={vocab_size}: use 0 for the dataset's, or a number of tokens"),
])

torch.manual_seed(seed)
torch.cuda.manual_seed(seed)
torch.backends.cuda.matmul.allow_tf32 = True  # allow tf32 on matmul
torch.backends.cudnn.allow_tf32 = True  # allow tf32 on cudnn
device_type = 'cuda' if 'cuda' in device else 'cpu'  # for later use in torch.autocast
ptdtype = {'float32': torch.float32, 'bfloat16': torch.bfloat16, 'float16': torch.float16}[dtype]
ctx = nullcontext() if dtype == 'float32' else torch.amp.autocast(device_type=device_type, dtype=ptdtype)

# data loading init
data_path = os.path.join('data', dataset, 'train.bin')
use_real = real_data and os.path.exists(data_path)
if not vocab_size:
    meta_path = os.path.join('data', dataset, 'meta.pkl')
    if os.path.exists(meta_path):
        from tokenizer import load_meta
        vocab_size = load_meta(meta_path)['vocab_size']
    else:
        vocab_size = 50304
if use_real:
    train_data = np.memmap(data_path, dtype=np.uint16, mode='r')

    def get_batch(split):
        ix = torch.randint(len(train_data) - block_size, (batch_size,))
        x = torch.stack([torch.from_numpy((train_data[i:i + block_size]).astype(np.int64)) for i in ix])
        y = torch.stack([torch.from_numpy((train_data[i + 1:i + 1 + block_size]).astype(np.int64)) for i in ix])
        return x.to(device), y.to(device)
else:
    # alternatively, if fixed data is desired to not care about data loading
    x = torch.randint(vocab_size, (batch_size, block_size), device=device)
    y = torch.randint(vocab_size, (batch_size, block_size), device=device)

    def get_batch(split):
        return x, y
print(f"data: {'real ' + data_path if use_real else 'random tokens'}, vocab_size {vocab_size}")


def vocabulary():
    """The text of each token (GPT+DAG reads numbers from it): the dataset's characters, else GPT-2's."""
    meta_path = os.path.join('data', dataset, 'meta.pkl')
    try:
        return token_texts(meta_path, tiktoken_file)
    except (ValueError, RuntimeError, FileNotFoundError) as e:
        sys.exit(f"bench.py: {e}")


def make_model(depth, context):
    torch.manual_seed(seed)
    args = dict(block_size=context, n_layer=n_layer, n_head=n_head, n_embd=n_embd, dropout=dropout,
                bias=bias, vocab_size=vocab_size, dag_depth=depth)
    tokens = vocabulary() if depth > 0 else None
    if tokens is not None:
        args.update(dag_key_dim=dag_key_dim, dag_write_tokens=has_multi_digit_tokens(tokens),
                    dag_train_positions=dag_train_positions)
    model = build_model(args)
    if tokens is not None:
        model.set_vocabulary(tokens[:vocab_size])
    return model.to(device)


def make_trainer(depth):
    """A fresh model of this depth with its optimizer (compiled if asked), profiled if asked, after 10 steps of
    burn-in -> (step, the uncompiled model). step() runs one training iteration on a new batch; it ends with a
    host sync (loss.item()), so its wall time is the step's."""
    model = make_model(depth, block_size)
    optimizer = model.configure_optimizers(weight_decay=1e-2, learning_rate=1e-4, betas=(0.9, 0.95),
                                           device_type=device_type)
    raw_model = model
    if compile:
        print("Compiling model...")
        model = compile_model(model)  # pytorch 2.0

    def step():
        X, Y = get_batch('train')
        with ctx:
            logits, loss = model(X, Y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return loss.item()

    if profile:
        # useful docs on pytorch profiler:
        # - tutorial https://pytorch.org/tutorials/intermediate/tensorboard_profiler_tutorial.html
        # - api https://pytorch.org/docs/stable/profiler.html#torch.profiler.profile
        wait, warmup, active = 5, 5, 5
        num_steps = wait + warmup + active
        activities = [torch.profiler.ProfilerActivity.CPU]
        if device_type == 'cuda':
            activities.append(torch.profiler.ProfilerActivity.CUDA)
        with torch.profiler.profile(
            activities=activities,
            schedule=torch.profiler.schedule(wait=wait, warmup=warmup, active=active, repeat=1),
            on_trace_ready=torch.profiler.tensorboard_trace_handler('./bench_log'),
            record_shapes=False,
            profile_memory=False,
            with_stack=False,  # incurs an additional overhead, disable if not needed
            with_flops=True,
            with_modules=False,  # only for torchscript models atm
        ) as prof:
            for k in range(num_steps):
                lossf = step()
                prof.step()  # notify the profiler at end of each step
                print(f"{k}/{num_steps} loss: {lossf:.4f}")
        print(prof.key_averages().table(sort_by='self_cpu_time_total', row_limit=15))
        print("profiler trace written to ./bench_log")
    for _ in range(10):  # burn-in
        step()
    return step, raw_model


def time_steps(steps):
    """The median wall time in ms of each of steps (make_trainer's) over train_iters rounds; a round runs one
    step of every model in turn, so that the machine's drift (a step on 2 shared CPU cores took 270 ms, then 380
    ms, within one minute, NOTES.md) falls on all of them alike and their ratio holds."""
    times = [[] for _ in steps]
    for _ in range(train_iters):
        for t, step in zip(times, steps):
            t0 = time.perf_counter()
            step()
            t.append((time.perf_counter() - t0) * 1000)
    return [statistics.median(t) for t in times]


@torch.no_grad()
def bench_generate(depth, use_cache):
    """Greedy generation of gen_new_tokens after a 1-token prompt, batch 1; return tokens/s. The model's
    context is made long enough to hold them all, since the KV cache only pays within block_size."""
    model = make_model(depth, max(block_size, gen_new_tokens + 1)).eval()
    idx = torch.zeros((1, 1), dtype=torch.long, device=device)
    with ctx:
        model.generate(idx, 10, temperature=0, use_cache=use_cache)  # warm-up
        if device_type == 'cuda':
            torch.cuda.synchronize()
        t0 = time.time()
        model.generate(idx, gen_new_tokens, temperature=0, use_cache=use_cache)
        if device_type == 'cuda':
            torch.cuda.synchronize()
    return gen_new_tokens / (time.time() - t0)


depths = [0, dag_depth] if dag_depth > 0 else [0]
trainers = [make_trainer(depth) for depth in depths]
step_ms = time_steps([step for step, _ in trainers])
for depth, (_, raw_model), ms in zip(depths, trainers, step_ms):
    name = f"GPT+DAG (dag_depth={depth})" if depth else "GPT"
    mfu = raw_model.estimate_mfu(batch_size, ms / 1000, peak_flops or None)
    mfu_str = f", MFU {mfu * 100:.2f}%" if mfu is not None else ", MFU n/a (peak FLOP/s unknown: set peak_flops)"
    n_params = sum(p.numel() for p in raw_model.parameters())
    print(f"{name} train: {ms:.2f} ms/iter, {batch_size * block_size / (ms / 1000):,.0f} tokens/s{mfu_str}, "
          f"{n_params:,} parameters")
del trainers
if gen_new_tokens > 0:
    for depth in depths:
        name = f"GPT+DAG (dag_depth={depth})" if depth else "GPT"
        cached = bench_generate(depth, use_cache=True)
        uncached = bench_generate(depth, use_cache=False)
        print(f"{name} generate {gen_new_tokens} tokens: {cached:,.1f} tokens/s with KV cache, "
              f"{uncached:,.1f} tokens/s without ({cached / uncached:.2f}x)")
if dag_depth > 0:
    print(f"GPT+DAG / GPT train step time: {step_ms[1] / step_ms[0]:.2f}x (medians of {train_iters} "
          f"interleaved steps)")
