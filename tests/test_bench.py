"""bench.py as a user runs it: GPT+DAG against the GPT of the same size, steps interleaved, and generation."""
import re

import pytest
from conftest import run_script


def test_bench_prints_both_step_times_their_ratio_and_generation(numeric_data):
    out = run_script('bench.py', '--dataset=numeric', '--dag_depth=1', '--n_layer=1', '--n_head=2', '--n_embd=32',
                     '--batch_size=2', '--block_size=16', '--train_iters=3', '--gen_new_tokens=5',
                     cwd=numeric_data).stdout
    ms = {name: float(v) for name, v in re.findall(r'^(GPT|GPT\+DAG \(dag_depth=1\)) train: ([0-9.]+) ms/iter', out,
                                                   re.M)}
    assert set(ms) == {'GPT', 'GPT+DAG (dag_depth=1)'}, out
    ratio = float(re.search(r'train step time: ([0-9.]+)x \(medians of 3 interleaved steps\)', out).group(1))
    assert ratio == pytest.approx(ms['GPT+DAG (dag_depth=1)'] / ms['GPT'], rel=0.02)  # of the printed (rounded) ms
    assert len(re.findall(r'generate 5 tokens: [0-9.,]+ tokens/s with KV cache', out)) == 2, out


def test_bench_builds_gpt_dag_with_the_key_dim_asked_for(numeric_data):
    # --dag_key_dim reaches the model: the printed parameter count is that of DAGGPT with that key dim
    import pickle

    from dag_model import DAGGPT, DAGGPTConfig
    args = ['--dataset=numeric', '--dag_depth=1', '--n_layer=1', '--n_head=2', '--n_embd=32', '--batch_size=2',
            '--block_size=16', '--train_iters=1', '--gen_new_tokens=0', '--dag_key_dim=8']
    out = run_script('bench.py', *args, cwd=numeric_data).stdout
    printed = int(re.search(r'^GPT\+DAG .* ([0-9,]+) parameters$', out, re.M).group(1).replace(',', ''))
    vocab_size = pickle.load(open(numeric_data / 'data' / 'numeric' / 'meta.pkl', 'rb'))['vocab_size']
    config = dict(n_layer=1, n_head=2, n_embd=32, block_size=16, bias=False, vocab_size=vocab_size, dag_depth=1)
    count = lambda **kw: sum(p.numel() for p in DAGGPT(DAGGPTConfig(**config, **kw)).parameters())  # noqa: E731
    assert printed == count(dag_key_dim=8) < count()
