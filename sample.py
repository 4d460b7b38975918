"""
Sample from a trained model (a GPT or GPT+DAG checkpoint in out_dir) or from GPT-2 weights.

$ python sample.py --out_dir=out-shakespeare-char --start="ROMEO:" --num_samples=2 --max_new_tokens=200
$ python sample.py --init_from=gpt2 --start=FILE:prompt.txt --temperature=0   # greedy
"""
import os
from contextlib import nullcontext

import torch

from checkpoint import load_checkpoint, model_from_checkpoint
from configurator import configure
from tokenizer import load_codec

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
# -----------------------------------------------------------------------------
configure(globals())

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
    checkpoint = load_checkpoint(os.path.join(out_dir, 'ckpt.pt'), map_location=device)
    model = model_from_checkpoint(checkpoint)
    # the dataset's meta.pkl, if it has one, gives the character vocabulary
    dataset = checkpoint.get('config', {}).get('dataset')
    if dataset:
        meta_path = os.path.join('data', dataset, 'meta.pkl')
else:
    # init from a given GPT-2 model
    from model import GPT
    model = GPT.from_pretrained(init_from, dict(dropout=0.0))

model.eval()
model.to(device)
if compile:
    model = torch.compile(model)  # requires PyTorch 2.0 (optional)

encode, decode = load_codec(meta_path, tiktoken_file)

# encode the beginning of the prompt
if start.startswith('FILE:'):
    with open(start[5:], 'r', encoding='utf-8') as f:
        start = f.read()
start_ids = encode(start)
x = torch.tensor(start_ids, dtype=torch.long, device=device)[None, ...]

# run generation
with torch.no_grad():
    with ctx:
        for k in range(num_samples):
            y = model.generate(x, max_new_tokens, temperature=temperature, top_k=top_k or None,
                               use_cache=use_cache)
            print(decode(y[0].tolist()))
            print('---------------')
