"""
Prepare the Shakespeare dataset for character-level language modeling, as nanoGPT does: instead of encoding
with GPT-2 BPE tokens, we just map characters to ints. Will save train.bin, val.bin containing the ids, and
meta.pkl containing the encoder and decoder and some other related info.

$ python data/shakespeare_char/prepare.py --input ../shared/data/tinyshakespeare/input.txt   # offline
$ python data/shakespeare_char/prepare.py                                                     # downloads
"""
import argparse
import os
import pickle
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..'))
from tokenizer import read_text  # noqa: E402

URL = 'https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt'


def prepare(input_path=None, out_dir=os.path.dirname(os.path.abspath(__file__))):
    """Write train.bin / val.bin (uint16 char ids, 90/10 split) and meta.pkl to out_dir; return the counts."""
    data = read_text(input_path, URL, os.path.join(out_dir, 'input.txt'))
    print(f"length of dataset in characters: {len(data):,}")

    # get all the unique characters that occur in this text
    chars = sorted(list(set(data)))
    vocab_size = len(chars)
    print("all the unique characters:", ''.join(chars))
    print(f"vocab size: {vocab_size:,}")

    # create a mapping from characters to integers
    stoi = {ch: i for i, ch in enumerate(chars)}
    itos = {i: ch for i, ch in enumerate(chars)}

    # create the train and test splits
    n = len(data)
    train_ids = np.array([stoi[c] for c in data[:int(n * 0.9)]], dtype=np.uint16)
    val_ids = np.array([stoi[c] for c in data[int(n * 0.9):]], dtype=np.uint16)
    print(f"train has {len(train_ids):,} tokens")
    print(f"val has {len(val_ids):,} tokens")

    os.makedirs(out_dir, exist_ok=True)
    train_ids.tofile(os.path.join(out_dir, 'train.bin'))
    val_ids.tofile(os.path.join(out_dir, 'val.bin'))
    with open(os.path.join(out_dir, 'meta.pkl'), 'wb') as f:
        pickle.dump({'vocab_size': vocab_size, 'itos': itos, 'stoi': stoi}, f)
    return {'train': len(train_ids), 'val': len(val_ids), 'vocab_size': vocab_size}


if __name__ == '__main__':
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--input', help='local text file to use instead of downloading Tiny Shakespeare')
    parser.add_argument('--out_dir', default=os.path.dirname(os.path.abspath(__file__)))
    args = parser.parse_args()
    try:
        prepare(args.input, args.out_dir)
    except (FileNotFoundError, RuntimeError) as e:  # a missing --input or --tiktoken_file, a failed download
        sys.exit(f"prepare.py: {e}")
