"""compare_numeric.py end to end on a tiny corpus: every model and seed trains, is scored, is summarised and
drawn."""
import json
import re

import torch

from conftest import run_script
from test_plot import assert_png


def test_compare_runs_each_model_and_seed(tmp_path):
    run_script('data/numeric/prepare.py', '--out_dir', tmp_path / 'data' / 'numeric', '--n_train=2000',
               '--n_val=200', '--n_test=20', '--n_extrap=10', '--n_phrasing=10', cwd=tmp_path)
    proc = run_script('compare_numeric.py', '--iters=3', '--seeds=1,2', '--models=gpt4,dag-nolabels',
                      '--train_args=--n_layer=1 --n_embd=32 --batch_size=4 --eval_iters=2', cwd=tmp_path)
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary['iters'] == 3 and set(summary['models']) == {'gpt4', 'dag-nolabels'}
    for name, model in summary['models'].items():
        assert [r['seed'] for r in model['runs']] == [1, 2] and all(r['iters'] == 3 for r in model['runs'])
        assert all(0 <= model[split]['mean'] <= 1 for split in ('test', 'extrap', 'phrasing'))
        assert model['ms_per_iter']['mean'] > 0
    assert summary['models']['dag-nolabels']['n_params'] > summary['models']['gpt4']['n_params']
    for name, flushed in (('gpt4', False), ('dag-nolabels', True)):  # the labels-off run flushes denormals (speed)
        config = torch.load(tmp_path / 'out-compare' / f'{name}-1' / 'ckpt.pt', weights_only=True)['config']
        assert config['flush_denormal'] is flushed and 'NO_OP' not in config  # settings only, no constants
    assert re.search(r'^\[gpt4-1\] iter 3: loss [\d.]+', proc.stdout, re.M)  # each run's lines as they come
    assert re.search(r'^\[dag-nolabels-2\] step 3: train loss [\d.]+, val loss', proc.stdout, re.M)
    assert 'wrote out-compare/compare.png' in proc.stdout
    assert_png(tmp_path / 'out-compare' / 'compare.png')


def test_compare_trains_the_configs_max_iters_unless_told_and_refuses_a_negative_count(tmp_path):
    """Without --iters each run trains the config's max_iters (here the one --train_args sets after the config), and
    the summary says how many; --iters=-1 stops with one line."""
    run_script('data/numeric/prepare.py', '--out_dir', tmp_path / 'data' / 'numeric', '--n_train=2000',
               '--n_val=200', '--n_test=20', '--n_extrap=10', '--n_phrasing=10', cwd=tmp_path)
    proc = run_script('compare_numeric.py', '--seeds=1', '--models=gpt4',
                      '--train_args=--n_layer=1 --n_embd=32 --batch_size=4 --eval_iters=2 --max_iters=4 '
                      '--lr_decay_iters=4 --eval_interval=2', cwd=tmp_path)
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary['iters'] == 4 and summary['models']['gpt4']['runs'][0]['iters'] == 4
    bad = run_script('compare_numeric.py', '--iters=-1', cwd=tmp_path, check=False)
    assert bad.returncode != 0 and '--iters=-1' in bad.stderr and 'Traceback' not in bad.stderr
