"""Bad input to every script: a non-zero exit, one line on stderr that names the problem, and no traceback.

Each row of BAD_INPUTS is (script, arguments, words the message must contain). They run in one working directory
(`work`, below) holding a tiny character dataset, a small GPT checkpoint and damaged copies of it, and problems
files with a bad line, all made here in a second, so the table costs one Python start-up per row."""
import json
import os
import pickle

import numpy as np
import pytest
import torch

from checkpoint import save_checkpoint
from conftest import run_script
from model import GPT, GPTConfig

VOCAB = sorted(set('abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ:;,.!? \n'))
ARGS = dict(n_layer=1, n_head=2, n_embd=16, block_size=16, bias=False, vocab_size=len(VOCAB), dropout=0.0,
            dag_depth=0)
TINY = ['--device=cpu', '--compile=False', '--n_layer=1', '--n_head=2', '--n_embd=16', '--block_size=16',
        '--batch_size=2', '--gradient_accumulation_steps=1', '--eval_iters=1', '--max_iters=1']


def write_checkpoint(path, model, model_args=ARGS, dataset='shakespeare_char'):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    save_checkpoint({'model': model.state_dict(), 'model_args': model_args, 'iter_num': 1, 'best_val_loss': 9.0,
                     'config': {'dataset': dataset}}, path)


class RunsCode:
    """Unpickling this calls open(MARKER, 'w'): what a crafted meta.pkl would do (os.system works the same way)."""

    def __reduce__(self):
        return (open, (os.path.abspath('pwned'), 'w'))


@pytest.fixture(scope='module')
def work(tmp_path_factory):
    work = tmp_path_factory.mktemp('bad')
    data = work / 'data' / 'shakespeare_char'
    data.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for split in ('train', 'val'):
        rng.integers(0, len(VOCAB), 500).astype(np.uint16).tofile(data / f'{split}.bin')
    with open(data / 'meta.pkl', 'wb') as f:
        pickle.dump({'vocab_size': len(VOCAB), 'itos': dict(enumerate(VOCAB)),
                     'stoi': {c: i for i, c in enumerate(VOCAB)}}, f)
    evil = work / 'data' / 'evil'
    evil.mkdir()
    cwd = os.getcwd()
    os.chdir(work)  # RunsCode writes ./pwned relative to the directory it is pickled in
    try:
        with open(evil / 'meta.pkl', 'wb') as f:
            pickle.dump({'vocab_size': 3, 'itos': RunsCode(), 'stoi': {}}, f)
    finally:
        os.chdir(cwd)

    torch.manual_seed(0)
    model = GPT(GPTConfig(**{k: v for k, v in ARGS.items() if k != 'dag_depth'}))
    write_checkpoint(str(work / 'out-good' / 'ckpt.pt'), model)
    good = (work / 'out-good' / 'ckpt.pt').read_bytes()
    for name, damaged in [('truncated', good[:len(good) // 2]), ('empty', b''), ('garbage', b'not a ckpt' * 9)]:
        (work / f'out-{name}').mkdir()
        (work / f'out-{name}' / 'ckpt.pt').write_bytes(damaged)
    write_checkpoint(str(work / 'out-mismatch' / 'ckpt.pt'), model, {**ARGS, 'n_embd': 32})
    write_checkpoint(str(work / 'out-escape' / 'ckpt.pt'), model, dataset='../../outside')
    write_checkpoint(str(work / 'out-evil' / 'ckpt.pt'), model, dataset='evil')
    write_checkpoint(str(work / 'out-bpe' / 'ckpt.pt'), model, dataset='')

    problem = {'prompt': 'ab', 'answer': 'c', 'split': 'test', 'op': 'add', 'digits': 1}
    (work / 'problems-good.jsonl').write_text(json.dumps(problem) + '\n')
    (work / 'problems-bad.jsonl').write_text(json.dumps(problem) + '\n{"prompt": "ab", "answer": \n')
    (work / 'problems-euro.jsonl').write_text(json.dumps({**problem, 'prompt': '5 € = '}) + '\n')
    (work / 'problems-number.jsonl').write_text(json.dumps({**problem, 'answer': 15}) + '\n')
    return work


OFFLINE = {'TIKTOKEN_CACHE_DIR': 'empty-cache', 'HTTPS_PROXY': 'http://127.0.0.1:9', 'HTTP_PROXY': 'http://127.0.0.1:9',
           'HF_HUB_OFFLINE': '1'}

BAD_INPUTS = [
    ('train.py', ['--n_layers=2'], 'n_layer'),
    ('train.py', [*TINY, '--init_from=resume', '--out_dir=out-none'], 'no checkpoint'),
    ('train.py', [*TINY, '--init_from=resume', '--out_dir=out-truncated'], 'corrupt or truncated'),
    ('train.py', [*TINY, '--init_from=resume', '--out_dir=out-empty'], 'corrupt or truncated'),
    ('train.py', [*TINY, '--init_from=resume', '--out_dir=out-garbage'], 'corrupt or truncated'),
    ('train.py', [*TINY, '--init_from=resume', '--out_dir=out-mismatch'], 'do not fit'),
    ('train.py', [*TINY, '--n_embd=30', '--n_head=4'], 'not divisible by --n_head=4'),
    ('train.py', [*TINY, '--eval_interval=0'], '--eval_interval=0'),
    ('train.py', [*TINY, '--dag_depth=2', '--dag_key_dim=-8'], '--dag_key_dim=-8: use 0 for n_embd'),
    ('train.py', [*TINY, '--eval_iters=0'], '--eval_iters=0'),
    ('train.py', [*TINY, '--line_windows=True', '--line_margin=-1'], '--line_margin=-1'),
    ('train.py', [*TINY, '--line_windows=True', '--block_size=499'], 'no newline token where a window'),
    ('train.py', [*TINY, '--multi_step_windows=-1'], '--multi_step_windows=-1'),
    ('train.py', [*TINY, '--multi_step_from=1.5'], '--multi_step_from=1.5'),
    ('train.py', [*TINY, '--dag_depth=2', '--dag_train_positions=0'], '--dag_train_positions=0.0: use a share'),
    ('bench.py', ['--dag_depth=2', '--dag_train_positions=1.5'], '--dag_train_positions=1.5: use a share'),
    ('train.py', [*TINY, '--multi_step_windows=4'], 'needs the step labels'),  # at the start, not halfway
    ('train.py', [*TINY, '--gradient_accumulation_steps=0'], '--gradient_accumulation_steps=0'),
    ('train.py', [*TINY, '--batch_size=0'], '--batch_size=0'),
    ('train.py', [*TINY, '--dtype=float64'], "--dtype='float64'"),
    ('train.py', [*TINY, '--device=cuda'], 'no CUDA GPU'),
    ('train.py', [*TINY, '--dag_depth=-1'], '--dag_depth=-1'),
    ('train.py', ['--NO_OP=3'], "unknown config key 'NO_OP'"),  # an imported constant is no setting
    ('bench.py', ['--dag_depth=-1'], 'bench.py: --dag_depth=-1'),  # it benchmarked a plain GPT
    ('bench.py', ['--batch_size=0'], 'bench.py: --batch_size=0'),  # it timed empty batches: "0 tokens/s"
    ('bench.py', ['--train_iters=0'], 'bench.py: --train_iters=0'),
    ('train.py', [*TINY, '--dataset=../../etc'], 'inside data/'),
    ('train.py', [*TINY, '--dataset=nowhere'], 'prepare the data first'),
    ('train.py', [*TINY, '--init_from=gpt2'], 'character vocabulary'),
    ('sample.py', ['--out_dir=out-none', '--device=cpu'], 'no checkpoint'),
    ('sample.py', ['--out_dir=out-truncated', '--device=cpu'], 'corrupt or truncated'),
    ('sample.py', ['--out_dir=out-mismatch', '--device=cpu'], 'do not fit'),
    ('sample.py', ['--out_dir=out-good', '--device=cpu', '--start=50% off'], "'%'"),
    ('sample.py', ['--out_dir=out-good', '--device=cpu', '--start=FILE:missing.txt'], 'missing.txt'),
    ('sample.py', ['--out_dir=out-good', '--device=cpu', '--start='], 'the prompt is empty'),
    ('sample.py', ['--out_dir=out-escape', '--device=cpu'], 'inside data/'),
    ('sample.py', ['--out_dir=out-evil', '--device=cpu'], 'refusing'),
    ('sample.py', ['--out_dir=out-bpe', '--device=cpu'], '--tiktoken_file'),
    ('sample.py', ['--out_dir=out-good', '--device=cuda'], 'no CUDA GPU'),
    ('eval_numeric.py', ['--out_dir=out-none'], 'no checkpoint'),
    ('eval_numeric.py', ['--out_dir=out-empty'], 'corrupt or truncated'),
    ('eval_numeric.py', ['--out_dir=out-escape'], 'inside data/'),
    ('eval_numeric.py', ['--out_dir=out-evil', '--problems=problems-good.jsonl'], 'refusing'),
    ('eval_numeric.py', ['--out_dir=out-good', '--problems=problems-bad.jsonl'], 'problems-bad.jsonl line 2'),
    ('eval_numeric.py', ['--out_dir=out-good', '--problems=problems-number.jsonl'], "'answer' must be a string"),
    ('eval_numeric.py', ['--out_dir=out-good', '--suite=everything'], 'unknown suite'),
    ('eval_numeric.py', ['--out_dir=out-good', '--problems=problems-euro.jsonl'], "'€'"),
    ('eval_numeric.py', ['--out_dir=out-good', '--batch_size=0'], '--batch_size=0'),  # was a traceback
    ('eval_numeric.py', ['--out_dir=out-good', '--max_problems=-5'], '--max_problems=-5'),
    ('compare_numeric.py', ['--seconds=-3'], '--seconds=-3'),  # it trained the config's max_iters instead
    ('compare_numeric.py', ['--seeds=1337,x'], "--seeds='1337,x'"),
    ('compare_numeric.py', ['--seeds=1337,1337'], 'name a run twice'),  # it trained seed 1337 twice, counted twice
    ('compare_numeric.py', ['--models=gpt,gpt'], 'name a run twice'),
    ('data/shakespeare_char/prepare.py', ['--input=missing.txt', '--out_dir=prep'], 'missing.txt not found'),
    ('data/shakespeare/prepare.py', ['--input=missing.txt', '--out_dir=prep'], 'missing.txt not found'),
    ('data/numeric/prepare.py', ['--tokenizer=gpt2', '--tiktoken_file=missing.tiktoken', '--out_dir=prep'],
     'missing.tiktoken not found'),
    ('data/numeric/prepare.py', ['--max_digits=13', '--out_dir=prep'], 'max_digits'),
    ('data/numeric/prepare.py', ['--n_train=-5', '--out_dir=prep'], 'n_train=-5'),  # was 'need at least one array'
    ('data/numeric/prepare.py', ['--n_test=-1', '--out_dir=prep'], 'n_test=-1'),  # wrote a corpus, exit 0
    ('data/numeric/prepare.py', ['--prose=missing.txt', '--out_dir=prep'], 'no prose file missing.txt'),
]


@pytest.mark.parametrize('script,args,words', BAD_INPUTS, ids=[f'{s} {" ".join(a[-2:])}' for s, a, _ in BAD_INPUTS])
def test_bad_input_gives_one_clear_line(work, script, args, words):
    proc = run_script(script, *args, cwd=work, check=False, env=OFFLINE, timeout=60)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode != 0, proc.stdout[-2000:]
    assert 'Traceback' not in proc.stderr and len(lines) == 1, proc.stderr
    assert words in lines[0], lines[0]
    assert not (work / 'pwned').exists(), "a data file ran code"
