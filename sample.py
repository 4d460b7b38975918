"""
Sample from a trained model (a GPT or GPT+DAG checkpoint in out_dir) or from GPT-2 weights.

$ python sample.py --out_dir=out-shakespeare-char --start="ROMEO:" --num_samples=2 --max_new_tokens=200
$ python sample.py --init_from=gpt2 --start=FILE:prompt.txt --temperature=0   # greedy
$ python sample.py --out_dir=out-numeric --start=$'\\n12 + 345 = ' --temperature=0 --max_new_tokens=4 --num_samples=1 \
      --explain=True --explain_png=dag.png   # GPT+DAG: the numbers it read and the steps it ran, per token
"""
import os
import sys
from contextlib import nullcontext

import torch
from tqdm import tqdm

from checkpoint import compile_model, load_checkpoint, model_from_checkpoint
from configurator import check_device, configure
from tokenizer import dataset_dir, load_codec

# -----------------------------------------------------------------------------
init_from = 'resume'  # either 'resume' (from an out_dir) or a gpt2 variant (e.g. 'gpt2-xl') or a local HF dir
out_dir = 'out'  # ignored if init_from is not 'resume'
start = "\n"  # or "<|endoftext|>" or etc. Can also specify a file, use as: "FILE:prompt.txt"
num_samples = 10  # number of samples to draw
max_new_tokens = 500  # number of tokens generated in each sample
temperature = 0.8  # 1.0 = no change, < 1.0 = less random, > 1.0 = more random; 0 = greedy
top_k = 200  # retain only the top_k most likely tokens, clamp others to have 0 probability; 0 = all
seed = 1337
device = 'cuda' if torch.cuda.is_available() else 'cpu'  # examples: 'cpu', 'cuda', 'cuda:0', 'cuda:1', etc.
dtype = 'bfloat16' if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else 'float32'
compile = False  # use PyTorch 2.0 to compile the model to be faster
use_cache = True  # KV-cache generation (False re-runs the whole context for every token, as nanoGPT)
tiktoken_file = ''  # local gpt2.tiktoken ranks file, for GPT-2 BPE with no download
explain = False  # GPT+DAG: after each sample, print what the DAG read and computed for each generated token
explain_png = ''  # with explain: also draw the DAG's steps over the generated positions to this PNG file
# -----------------------------------------------------------------------------
configure(globals())
check_device(device, dtype)
if num_samples < 0 or max_new_tokens < 0 or temperature < 0 or top_k < 0:
    sys.exit(f"sample.py: num_samples ({num_samples}), max_new_tokens ({max_new_tokens}), temperature "
             f"({temperature}) and top_k ({top_k}) must be >= 0")

torch.manual_seed(seed)
torch.cuda.manual_seed(seed)
torch.backends.cuda.matmul.allow_tf32 = True  # allow tf32 on matmul
torch.backends.cudnn.allow_tf32 = True  # allow tf32 on cudnn
device_type = 'cuda' if 'cuda' in device else 'cpu'  # for later use in torch.autocast
ptdtype = {'float32': torch.float32, 'bfloat16': torch.bfloat16, 'float16': torch.float16}[dtype]
ctx = nullcontext() if dtype == 'float32' else torch.amp.autocast(device_type=device_type, dtype=ptdtype)

# model
meta_path = None
if init_from == 'resume':
    # init from a model saved in a specific directory
    ckpt_path = os.path.join(out_dir, 'ckpt.pt')
    try:
        checkpoint = load_checkpoint(ckpt_path, map_location=device)
        model = model_from_checkpoint(checkpoint)
        # the dataset's meta.pkl, if it has one, gives the character vocabulary (never a path out of data/)
        dataset = checkpoint.get('config', {}).get('dataset')
        if dataset:
            meta_path = os.path.join(dataset_dir(dataset), 'meta.pkl')
    except (FileNotFoundError, ValueError) as e:
        sys.exit(f"sample.py: {e}")
else:
    # init from a given GPT-2 model
    from model import GPT
    try:
        model = GPT.from_pretrained(init_from, dict(dropout=0.0))
    except (ValueError, OSError) as e:
        sys.exit(f"sample.py: {e}")

model.eval()
model.to(device)
if compile:
    model = compile_model(model)  # requires PyTorch 2.0 (optional)

# encode the beginning of the prompt
try:
    encode, decode = load_codec(meta_path, tiktoken_file)
    if start.startswith('FILE:'):
        if not os.path.isfile(start[5:]):
            raise FileNotFoundError(f"prompt file {start[5:]!r} not found (--start=FILE:path)")
        with open(start[5:], 'r', encoding='utf-8') as f:
            start = f.read()
    start_ids = encode(start)
except (FileNotFoundError, ValueError, RuntimeError) as e:
    sys.exit(f"sample.py: {e}")
if not start_ids:
    sys.exit("sample.py: the prompt is empty: pass --start=TEXT (e.g. --start='\\n')")
x = torch.tensor(start_ids, dtype=torch.long, device=device)[None, ...]



def explain_sample(y, prompt_len):
    """Print, for each generated token of y (1, T), what GPT+DAG's DAG did at the position that predicted it
    (DAGGPT.explain); with explain_png, draw it too: one column per generated token, one row per DAG step, the
    cell's colour its op and its text the result."""
    if not hasattr(model, 'explain'):
        sys.exit("sample.py: --explain needs a GPT+DAG checkpoint (dag_depth > 0)")
    from dag_model import OPS, format_explanation
    window = y[:, -model.config.block_size:]  # past block_size: the last window only (earlier tokens drop out)
    rows = model.explain(window, decode)
    offset = y.size(1) - window.size(1)
    positions = range(max(prompt_len - 1 - offset, 0), len(rows) - 1)
    for t in positions:
        print(format_explanation(rows[t], rows[t + 1]['token']))
    if explain_png:
        import matplotlib
        matplotlib.use('Agg')
        import matplotlib.pyplot as plt
        depth = len(rows[0]['steps'])
        ops = [[OPS.index(rows[t]['steps'][k][0]) for t in positions] for k in range(depth)]
        fig, ax = plt.subplots(figsize=(1.2 + 1.1 * len(positions), 0.8 + 0.7 * depth))
        ax.imshow(ops, cmap='tab10', vmin=0, vmax=9, aspect='auto')
        for i, t in enumerate(positions):
            for k in range(depth):
                op, a, b, v = rows[t]['steps'][k]
                ax.text(i, k, f"{op}\n{a}, {b}\n= {v}", ha='center', va='center', fontsize=6)
        ax.set_xticks(range(len(positions)), [f"-> {rows[t + 1]['token']!r}\ngate {rows[t]['gate']:.2f}"
                                              for t in positions], fontsize=7)
        ax.set_yticks(range(depth), [f"step {k + 1}" for k in range(depth)])
        ax.set_title(f"DAG steps after {decode(y[0, :prompt_len].tolist())!r}", fontsize=8)
        fig.tight_layout()
        fig.savefig(explain_png, dpi=150)
        print(f"wrote {explain_png}")


# run generation
with torch.no_grad():
    with ctx:
        for k in tqdm(range(num_samples), desc='sampling', unit='sample', leave=False, disable=num_samples < 2):
            y = model.generate(x, max_new_tokens, temperature=temperature, top_k=top_k or None,
                               use_cache=use_cache)
            print(decode(y[0].tolist()))
            if explain:
                explain_sample(y, x.size(1))
            print('---------------')
