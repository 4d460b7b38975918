"""The Shakespeare prepare scripts and GPT-2 BPE, offline from ../shared/data (figures in its README)."""
import pickle

import numpy as np

from conftest import run_script, shared_file
from tokenizer import gpt2_encoding, load_codec


def test_shakespeare_char_split_and_vocab(char_data):
    out = char_data / 'data' / 'shakespeare_char'
    train = np.fromfile(out / 'train.bin', dtype=np.uint16)
    val = np.fromfile(out / 'val.bin', dtype=np.uint16)
    assert (len(train), len(val)) == (1_003_854, 111_540)
    meta = pickle.load(open(out / 'meta.pkl', 'rb'))
    assert meta['vocab_size'] == 65
    assert ''.join(meta['itos'][i] for i in train[:14]) == 'First Citizen:'
    encode, decode = load_codec(str(out / 'meta.pkl'))
    assert decode(encode('ROMEO: hi')) == 'ROMEO: hi'


def test_gpt2_bpe_offline_from_ranks_file():
    enc = gpt2_encoding(shared_file('gpt2', 'gpt2.tiktoken'))
    assert enc.encode('hello world') == [31373, 995]
    assert enc.encode('<|endoftext|>', allowed_special='all') == [50256]
    assert enc.n_vocab == 50257


def test_shakespeare_bpe_counts(tmp_path):
    run_script('data/shakespeare/prepare.py', '--input', shared_file('tinyshakespeare', 'input.txt'),
               '--tiktoken_file', shared_file('gpt2', 'gpt2.tiktoken'), '--out_dir', tmp_path, cwd=tmp_path)
    train = np.fromfile(tmp_path / 'train.bin', dtype=np.uint16)
    val = np.fromfile(tmp_path / 'val.bin', dtype=np.uint16)
    assert (len(train), len(val)) == (301_966, 36_059)


def test_missing_input_is_a_clear_error(tmp_path):
    proc = run_script('data/shakespeare_char/prepare.py', '--input', tmp_path / 'nope.txt', '--out_dir', tmp_path,
                      cwd=tmp_path, check=False)
    assert proc.returncode != 0 and 'not found' in proc.stderr
