"""train.py's metrics.jsonl (written, continued by a resume, restarted by a new run) and plot.py's PNG from it."""
import json

import pytest

from conftest import run_script
from test_train import TINY, eval_losses, losses


def read_records(out_dir):
    return [json.loads(line) for line in (out_dir / 'metrics.jsonl').read_text().splitlines()]


def assert_png(path):
    """path is a PNG file with more in it than an empty canvas."""
    data = path.read_bytes()
    assert data[:8] == b'\x89PNG\r\n\x1a\n' and len(data) > 5000, (path, len(data))


@pytest.fixture(scope='module')
def resumed_run(char_data):
    """out-metrics: 6 iterations with evals every 3, then resumed to 9; (the two runs' stdout, the out_dir)."""
    common = [*TINY, '--eval_interval=3', '--out_dir=out-metrics']
    first = run_script('train.py', *common, '--max_iters=6', cwd=char_data)
    resumed = run_script('train.py', *common, '--max_iters=9', '--init_from=resume', cwd=char_data)
    return first.stdout, resumed.stdout, char_data / 'out-metrics'


def test_metrics_jsonl_has_every_log_line_and_eval_and_a_resume_continues_it(resumed_run):
    first, resumed, out_dir = resumed_run
    records = read_records(out_dir)
    train = [r for r in records if r['kind'] == 'train']
    evals = [r for r in records if r['kind'] == 'eval']
    # the resume starts at the checkpoint (iter 6): what the first run logged from there on is replaced, once
    assert [r['iter'] for r in train] == list(range(10)) and [r['iter'] for r in evals] == [0, 3, 6, 9]
    console = {**losses(first), **losses(resumed)}
    assert {r['iter']: round(r['loss'], 4) for r in train} == console  # the numbers printed, in full precision
    assert [round(r['val_loss'], 4) for r in evals] == eval_losses(first)[:2] + eval_losses(resumed)
    assert all({'lr', 'ms', 'lm_loss'} <= set(r) and 'mfu' not in r for r in train)  # no MFU on a CPU
    assert all(set(r) == {'kind', 'iter', 'train_loss', 'val_loss', 'lr'} for r in evals)


def test_a_new_run_starts_a_new_metrics_file(char_data):
    out_dir = char_data / 'out-metrics-new'
    out_dir.mkdir()
    (out_dir / 'metrics.jsonl').write_text('{"kind": "train", "iter": 0, "loss": 9.9}\n' * 3)  # an earlier run's
    run_script('train.py', *TINY, '--max_iters=1', '--eval_interval=100', f'--out_dir={out_dir.name}', cwd=char_data)
    assert [(r['kind'], r['iter']) for r in read_records(out_dir)] == \
        [('eval', 0), ('train', 0), ('eval', 1), ('train', 1)]
    assert all(r.get('loss') != 9.9 for r in read_records(out_dir))


def test_plot_draws_two_runs(resumed_run, tmp_path):
    other = tmp_path / 'out-other'
    other.mkdir()
    (other / 'metrics.jsonl').write_text(''.join(
        json.dumps({'kind': kind, 'iter': i, 'loss': 4 - i / 10, 'val_loss': 4.1 - i / 10}) + '\n'
        for i in range(10) for kind in (['eval'] if i % 3 == 0 else []) + ['train']))
    proc = run_script('plot.py', f'--out_dirs={resumed_run[2]},{other}', '--out=runs.png', cwd=tmp_path)
    assert 'wrote runs.png' in proc.stdout
    assert_png(tmp_path / 'runs.png')


@pytest.mark.parametrize('content, message', [
    (None, 'no metrics file at out-bad/metrics.jsonl: train.py writes it'),
    ('{"kind": "train", "iter": 0, "loss": 4.2}\n{"kind": "train", "iter": 1, "lo', 'line 2: not a JSON object'),
    ('{"kind": "train", "loss": 4.2}\n', "line 1: a record needs 'kind' ('train' or 'eval') and an int 'iter'"),
    ('\n', 'has no records'),
    ('{"kind": "train", "iter": 0, "loss": 4.2}\n', "no run has 'val_loss' in its metrics.jsonl; its keys are loss"),
])
def test_plot_bad_metrics_file_gets_one_line(tmp_path, content, message):
    if content is not None:
        (tmp_path / 'out-bad').mkdir()
        (tmp_path / 'out-bad' / 'metrics.jsonl').write_text(content)
    proc = run_script('plot.py', '--out_dirs=out-bad', cwd=tmp_path, check=False)
    assert proc.returncode != 0 and message in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and 'Traceback' not in proc.stderr
    assert not (tmp_path / 'loss.png').exists()
