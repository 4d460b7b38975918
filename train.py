"""
This training script can be run both on a single device (CPU or GPU) and with distributed data parallel (DDP).

To run on a single device, example:
$ python train.py config/train_shakespeare_char.py --device=cpu --compile=False
$ python train.py config/train_default.py --dag_depth=4

To run with DDP on 4 GPUs on 1 node, example:
$ torchrun --standalone --nproc_per_node=4 train.py

To run with DDP on 4 GPUs across 2 nodes, example:
- Run on the first (master) node with example IP 123.456.123.456:
$ torchrun --nproc_per_node=8 --nnodes=2 --node_rank=0 --master_addr=123.456.123.456 --master_port=1234 train.py
- Run on the worker node:
$ torchrun --nproc_per_node=8 --nnodes=2 --node_rank=1 --master_addr=123.456.123.456 --master_port=1234 train.py
(If your cluster does not have Infiniband interconnect prepend NCCL_IB_DISABLE=1)

Settings are the globals below; `python train.py --help` lists them. Beyond nanoGPT: `dag_depth` > 0 trains
GPT+DAG; checkpoints are written atomically and hold what an exact resume needs; a non-finite loss stops the
run with a non-zero exit and leaves the last good checkpoint alone; W&B runs offline when no API key is set;
every log line's and eval's numbers go to out_dir/metrics.jsonl (`python plot.py --out_dirs=out` draws them).
"""

import json
import math
import os
import sys
import time
from contextlib import nullcontext

import numpy as np
import torch
from torch.distributed import destroy_process_group, init_process_group
from torch.nn.parallel import DistributedDataParallel as DDP

from checkpoint import (build_model, compile_model, load_checkpoint, model_from_checkpoint, remove_stale_temp_files,
                        save_checkpoint)
from configurator import check_device, check_rules, config_keys, configure, model_rules
from dag_model import LABEL_FILES, NO_OP, multi_step_rows
from tokenizer import dataset_dir, draw_line_windows, line_starts, load_meta, newline_ids, token_texts

# -----------------------------------------------------------------------------
# default config values designed to train a gpt2 (124M); see config/ for small CPU runs
# I/O
out_dir = 'out'
eval_interval = 2000
log_interval = 1
eval_iters = 200
eval_only = False  # if True, script exits right after the first eval
always_save_checkpoint = True  # if True, always save a checkpoint after each eval
init_from = 'scratch'  # 'scratch' or 'resume' or 'gpt2*' (or a local directory saved by transformers)
# wandb logging
wandb_log = False  # disabled by default
tracker = 'wandb'  # with wandb_log: 'wandb' (W&B) or 'trackio' (the same charts, kept locally: `trackio show`)
wandb_project = 'nanogpt-dag'
wandb_run_name = 'gpt2'  # 'run' + str(time.time())
wandb_run_id = ''  # '' = a new id (or the checkpoint's on resume); runpod_service.py sets it to print the link
# data
dataset = 'shakespeare_char'  # reads data/<dataset>/train.bin, val.bin (and meta.pkl for vocab_size)
tiktoken_file = ''  # GPT+DAG on a GPT-2 BPE dataset: a local gpt2.tiktoken ranks file, to read the tokens offline
gradient_accumulation_steps = 5 * 8  # used to simulate larger batch sizes
batch_size = 12  # if gradient_accumulation_steps > 1, this is the micro-batch size
block_size = 1024
# model
n_layer = 12
n_head = 12
n_embd = 768
dropout = 0.0  # for pretraining 0 is good, for finetuning try 0.1+
bias = False  # do we use bias inside LayerNorm and Linear layers?
dag_depth = 0  # 0: plain GPT; > 0: GPT+DAG with this many DAG steps (dag_model.py)
dag_topk = 4  # GPT+DAG: operand candidates per side whose results the backward pass weighs
dag_key_dim = 0  # GPT+DAG: dimensions of the operand queries and node keys (0: n_embd; 32: a step ~16% shorter,
                 # less accurate, NOTES.md)
dag_window = 24  # GPT+DAG: longest number, in tokens, the value extractor reads
dag_value_loss = 0.1  # GPT+DAG: weight of the auxiliary loss on labelled numbers, used when the dataset has
                      # the labels (data/<dataset>/train_roles.bin, _steps_of.bin, _steps.npy, written by
                      # data/numeric/prepare.py); 0 = off. 0.1 beat 1.0 on the main job (test 88.7% against
                      # 82.9%, 3 seeds) and spares the trunk for prose (NOTES.md, issue 10)
dag_train_positions = 1.0  # GPT+DAG: share of the positions the DAG runs at in a training step (the rest get no
                           # DAG that step; evaluation runs them all): every position with a step label, then
                           # after a number, then random ones (dag_model.DAGGPT.train_positions)
# adamw optimizer
learning_rate = 6e-4  # max learning rate
max_iters = 600000  # total number of training iterations
max_seconds = 0.0  # > 0: stop, after a last eval and checkpoint, once training has run this long, and run the
                   # learning-rate schedule on the clock (lr_decay_iters is reached at max_seconds): equal-time
                   # comparisons; 0 = off
weight_decay = 1e-1
beta1 = 0.9
beta2 = 0.95
grad_clip = 1.0  # clip gradients at this value, or disable if == 0.0
# learning rate decay settings
decay_lr = True  # whether to decay the learning rate
warmup_iters = 2000  # how many steps to warm up for
lr_decay_iters = 600000  # should be ~= max_iters per Chinchilla
min_lr = 6e-5  # minimum learning rate, should be ~= learning_rate/10 per Chinchilla
# DDP settings
backend = ''  # '' picks 'nccl' on CUDA and 'gloo' on CPU
# system
device = 'cuda' if torch.cuda.is_available() else 'cpu'  # 'cpu', 'cuda', 'cuda:0', 'mps' ...
dtype = ('bfloat16' if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else
         'float16' if torch.cuda.is_available() else 'float32')  # 'float16' uses a GradScaler
compile = torch.cuda.is_available()  # use PyTorch 2.0 to compile the model to be faster
peak_flops = 0.0  # the device's peak FLOP/s for MFU; 0 = look up the GPU (unknown on CPU: no MFU)
seed = 1337
flush_denormal = False  # True: on the CPU, floats below the smallest normal (float32's 1.2e-38) are 0
# (torch.set_flush_denormal); no effect on CUDA. GPT+DAG without labels (dag_value_loss=0) collapses its operand
# choices, and products with its softmax's tiny probabilities take the CPU's slow path: 590 against 227 ms a step,
# so compare_numeric.py sets it for that run. Off by default: it changes the labelled main job's path from iteration
# 30 for no speed, and over 10 seeds held-out phrasings were 55.9% against 61.8% (NOTES.md, 23rd and 24th sessions)
line_windows = False  # True: each batch window starts 0..line_margin tokens before a newline token, so a line (the
# numeric corpus: a problem) is seen whole ~1.5x as often as at nanoGPT's random offset; in the main job test chains
# +1.6 but held-out phrasings -6.4 points over 4 seeds, so it stays off (NOTES.md, fifteenth session)
line_margin = 16  # with line_windows: the most tokens a window starts before its newline, so positions stay varied
multi_step_windows = 0  # on a dataset with step labels (GPT or GPT+DAG): after multi_step_from of the training, each
# batch gets this many more windows, each starting 0..line_margin tokens before a line that holds a multi-step program
# (a label row with two or more different values: data/numeric's chains); 0: none. config/train_default.py sets 5 on
# batches of 16 (21 from a quarter of the training). Measured as 10 on batches of 32: over 6 seeds, on a corpus a fifth
# chains, test chains 31.0 -> 40.3% (higher on all 6), held-out phrasings 56.7 -> 52.1%, and 10 more random windows
# gave no more chains (NOTES.md, 17th session); on prepare.py's 30% chains, test chains 44.1%, phrasings 54.5% (18th)
multi_step_from = 0.5  # the fraction of the training (of max_iters, or of max_seconds) before multi_step_windows starts
# -----------------------------------------------------------------------------
set_by_user = configure(globals())  # the settings a config file or --key=value changed
config = {k: globals()[k] for k in sorted(config_keys(globals()))
          if isinstance(globals()[k], (int, float, bool, str))}  # the settings, for logging (no constants: NO_OP)
# -----------------------------------------------------------------------------


def check_settings():
    """Exit with one line naming the first setting that cannot work (before any process group or file)."""
    check_device(device, dtype)
    rules = model_rules(batch_size, block_size, n_layer, n_head, n_embd, dropout, dag_depth, dag_key_dim,
                        dag_train_positions) + [
        (eval_interval >= 1, f"--eval_interval={eval_interval}: evaluate every N >= 1 iterations"),
        (eval_iters >= 1, f"--eval_iters={eval_iters}: an evaluation needs at least 1 batch"),
        (log_interval >= 1, f"--log_interval={log_interval}: log every N >= 1 iterations"),
        (gradient_accumulation_steps >= 1,
         f"--gradient_accumulation_steps={gradient_accumulation_steps}: at least 1 micro-step per iteration"),
        (max_iters >= 0 and max_seconds >= 0, f"--max_iters={max_iters}, --max_seconds={max_seconds}: use >= 0"),
        (line_margin >= 0, f"--line_margin={line_margin}: use a number of tokens >= 0"),
        (multi_step_windows >= 0, f"--multi_step_windows={multi_step_windows}: use a number of windows >= 0"),
        (0.0 <= multi_step_from <= 1.0, f"--multi_step_from={multi_step_from}: use a fraction of the training"),
        (tracker in ('wandb', 'trackio'), f"--tracker={tracker!r}: use 'wandb' (W&B) or 'trackio' (local dashboard)"),
        (init_from in ('scratch', 'resume') or init_from.startswith('gpt2') or os.path.isdir(init_from),
         f"--init_from={init_from!r}: use 'scratch', 'resume', a GPT-2 name (gpt2, gpt2-medium, ...) or a local "
         f"directory saved by transformers"),
    ]
    check_rules('train.py', rules)


check_settings()

# various inits, derived attributes, I/O setup
ddp = int(os.environ.get('RANK', -1)) != -1  # is this a ddp run?
if ddp:
    init_process_group(backend=backend or ('nccl' if 'cuda' in device else 'gloo'))
    ddp_rank = int(os.environ['RANK'])
    ddp_local_rank = int(os.environ['LOCAL_RANK'])
    ddp_world_size = int(os.environ['WORLD_SIZE'])
    if 'cuda' in device:
        device = f'cuda:{ddp_local_rank}'
        torch.cuda.set_device(device)
    master_process = ddp_rank == 0  # this process will do logging, checkpointing etc.
    seed_offset = ddp_rank  # each process gets a different seed
    # world_size number of processes will be training simultaneously, so we can scale
    # down the desired gradient accumulation iterations per process proportionally
    if gradient_accumulation_steps % ddp_world_size != 0:
        sys.exit(f"gradient_accumulation_steps={gradient_accumulation_steps} must be divisible by the "
                 f"{ddp_world_size} DDP processes")
    gradient_accumulation_steps //= ddp_world_size
else:
    # if not ddp, we are running on a single gpu, and one process
    master_process = True
    seed_offset = 0
    ddp_world_size = 1
tokens_per_iter = gradient_accumulation_steps * ddp_world_size * batch_size * block_size
if master_process:
    print(f"tokens per iteration will be: {tokens_per_iter:,}")
    os.makedirs(out_dir, exist_ok=True)
torch.manual_seed(seed + seed_offset)
torch.backends.cuda.matmul.allow_tf32 = True  # allow tf32 on matmul
torch.backends.cudnn.allow_tf32 = True  # allow tf32 on cudnn
device_type = 'cuda' if 'cuda' in device else 'cpu'  # for later use in torch.autocast
if flush_denormal:
    flushed = torch.set_flush_denormal(True)  # False where the CPU cannot: it then keeps denormals
    if master_process:
        print(f"flush_denormal: denormal floats {'are 0' if flushed else 'stay: this CPU cannot flush them'}")
# note: float16 data type will automatically use a GradScaler
ptdtype = {'float32': torch.float32, 'bfloat16': torch.bfloat16, 'float16': torch.float16}[dtype]
ctx = nullcontext() if dtype == 'float32' else torch.amp.autocast(device_type=device_type, dtype=ptdtype)

# poor man's data loader
try:
    data_dir = dataset_dir(dataset)
except ValueError as e:
    sys.exit(f"train.py: {e}")
for split in ('train', 'val'):
    if not os.path.isfile(os.path.join(data_dir, f'{split}.bin')):
        prepare = os.path.join(data_dir, 'prepare.py')
        how = f"python {prepare}" if os.path.isfile(prepare) else \
            f"train.bin and val.bin of uint16 token ids in {data_dir}, as nanoGPT's prepare scripts write them"
        sys.exit(f"missing {os.path.join(data_dir, split + '.bin')}: prepare the data first: {how}")


def get_batch(split, with_labels=False, iteration=None):
    """A batch of block_size windows (at random offsets, as nanoGPT's, or with line_windows near a newline): x, y
    (B, T) long, and the DAG's auxiliary labels as a dict (see get_labels; empty unless with_labels). B is
    batch_size, plus multi_step_windows in a training batch after multi_step_from of the training (iteration: the
    training iteration the batch is for; None, the evaluations' batches: batch_size)."""
    # We recreate np.memmap every batch to avoid a memory leak, as per
    # https://stackoverflow.com/questions/45132940/numpy-memmap-memory-usage-want-to-iterate-once/61472122#61472122
    data = np.memmap(os.path.join(data_dir, f'{split}.bin'), dtype=np.uint16, mode='r')
    if len(data) <= block_size:
        sys.exit(f"{split}.bin has {len(data)} tokens, fewer than block_size + 1 = {block_size + 1}")
    if line_windows:  # a newline's offset, then 0..line_margin tokens earlier
        ix = draw_line_windows(newline_starts(split, data), batch_size, line_margin)
    else:
        ix = torch.randint(len(data) - block_size, (batch_size,))
    if multi_step_windows > 0 and iteration is not None and after_multi_step_from(iteration):  # more rows: chains
        ix = torch.cat([ix, draw_line_windows(multi_step_starts(data), multi_step_windows, line_margin)])
    x = torch.stack([torch.from_numpy((data[i:i + block_size]).astype(np.int64)) for i in ix])
    y = torch.stack([torch.from_numpy((data[i + 1:i + 1 + block_size]).astype(np.int64)) for i in ix])
    labels = get_labels(split, ix) if with_labels else {}
    if device_type == 'cuda':
        # pin arrays x,y, which allows us to move them to GPU asynchronously (non_blocking=True)
        move = lambda t: t.pin_memory().to(device, non_blocking=True)  # noqa: E731
    else:
        move = lambda t: t.to(device)  # noqa: E731
    return move(x), move(y), {name: move(t) for name, t in labels.items()}


_newline_ids = None  # the ids of the vocabulary's newline tokens, read once for both splits (newline_starts)
_newline_starts = {}  # split -> the offsets of its newline tokens where a window fits (found once)


def vocabulary_newline_ids():
    """newline_ids of the run's vocabulary, read once (exits with one line if it cannot be read)."""
    global _newline_ids
    if _newline_ids is None:
        try:
            _newline_ids = newline_ids(meta_path, tiktoken_file)
        except (ValueError, RuntimeError, FileNotFoundError) as e:
            sys.exit(f"train.py: {e}")
    return _newline_ids


def newline_starts(split, data):
    """The offsets (1-D long tensor) in a split's tokens of its newline tokens at which a window of block_size + 1
    tokens fits: where line_windows draws windows. Exits with one line when there is none."""
    if split not in _newline_starts:
        offsets = torch.from_numpy(line_starts(data, vocabulary_newline_ids(), block_size))
        if len(offsets) == 0:
            sys.exit(f"train.py: --line_windows=True, but {split}.bin has no newline token where a window of "
                     f"block_size={block_size} fits; use --line_windows=False (nanoGPT's random offsets)")
        _newline_starts[split] = offsets
    return _newline_starts[split]


_multi_step_starts = None  # the train split's line starts for multi_step_windows (found once)


def after_multi_step_from(iteration):
    """Whether training iteration is past multi_step_from of the training: of max_seconds when that is set (as the
    learning rate's schedule), else of max_iters."""
    if max_seconds > 0:
        return time.time() - train_start > multi_step_from * max_seconds
    return iteration > multi_step_from * max_iters


def multi_step_starts(data):
    """The offsets (1-D long tensor) in the train split's tokens data of the newlines that start a line holding a
    multi-step program (dag_model.multi_step_rows of its step labels), where a window fits: where
    multi_step_windows draws windows. Exits with one line when the labels are missing or hold none."""
    global _multi_step_starts
    if _multi_step_starts is None:
        path = lambda name: os.path.join(data_dir, f'train_{LABEL_FILES[name]}')  # noqa: E731
        if not (os.path.isfile(path('steps')) and os.path.isfile(path('steps_of'))):
            sys.exit(f"train.py: --multi_step_windows={multi_step_windows} needs the step labels {path('steps')} "
                     f"and {path('steps_of')} (data/numeric/prepare.py writes them); or use --multi_step_windows=0")
        rows = np.flatnonzero(multi_step_rows(np.load(path('steps'))).numpy())
        held = np.flatnonzero(np.isin(np.memmap(path('steps_of'), dtype=np.int32, mode='r'), rows))
        _multi_step_starts = torch.from_numpy(line_starts(data, vocabulary_newline_ids(), block_size, holding=held))
        if len(_multi_step_starts) == 0:
            sys.exit(f"train.py: --multi_step_windows={multi_step_windows}, but no line of train.bin with a window "
                     f"of block_size={block_size} holds a multi-step program; use --multi_step_windows=0")
        if master_process:
            print(f"multi_step_windows: {len(_multi_step_starts):,} lines of train.bin hold a multi-step program")
    return _multi_step_starts


# GPT+DAG learns faster from labels of the numbers in the text, when the dataset has them (data/numeric writes
# them): the role of each token in a number (a digit, a separator, ...), the values the DAG's steps should
# compute at the positions where a sub-expression's last number has been read and where the answer is written,
# and the op named next to each right operand (dag_model.LABEL_FILES)


def get_labels(split, ix):
    """The labels of the windows starting at ix, aligned with x: {'roles': (B, T) long, the CLASSES index of
    each token; 'steps': (B, T, S) float64, the values each DAG step should compute there (data/numeric's
    steps labels), NaN where none; 'ops': (B, T) long, the OPS index of the op named where a right operand's
    number ends, -1 elsewhere}."""
    path = lambda name: os.path.join(data_dir, f'{split}_{LABEL_FILES[name]}')  # noqa: E731
    roles = np.memmap(path('roles'), dtype=np.uint8, mode='r')
    steps_of = np.memmap(path('steps_of'), dtype=np.int32, mode='r')  # the label row of a token, or -1
    steps = np.load(path('steps'), mmap_mode='r')  # (rows, S)
    rows = np.stack([steps_of[i:i + block_size] for i in ix])  # (B, T)
    op_file = np.memmap(path('ops'), dtype=np.uint8, mode='r')
    ops = np.stack([op_file[i:i + block_size] for i in ix])
    return {'roles': torch.stack([torch.from_numpy(roles[i:i + block_size].astype(np.int64)) for i in ix]),
            'steps': torch.from_numpy(np.where(rows[..., None] >= 0, steps[np.maximum(rows, 0)], np.nan)),
            'ops': torch.from_numpy(np.where(ops == NO_OP, -1, ops.astype(np.int64)))}


# init these up here, can override if init_from='resume' (i.e. from a checkpoint)
iter_num = 0
best_val_loss = 1e9
checkpoint = None

# attempt to derive vocab_size from the dataset
meta_path = os.path.join(data_dir, 'meta.pkl')
meta_vocab_size = None
if os.path.exists(meta_path):
    try:
        meta_vocab_size = load_meta(meta_path)['vocab_size']
    except ValueError as e:
        sys.exit(str(e))
    print(f"found vocab_size = {meta_vocab_size} (inside {meta_path})")

# model init
model_args = dict(n_layer=n_layer, n_head=n_head, n_embd=n_embd, block_size=block_size, bias=bias,
                  vocab_size=None, dropout=dropout, dag_depth=dag_depth, dag_value_loss=dag_value_loss,
                  dag_train_positions=dag_train_positions,
                  **(dict(dag_topk=dag_topk, dag_key_dim=dag_key_dim, dag_window=dag_window) if dag_depth > 0 else {}))
tokens = None  # GPT+DAG reads the digits of each token from its text (dag_model.number_tables)
if dag_depth > 0 and init_from != 'resume':
    try:
        tokens = token_texts(meta_path, tiktoken_file)
    except (ValueError, RuntimeError, FileNotFoundError) as e:
        sys.exit(f"train.py: {e}")
    from dag_model import has_multi_digit_tokens
    model_args['dag_write_tokens'] = has_multi_digit_tokens(tokens)  # BPE: answers are written in digit tokens
if init_from == 'scratch':
    print("Initializing a new model from scratch")
    if meta_vocab_size is None:
        print("defaulting to vocab_size of GPT-2 to 50304 (50257 rounded up for efficiency)")
    model_args['vocab_size'] = meta_vocab_size if meta_vocab_size is not None else 50304
    model = build_model(model_args)
elif init_from == 'resume':
    ckpt_path = os.path.join(out_dir, 'ckpt.pt')
    print(f"Resuming training from {ckpt_path}")
    try:
        checkpoint = load_checkpoint(ckpt_path, map_location=device)
    except (FileNotFoundError, ValueError) as e:
        sys.exit(str(e))
    # the architecture comes from the checkpoint (said where a setting asks for another); dropout and the
    # auxiliary loss weight are training settings and follow this run's
    saved_args = checkpoint['model_args']
    for k in ('n_layer', 'n_head', 'n_embd', 'bias', 'dag_depth', 'dag_topk', 'dag_key_dim', 'dag_window',
              'block_size'):
        if k in set_by_user and k in saved_args and globals()[k] != saved_args[k] and \
                not (k == 'block_size' and block_size < saved_args[k]):  # a smaller block_size crops the model
            print(f"resume: {k} = {saved_args[k]!r} from the checkpoint, not the {globals()[k]!r} set here "
                  f"(the architecture comes from the checkpoint; use a new out_dir to change it)")
    model_args = {'dag_depth': 0, **saved_args, 'dropout': dropout, 'dag_value_loss': dag_value_loss,
                  'dag_train_positions': dag_train_positions}
    checkpoint['model_args'] = model_args
    try:
        model = model_from_checkpoint(checkpoint)
    except ValueError as e:
        sys.exit(f"{ckpt_path}: {e}")
    iter_num = checkpoint['iter_num']
    best_val_loss = checkpoint['best_val_loss']
    wandb_run_id = wandb_run_id or checkpoint.get('wandb_run_id') or ''
else:  # gpt2*, or a local directory saved by transformers
    print(f"Initializing from OpenAI GPT-2 weights: {init_from}")
    if meta_vocab_size is not None:
        sys.exit(f"train.py: init_from={init_from!r} reads GPT-2 BPE token ids, but {data_dir} is a character "
                 f"vocabulary (meta.pkl): use a GPT-2 BPE dataset, e.g. python data/shakespeare/prepare.py "
                 f"and --dataset=shakespeare")
    if dag_depth > 0:
        from dag_model import DAGGPT as model_cls
    else:
        from model import GPT as model_cls
    override_args = dict(dropout=dropout) if dag_depth == 0 else \
        dict(dropout=dropout, dag_depth=dag_depth, dag_value_loss=dag_value_loss,
             dag_train_positions=dag_train_positions, dag_topk=dag_topk,
             dag_key_dim=dag_key_dim, dag_window=dag_window, dag_write_tokens=model_args['dag_write_tokens'])
    try:
        model = model_cls.from_pretrained(init_from, override_args)
    except (ValueError, OSError) as e:
        sys.exit(f"train.py: {e}")
    # read off the created config params, so we can store them into checkpoint correctly
    model_args = {'dag_depth': 0, **vars(model.config)}
model_args = {**model_args, **vars(model.config)}  # every field of the model's config, e.g. DAGGPTConfig's
if tokens is not None:
    model.set_vocabulary(tokens)
# crop down the model block size if desired, using model surgery
if block_size < model.config.block_size:
    model.crop_block_size(block_size)
    model_args['block_size'] = block_size  # so that the checkpoint will have the right value
model.to(device)
missing_labels = [f'train_{file}' for file in LABEL_FILES.values()
                  if not os.path.isfile(os.path.join(data_dir, f'train_{file}'))]
use_labels = model_args.get('dag_depth', 0) > 0 and dag_value_loss > 0 and not missing_labels
label_files = (*LABEL_FILES.values(), 'answer_of.bin')  # answer_of.bin: an older prepare.py's only
if model_args.get('dag_depth', 0) > 0 and dag_value_loss > 0 and missing_labels and \
        any(os.path.isfile(os.path.join(data_dir, f'train_{file}')) for file in label_files):
    # some label files but not all: an older data/numeric/prepare.py wrote them; GPT+DAG would train without them
    sys.exit(f"train.py: {data_dir} has the labels of an older data/numeric/prepare.py (no "
             f"{', '.join(missing_labels)}): run prepare.py again, or set dag_value_loss=0")
if use_labels:
    print(f"GPT+DAG auxiliary labels: roles, step values and ops (weight dag_value_loss={dag_value_loss})")
if multi_step_windows > 0:  # find the lines now: a dataset without step labels stops here, not halfway through
    multi_step_starts(np.memmap(os.path.join(data_dir, 'train.bin'), dtype=np.uint16, mode='r'))
if meta_vocab_size is not None and meta_vocab_size > model_args['vocab_size']:
    sys.exit(f"train.py: {data_dir} has {meta_vocab_size} tokens but the model reads {model_args['vocab_size']}: "
             f"resume with the dataset it was trained on, or start a new out_dir")



# an exact resume restores every process's random stream: the batches it draws, its dropout and the DAG's
# exploration noise. The CPU state is taken just before the batch prefetch (batch_rng_state, in the loop)
def gather_rng_states():
    """Every process's generator states, a list by rank (called by all processes; under DDP gathered to each)."""
    state = {'cpu': batch_rng_state, 'cuda': torch.cuda.get_rng_state() if device_type == 'cuda' else None}
    if not ddp:
        return [state]
    states = [None] * ddp_world_size
    torch.distributed.all_gather_object(states, state)
    return states


def restore_rng_states(saved):
    """Set this process's generators from a checkpoint's 'rng' (a list by rank; older checkpoints hold one dict
    for the single process). With another number of processes than saved, each draws afresh from a seed that
    depends on its rank and iter_num, so no rank replays the batches of the run's start."""
    states = [saved] if isinstance(saved, dict) else saved or []
    rank = ddp_rank if ddp else 0
    if len(states) != ddp_world_size:
        if states:
            print(f"resume: the checkpoint holds the data streams of {len(states)} processes, this run has "
                  f"{ddp_world_size}: batches are drawn afresh")
        torch.manual_seed(seed + seed_offset + 1_000_003 * iter_num)
        return
    torch.set_rng_state(states[rank]['cpu'].cpu())
    cuda = states[rank].get('cuda')
    if isinstance(cuda, (list, tuple)):  # older checkpoints: every device's state
        cuda = cuda[0] if cuda else None
    if cuda is not None and device_type == 'cuda':
        torch.cuda.set_rng_state(cuda.cpu())


# initialize a GradScaler. If enabled=False scaler is a no-op
scaler = torch.amp.GradScaler(device_type, enabled=(dtype == 'float16'))

# optimizer
optimizer = model.configure_optimizers(weight_decay, learning_rate, (beta1, beta2), device_type)
if checkpoint is not None:
    optimizer.load_state_dict(checkpoint['optimizer'])
    if checkpoint.get('scaler'):
        scaler.load_state_dict(checkpoint['scaler'])
    restore_rng_states(checkpoint.get('rng'))
checkpoint = None  # free up memory

# compile the model
if compile:
    print("compiling the model... (takes a ~minute)")
    model = compile_model(model)  # requires PyTorch 2.0

# wrap model into DDP container
if ddp:
    model = DDP(model, device_ids=[ddp_local_rank] if device_type == 'cuda' else None)
raw_model = model.module if ddp else model  # unwrap DDP container if needed
raw_model = getattr(raw_model, '_orig_mod', raw_model)  # and torch.compile's wrapper


# helps estimate an arbitrarily accurate loss over either split using many batches
@torch.no_grad()
def estimate_loss():
    out = {}
    model.eval()
    for split in ['train', 'val']:
        losses = torch.zeros(eval_iters)
        for k in range(eval_iters):
            X, Y, _ = get_batch(split)  # the language-model loss only, comparable across GPT and GPT+DAG
            with ctx:
                logits, loss = model(X, Y)
            losses[k] = loss.item()
        out[split] = losses.mean().item()
    model.train()
    return out


# learning rate decay scheduler (cosine with warmup)
def get_lr(it):
    if max_seconds > 0:  # the schedule runs on the clock, so models of any speed get all of it in max_seconds
        it = lr_decay_iters * (time.time() - train_start) / max_seconds
    # 1) linear warmup for warmup_iters steps
    if it < warmup_iters:
        return learning_rate * (it + 1) / (warmup_iters + 1)
    # 2) if it > lr_decay_iters, return min learning rate
    if it > lr_decay_iters:
        return min_lr
    # 3) in between, use cosine decay down to min learning rate
    decay_ratio = (it - warmup_iters) / (lr_decay_iters - warmup_iters)
    assert 0 <= decay_ratio <= 1
    coeff = 0.5 * (1.0 + math.cos(math.pi * decay_ratio))  # coeff ranges 0..1
    return min_lr + coeff * (learning_rate - min_lr)


def leave_ddp_process(code):
    """End a DDP process with exit code `code`, without the interpreter's teardown. PyTorch 2.13's backward stashes
    a Python object in the thread state that each gradient all-reduce keeps, and a gloo worker thread may still be
    dropping the last one (it needs the GIL) when the interpreter shuts down: that thread then aborts the process
    (SIGABRT, "terminate called without an active exception"), about 1 run in 30 on 2 busy cores (NOTES.md).
    Call it once everything is saved."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def finish_tracker(code):
    """End the tracker's run (the master process, with wandb_log): W&B marks it finished (code 0) or failed, and
    trackio writes the values it still holds. Before leave_ddp_process, whose os._exit skips their exit hooks: a
    trackio run of a DDP job that stopped on a NaN kept none of its logged values."""
    if wandb_log and master_process and tracker == 'wandb':
        wandb.finish(exit_code=code)
    elif wandb_log and master_process:
        wandb.finish()  # trackio's finish takes no exit code


def check_finite(name, value):
    """Stop the run (non-zero exit) on a NaN or inf loss, before anything is saved from it."""
    if not math.isfinite(value):
        message = (f"non-finite {name} ({value}) at iter {iter_num}: stopping; the last good checkpoint in "
                   f"{out_dir} is untouched. Try a lower learning_rate, grad_clip, or dtype='float32'.")
        finish_tracker(1)
        if ddp:  # after backward passes: sys.exit's teardown could let gloo abort the process
            print(message, file=sys.stderr)
            leave_ddp_process(1)
        sys.exit(message)


# every log line's and eval's numbers, one JSON object a line, for plot.py (written by the master process)
metrics_path = os.path.join(out_dir, 'metrics.jsonl')


def start_metrics():
    """Begin metrics.jsonl: empty for a new run. A resume keeps the records before its checkpoint's iteration:
    what a run logged after its last checkpoint (the resume repeats those iterations) and a line cut short by a
    kill are dropped, so the file reads as one uninterrupted run. Rewritten through a temp file and a rename."""
    kept = []
    if init_from == 'resume' and os.path.isfile(metrics_path):
        with open(metrics_path) as f:
            for line in f:
                try:
                    record = json.loads(line)
                except ValueError:
                    continue
                if isinstance(record, dict) and isinstance(record.get('iter'), int) and record['iter'] < iter_num:
                    kept.append(json.dumps(record) + '\n')
    with open(metrics_path + '.tmp', 'w') as f:
        f.writelines(kept)
    os.replace(metrics_path + '.tmp', metrics_path)


def log_metrics(record):
    """Append one record (a dict of JSON values) to metrics.jsonl; closing the file flushes it, so a run that
    is killed keeps every line it logged."""
    with open(metrics_path, 'a') as f:
        f.write(json.dumps(record) + '\n')


# logging
if wandb_log and master_process and tracker == 'trackio':
    import trackio as wandb  # W&B's init/log, offline: runs in SQLite under $TRACKIO_DIR (~/.cache/huggingface/trackio)
    # trackio has no run ids or modes: a resumed run continues the latest run of the same name
    run = wandb.init(project=wandb_project, name=wandb_run_name, config=config,
                     resume='allow' if init_from == 'resume' else 'never')
elif wandb_log and master_process:
    import wandb
    mode = None  # W&B's own default (online, or WANDB_MODE)
    if not os.environ.get('WANDB_API_KEY') and not wandb.api.api_key:
        print("wandb: no API key found (WANDB_API_KEY or `wandb login`): logging offline to ./wandb")
        mode = 'offline'  # passed to init: wandb reads WANDB_MODE before this point, at import
    run = wandb.init(project=wandb_project, name=wandb_run_name, config=config,
                     id=wandb_run_id or None, resume='allow', mode=mode)
    wandb_run_id = run.id

# training loop
if master_process:
    for path in remove_stale_temp_files(os.path.join(out_dir, 'ckpt.pt')):
        print(f"removed {path}, left by a save that was killed")
    start_metrics()
train_start = time.time()
batch_rng_state = torch.get_rng_state()
X, Y, L = get_batch('train', use_labels, iter_num)  # fetch the very first batch (L: the DAG's labels, if any)
t0 = time.time()
local_iter_num = 0  # number of iterations in the lifetime of this process
train_stats = {}  # the diagnostics of the last logged training step (what W&B gets at an eval)
running_mfu = -1.0
while True:

    # determine and set the learning rate for this iteration
    lr = get_lr(iter_num) if decay_lr else learning_rate
    for param_group in optimizer.param_groups:
        param_group['lr'] = lr

    # out of time (max_seconds)? then this is the last iteration: eval and checkpoint, then stop
    last = max_seconds > 0 and time.time() - train_start > max_seconds
    if ddp and max_seconds > 0:  # every process must agree, or the others would wait for gradients forever
        flag = torch.tensor(float(last), device=device)
        torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
        last = bool(flag.item())

    # evaluate the loss on train/val sets and write checkpoints (also at max_iters, so every run leaves one)
    eval_point = iter_num % eval_interval == 0 or iter_num == max_iters or last
    rng_states = gather_rng_states() if eval_point else None  # every process takes part
    if eval_point and master_process:
        losses = estimate_loss()
        print(f"step {iter_num}: train loss {losses['train']:.4f}, val loss {losses['val']:.4f}")
        check_finite('val loss', losses['val'])
        log_metrics({'kind': 'eval', 'iter': iter_num, 'train_loss': losses['train'], 'val_loss': losses['val'],
                     'lr': lr})
        if wandb_log:
            wandb.log({
                "iter": iter_num,
                "train/loss": losses['train'],
                "val/loss": losses['val'],
                "lr": lr,
                **({"mfu": running_mfu * 100} if running_mfu >= 0 else {}),  # in percent, where the peak is known
                **{f"train/{k}" if k.endswith('loss') else f"dag/{k}": v for k, v in train_stats.items()},
            })
        if losses['val'] < best_val_loss or always_save_checkpoint:
            best_val_loss = min(best_val_loss, losses['val'])
            if iter_num > 0:
                checkpoint = {
                    'model': raw_model.state_dict(),
                    'optimizer': optimizer.state_dict(),
                    'model_args': model_args,
                    'iter_num': iter_num,
                    'best_val_loss': best_val_loss,
                    'config': config,
                    'scaler': scaler.state_dict(),
                    'rng': rng_states,
                    'wandb_run_id': wandb_run_id,
                }
                print(f"saving checkpoint to {out_dir}")
                save_checkpoint(checkpoint, os.path.join(out_dir, 'ckpt.pt'))
                checkpoint = None
    if (iter_num == 0 and eval_only) or last:
        break

    # forward backward update, with optional gradient accumulation to simulate larger batch size
    # and using the GradScaler if data type is float16
    for micro_step in range(gradient_accumulation_steps):
        if ddp:
            # in DDP training we only need to sync gradients at the last micro step.
            # the official way to do this is with model.no_sync() context manager, but
            # I really dislike that this bloats the code and forces us to repeat code
            # looking at the source of that context manager, it just toggles this variable
            model.require_backward_grad_sync = (micro_step == gradient_accumulation_steps - 1)
        with ctx:
            # the model's diagnostics (0-dim tensors: LM and aux loss, the DAG's) of the step that is logged
            logged = micro_step == gradient_accumulation_steps - 1 and iter_num % log_interval == 0 and master_process
            stats = {} if logged else None
            logits, loss = model(X, Y, **L, stats=stats)
            step_rows = X.size(0)  # batch_size, or more with multi_step_windows (for MFU)
            loss = loss / gradient_accumulation_steps  # scale the loss to account for gradient accumulation
        # immediately async prefetch next batch while model is doing the forward pass on the GPU.
        # The generator state just before it is what a checkpoint saves: a resume replays this draw
        # and then the same eval as here, so it sees exactly the batches an uninterrupted run would
        batch_rng_state = torch.get_rng_state()
        X, Y, L = get_batch('train', use_labels, iter_num + (micro_step == gradient_accumulation_steps - 1))
        # backward pass, with gradient scaling if training in fp16
        scaler.scale(loss).backward()
    # clip the gradient
    if grad_clip != 0.0:
        scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    # step the optimizer and scaler if training in fp16
    scaler.step(optimizer)
    scaler.update()
    # flush the gradients as soon as we can, no need for this memory anymore
    optimizer.zero_grad(set_to_none=True)

    # timing and logging
    t1 = time.time()
    dt = t1 - t0
    t0 = t1
    if iter_num % log_interval == 0 and master_process:
        # get loss as float. note: this is a CPU-GPU sync point
        # scale up to undo the division above, approximating the true total loss (exact would have been a sum)
        lossf = loss.item() * gradient_accumulation_steps
        check_finite('train loss', lossf)
        if local_iter_num >= 5:  # let the training loop settle a bit
            mfu = raw_model.estimate_mfu(step_rows * gradient_accumulation_steps, dt, peak_flops or None)
            if mfu is not None:
                running_mfu = mfu if running_mfu == -1.0 else 0.9 * running_mfu + 0.1 * mfu
        train_stats = dict(zip(stats, torch.stack([v.float() for v in stats.values()]).tolist())) if stats else {}
        parts = f" (lm {train_stats['lm_loss']:.4f}, aux {train_stats['aux_loss']:.4f})" \
            if 'aux_loss' in train_stats else ''  # the loss is lm + dag_value_loss * aux
        # the console keeps a line short: the DAG's gate, entropy and largest value (every op's share is in
        # metrics.jsonl and W&B)
        extras = ''.join(f", {k} {v:.3g}" for k, v in train_stats.items() if not k.endswith('loss')
                         and not k.startswith('op_'))
        mfu_str = f", mfu {running_mfu * 100:.2f}%" if running_mfu >= 0 else ''
        print(f"iter {iter_num}: loss {lossf:.4f}{parts}, time {dt * 1000:.2f}ms{mfu_str}{extras}")
        log_metrics({'kind': 'train', 'iter': iter_num, 'loss': lossf, 'lr': lr, 'ms': dt * 1000,
                     **({'mfu': running_mfu * 100} if running_mfu >= 0 else {}), **train_stats})  # mfu in %
    iter_num += 1
    local_iter_num += 1

    # termination conditions
    if iter_num > max_iters:
        break

finish_tracker(0)
if ddp:
    destroy_process_group()
    leave_ddp_process(0)
