"""
Text to token ids and back: a dataset's character vocabulary (its meta.pkl, as nanoGPT writes it) or GPT-2's
BPE through tiktoken, which also works offline from a local `gpt2.tiktoken` ranks file; the newline tokens that
train.py's line_windows and multi_step_windows start windows near, and that draw (importable, so tests check it);
plus fetching a text file for the prepare scripts (a local copy, or a download with a progress bar).

Files a user did not write are data: `meta.pkl` is read by an unpickler that accepts only plain values (no class,
no function, so no code runs), and a dataset name that a checkpoint or a setting gives must stay inside data/.
"""

import os
import pickle

import numpy as np


class _PlainUnpickler(pickle.Unpickler):
    """Unpickles only dicts, lists, tuples, strings, numbers, booleans and None: any global (a class, a
    function such as os.system) is refused, so a crafted file cannot run code."""

    def find_class(self, module, name):
        raise pickle.UnpicklingError(f"refusing {module}.{name}: a vocabulary holds only plain values")


def load_meta(meta_path):
    """A dataset's vocabulary from nanoGPT's meta.pkl, read as data: a dict with 'vocab_size' (int) and, for a
    character vocabulary, 'stoi' (str -> int) and 'itos' (int -> str).

    Raises ValueError naming the file when it is not such a dict (or holds anything but plain values)."""
    try:
        with open(meta_path, 'rb') as f:
            meta = _PlainUnpickler(f).load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, IndexError, KeyError) as e:
        raise ValueError(f"{meta_path} is not a vocabulary file ({e}); regenerate it with the dataset's "
                         f"prepare.py") from e
    if not isinstance(meta, dict) or not isinstance(meta.get('vocab_size'), int):
        raise ValueError(f"{meta_path} is not a vocabulary file (no integer 'vocab_size'); regenerate it with "
                         f"the dataset's prepare.py")
    return meta


def dataset_dir(dataset):
    """data/<dataset>, for a dataset name such as 'shakespeare_char' or 'numeric'.

    Raises ValueError for a name that would lead out of data/ (an absolute path, '..'), which a crafted
    checkpoint could otherwise use to point the scripts at files anywhere."""
    root = os.path.realpath('data')
    path = os.path.join('data', dataset)
    if not dataset or os.path.isabs(dataset) or os.path.commonpath([root, os.path.realpath(path)]) != root \
            or os.path.realpath(path) == root:
        raise ValueError(f"dataset {dataset!r} is not a directory name inside data/: use a name such as "
                         f"'shakespeare_char' or 'numeric'")
    return path


def gpt2_encoding(tiktoken_file=None):
    """GPT-2's BPE as a tiktoken.Encoding. With tiktoken_file (a local ranks file in tiktoken's format, e.g.
    gpt2.tiktoken, identical to r50k_base) nothing is downloaded; without it tiktoken fetches its files
    (or uses its cache). Raises FileNotFoundError for a missing tiktoken_file."""
    import tiktoken
    if not tiktoken_file:
        try:
            return tiktoken.get_encoding("gpt2")
        except Exception as e:  # requests' ConnectionError, a timeout, a broken cache ...
            raise RuntimeError(f"could not load GPT-2's BPE ranks ({type(e).__name__}); with no network pass "
                               f"--tiktoken_file=PATH to a local gpt2.tiktoken file") from e
    if not os.path.isfile(tiktoken_file):
        raise FileNotFoundError(f"GPT-2 ranks file {tiktoken_file} not found: pass the path of a gpt2.tiktoken "
                                f"(r50k_base) file, or leave it empty to let tiktoken download its own")
    from tiktoken.load import load_tiktoken_bpe
    from tiktoken_ext.openai_public import ENDOFTEXT, r50k_pat_str
    return tiktoken.Encoding(name="gpt2", pat_str=r50k_pat_str, mergeable_ranks=load_tiktoken_bpe(tiktoken_file),
                             special_tokens={ENDOFTEXT: 50256}, explicit_n_vocab=50257)


def load_codec(meta_path=None, tiktoken_file=None):
    """(encode, decode) for a dataset: its character vocabulary when meta_path exists, else GPT-2 BPE.

    encode: str -> list[int]; decode: list[int] -> str. Raises ValueError for a meta.pkl that is not a
    character vocabulary (load_meta), and from encode, naming a character that is not in the vocabulary;
    RuntimeError when GPT-2's BPE cannot be loaded (gpt2_encoding)."""
    if meta_path and os.path.exists(meta_path):
        print(f"Loading meta from {meta_path}...")
        meta = load_meta(meta_path)
        stoi, itos = meta.get('stoi'), meta.get('itos')
        if not isinstance(stoi, dict) or not isinstance(itos, dict):
            raise ValueError(f"{meta_path} has no character vocabulary ('stoi' and 'itos' dicts)")

        def encode(s):
            missing = sorted(set(c for c in s if c not in stoi))
            if missing:
                raise ValueError(f"characters {missing} are not in the vocabulary of {meta_path}; "
                                 f"use only these: {''.join(sorted(stoi))!r}")
            return [stoi[c] for c in s]
        return encode, lambda ids: ''.join(itos[i] for i in ids)
    print("No meta.pkl found, assuming GPT-2 encodings...")
    enc = gpt2_encoding(tiktoken_file)
    return (lambda s: enc.encode(s, allowed_special={"<|endoftext|>"})), enc.decode


def token_texts(meta_path=None, tiktoken_file=None):
    """The text of every token id (list of str): a dataset's character vocabulary (itos of its meta.pkl) when
    meta_path exists, else GPT-2's 50257 tokens, each decoded alone (a byte that is part of a longer UTF-8 character
    becomes U+FFFD). What GPT+DAG's value extractor reads digits from (dag_model.number_tables). Raises as
    load_codec."""
    if meta_path and os.path.exists(meta_path):
        itos = load_meta(meta_path).get('itos')
        if not isinstance(itos, dict):
            raise ValueError(f"{meta_path} has no character vocabulary ('itos' dict)")
        return [itos.get(i, '') for i in range(max(itos) + 1)]
    enc = gpt2_encoding(tiktoken_file)
    return [enc.decode_single_token_bytes(i).decode('utf-8', errors='replace') for i in range(enc.n_vocab)]


def newline_ids(meta_path=None, tiktoken_file=None):
    """The ids (list of int) of the tokens whose text is exactly a newline: a character vocabulary's '\\n', GPT-2's
    198 (train.py's line_windows start batch windows near them). Raises as load_codec."""
    return [i for i, text in enumerate(token_texts(meta_path, tiktoken_file)) if text == '\n']


def line_starts(tokens, ids, block_size, holding=None):
    """The offsets (1-D int64 array, ascending) of the tokens of tokens (1-D array of token ids) whose id is one of
    ids (newline_ids) and after which a window of block_size + 1 tokens fits: where line_windows draws windows.
    With holding (1-D int array of token offsets), only the newlines that start a line holding one of them (the
    last newline before each; train.py's multi_step_windows)."""
    offsets = np.flatnonzero(np.isin(tokens, ids))
    if holding is not None:
        before = np.searchsorted(offsets, holding) - 1  # the last newline before each held offset (-1: none)
        offsets = np.unique(offsets[before[before >= 0]])
    return offsets[offsets < len(tokens) - block_size]


def draw_line_windows(starts, batch_size, margin):
    """batch_size window offsets (batch_size,) long for train.py's line_windows (and multi_step_windows): each a
    random one of starts (1-D long tensor: line_starts' array, torch.from_numpy), moved back 0..margin tokens
    (uniform, not below 0), so a line is seen whole while positions stay varied. Draws from torch's global
    generator, as nanoGPT's random offsets do, so a seed repeats it (and a checkpoint's generator state resumes it)."""
    import torch  # here, not at the top: the prepare scripts that read text through this module need no torch
    ix = starts[torch.randint(len(starts), (batch_size,))]
    return (ix - torch.randint(margin + 1, (batch_size,))).clamp(min=0)


def read_text(input_path, url, cache_path):
    """The text of input_path when given; else of cache_path, downloading url there first if it is missing.

    Raises FileNotFoundError for a missing input_path, and RuntimeError (saying to pass --input) when the
    download fails, e.g. on a machine with no network."""
    if input_path:
        if not os.path.isfile(input_path):
            raise FileNotFoundError(f"input file {input_path} not found: pass the path of a local copy of the "
                                    f"text to --input, or leave --input out to download it")
        path = input_path
    else:
        if not os.path.exists(cache_path):
            download(url, cache_path)
        path = cache_path
    with open(path, 'r', encoding='utf-8') as f:
        return f.read()


def download(url, path):
    """Stream url to path with a tqdm progress bar; written to a temp file and renamed when complete."""
    import requests
    from tqdm import tqdm
    tmp = path + '.part'
    try:
        with requests.get(url, stream=True, timeout=30) as r:
            r.raise_for_status()
            total = int(r.headers.get('content-length', 0)) or None
            with open(tmp, 'wb') as f, tqdm(total=total, unit='B', unit_scale=True, desc=os.path.basename(path)) as bar:
                for chunk in r.iter_content(chunk_size=1 << 16):
                    f.write(chunk)
                    bar.update(len(chunk))
        os.replace(tmp, path)
    except Exception as e:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise RuntimeError(f"could not download {url} ({e}); with no network, pass a local copy with --input") from e
