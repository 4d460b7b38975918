"""
Prepare Tiny Shakespeare with GPT-2 BPE tokens, as nanoGPT does: train.bin and val.bin hold uint16 token ids
(90/10 split); there is no meta.pkl, so train.py and sample.py use GPT-2's vocabulary.

$ python data/shakespeare/prepare.py --input ../shared/data/tinyshakespeare/input.txt \
      --tiktoken_file ../shared/data/gpt2/gpt2.tiktoken                                  # fully offline
$ python data/shakespeare/prepare.py                                                     # downloads both
"""
import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..'))
from tokenizer import gpt2_encoding, read_text  # noqa: E402

URL = 'https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt'


def prepare(input_path=None, tiktoken_file=None, out_dir=os.path.dirname(os.path.abspath(__file__))):
    """Write train.bin / val.bin (uint16 GPT-2 token ids) to out_dir; return the token counts."""
    data = read_text(input_path, URL, os.path.join(out_dir, 'input.txt'))
    n = len(data)
    train_data = data[:int(n * 0.9)]
    val_data = data[int(n * 0.9):]

    # encode with tiktoken gpt2 bpe
    enc = gpt2_encoding(tiktoken_file)
    train_ids = np.array(enc.encode_ordinary(train_data), dtype=np.uint16)
    val_ids = np.array(enc.encode_ordinary(val_data), dtype=np.uint16)
    print(f"train has {len(train_ids):,} tokens")
    print(f"val has {len(val_ids):,} tokens")

    os.makedirs(out_dir, exist_ok=True)
    train_ids.tofile(os.path.join(out_dir, 'train.bin'))
    val_ids.tofile(os.path.join(out_dir, 'val.bin'))
    return {'train': len(train_ids), 'val': len(val_ids)}


if __name__ == '__main__':
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--input', help='local text file to use instead of downloading Tiny Shakespeare')
    parser.add_argument('--tiktoken_file', help='local gpt2.tiktoken ranks file, so no BPE files are downloaded')
    parser.add_argument('--out_dir', default=os.path.dirname(os.path.abspath(__file__)))
    args = parser.parse_args()
    try:
        prepare(args.input, args.tiktoken_file, args.out_dir)
    except (FileNotFoundError, RuntimeError) as e:  # a missing --input or --tiktoken_file, a failed download
        sys.exit(f"prepare.py: {e}")
