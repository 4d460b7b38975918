"""train.py end to end in subprocesses on Tiny Shakespeare (characters), with a tiny model."""
import hashlib
import json
import os
import pickle
import re
import socket
import sqlite3
import subprocess
import sys

import numpy as np
import pytest
import torch

from conftest import ROOT, run_script
from tokenizer import draw_line_windows, line_starts

TINY = ['--device=cpu', '--compile=False', '--dataset=shakespeare_char', '--n_layer=2', '--n_head=2', '--n_embd=32',
        '--block_size=32', '--batch_size=8', '--gradient_accumulation_steps=1', '--eval_iters=4',
        '--learning_rate=3e-3', '--warmup_iters=5', '--lr_decay_iters=60', '--min_lr=3e-4', '--log_interval=1',
        '--dropout=0.0']


def losses(stdout):
    """{iter: train loss} from the lines 'iter N: loss X, ...'."""
    return {int(m[1]): float(m[2]) for m in re.finditer(r'^iter (\d+): loss ([\d.]+)', stdout, re.M)}


def eval_losses(stdout):
    return [float(m[1]) for m in re.finditer(r'^step \d+: train loss [\d.]+, val loss ([\d.]+)', stdout, re.M)]


def test_loss_goes_down_and_checkpoint_written(char_data):
    proc = run_script('train.py', *TINY, '--max_iters=60', '--eval_interval=30', '--out_dir=out-down', cwd=char_data)
    val = eval_losses(proc.stdout)
    assert len(val) == 3 and val[-1] < val[0] - 0.8, val
    assert (char_data / 'out-down' / 'ckpt.pt').is_file()


def test_resume_continues_exactly(char_data):
    common = [*TINY, '--eval_interval=10', '--always_save_checkpoint=True']
    straight = run_script('train.py', *common, '--max_iters=20', '--out_dir=out-straight', cwd=char_data)
    run_script('train.py', *common, '--max_iters=10', '--out_dir=out-resume', cwd=char_data)
    resumed = run_script('train.py', *common, '--max_iters=20', '--out_dir=out-resume', '--init_from=resume',
                         '--n_layer=3', cwd=char_data)
    assert "resume: n_layer = 2 from the checkpoint, not the 3 set here" in resumed.stdout
    a, b = losses(straight.stdout), losses(resumed.stdout)
    assert min(b) == 10, "a resumed run starts at the checkpoint's iteration"
    # same weights, optimizer state and data stream: the resumed run repeats the uninterrupted one exactly
    assert {i: a[i] for i in b} == b


def test_line_windows_train_and_resume_exactly(char_data):
    """--line_windows=True (windows start 0..line_margin tokens before a newline): the loss goes down and a resumed
    run repeats the uninterrupted one; the windows differ from nanoGPT's random offsets (other losses)."""
    common = [*TINY, '--eval_interval=10', '--always_save_checkpoint=True', '--line_windows=True', '--line_margin=4']
    straight = run_script('train.py', *common, '--max_iters=20', '--out_dir=out-lines', cwd=char_data)
    run_script('train.py', *common, '--max_iters=10', '--out_dir=out-lines-resume', cwd=char_data)
    resumed = run_script('train.py', *common, '--max_iters=20', '--out_dir=out-lines-resume', '--init_from=resume',
                         cwd=char_data)
    a, b = losses(straight.stdout), losses(resumed.stdout)
    assert min(b) == 10 and {i: a[i] for i in b} == b
    assert a[19] < a[0] - 0.5, a
    random_offsets = run_script('train.py', *TINY, '--max_iters=0', '--out_dir=out-offsets', cwd=char_data)
    assert losses(random_offsets.stdout)[0] != a[0]  # the same weights, another first batch


def test_line_windows_start_within_line_margin_before_a_newline_whose_window_fits():
    """What --line_windows draws (line_starts, draw_line_windows): every window starts 0..margin tokens before a
    newline token after which block_size + 1 tokens fit, never below 0, every margin is drawn, and a seed repeats
    the draw (a resumed run sees the same batches)."""
    newline, block_size, margin = 1, 8, 4
    tokens = np.array([5] * 3 + [newline] + [5] * 7 + [newline] + [5] * 4 + [newline] + [5] * 20 + [newline] + [5] * 3)
    starts = torch.from_numpy(line_starts(tokens, [newline], block_size))
    assert starts.tolist() == [3, 11, 16]  # the newline at 37 has 3 tokens after it: no window fits
    torch.manual_seed(0)
    ix = draw_line_windows(starts, 2000, margin)
    back = {}
    for x in ix.tolist():
        start = next(s for s in starts.tolist() if 0 <= s - x <= margin)  # raises StopIteration if none
        back.setdefault(start, set()).add(start - x)
    assert back == {3: {0, 1, 2, 3}, 11: set(range(margin + 1)), 16: set(range(margin + 1))}  # 3 - 4 clamps to 0
    torch.manual_seed(0)
    assert torch.equal(draw_line_windows(starts, 2000, margin), ix)
    # the lines that hold given offsets (multi_step_windows): 5 and 13 are in the lines after 3 and 11, 2 in none
    assert line_starts(tokens, [newline], block_size, holding=np.array([2, 5, 13, 14, 40])).tolist() == [3, 11]


def test_non_finite_loss_stops_and_keeps_last_checkpoint(char_data):
    common = [*TINY, '--eval_interval=5', '--always_save_checkpoint=False', '--out_dir=out-nan']
    run_script('train.py', *common, '--max_iters=5', cwd=char_data)
    ckpt = char_data / 'out-nan' / 'ckpt.pt'
    digest = hashlib.sha256(ckpt.read_bytes()).hexdigest()
    # 1e400 parses as inf: the first update makes every weight non-finite
    proc = run_script('train.py', *common, '--max_iters=30', '--init_from=resume', '--learning_rate=1e400',
                      cwd=char_data, check=False)
    assert proc.returncode != 0
    assert 'non-finite train loss' in proc.stderr
    assert hashlib.sha256(ckpt.read_bytes()).hexdigest() == digest


def test_short_run_leaves_a_checkpoint_and_cleans_what_killed_saves_left(char_data):
    out = char_data / 'out-short'
    out.mkdir()
    gone = subprocess.run([sys.executable, '-c', 'import os; print(os.getpid())'], capture_output=True, text=True)
    dead_pid, host = int(gone.stdout), socket.gethostname()  # a process that has exited: its temp file is stale
    stale = [out / f'ckpt.pt.tmp.{host}.{dead_pid}', out / f'ckpt.pt.tmp.{dead_pid}']
    kept = [out / f'ckpt.pt.tmp.{host}.{os.getpid()}', out / f'ckpt.pt.tmp.other-host.{dead_pid}']  # live, or not ours
    for path in stale + kept:
        path.write_bytes(b'half a checkpoint')
    proc = run_script('train.py', *TINY, '--max_iters=3', '--eval_interval=100', '--out_dir=out-short', cwd=char_data)
    assert all(f'removed out-short/{p.name}' in proc.stdout and not p.exists() for p in stale)
    assert all(p.exists() for p in kept)
    assert len(eval_losses(proc.stdout)) == 2  # at iter 0 and at max_iters, which saves
    assert torch.load(out / 'ckpt.pt', weights_only=True)['iter_num'] == 3


def test_bad_settings_fail_with_clear_messages(char_data):
    proc = run_script('train.py', '--n_layers=2', cwd=char_data, check=False)
    assert proc.returncode == 2 and "Did you mean n_layer" in proc.stderr
    proc = run_script('train.py', *TINY, '--dataset=nowhere', cwd=char_data, check=False)
    assert proc.returncode != 0 and 'prepare the data first' in proc.stderr
    proc = run_script('train.py', *TINY, '--init_from=resume', '--out_dir=out-empty', cwd=char_data, check=False)
    assert proc.returncode != 0 and 'train one first' in proc.stderr


def test_eval_only(char_data):
    proc = run_script('train.py', *TINY, '--eval_only=True', '--out_dir=out-eval', cwd=char_data)
    assert len(eval_losses(proc.stdout)) == 1 and not losses(proc.stdout)
    assert 'flush_denormal' not in proc.stdout  # off by default: IEEE denormals, as PyTorch's
    proc = run_script('train.py', *TINY, '--eval_only=True', '--out_dir=out-eval', '--flush_denormal=True',
                      cwd=char_data)
    assert 'flush_denormal: denormal floats are 0' in proc.stdout  # what torch.set_flush_denormal returned


def test_wandb_without_api_key_runs_offline(char_data, tmp_path, monkeypatch):
    monkeypatch.delenv('WANDB_API_KEY', raising=False)
    monkeypatch.setenv('WANDB_DIR', str(tmp_path))
    monkeypatch.setenv('HOME', str(tmp_path))  # no ~/.netrc login either
    proc = run_script('train.py', *TINY, '--max_iters=2', '--eval_interval=2', '--wandb_log=True',
                      '--out_dir=out-wandb', cwd=char_data, env={'WANDB_MODE': None})
    assert 'logging offline' in proc.stdout
    assert list((tmp_path / 'wandb').glob('offline-run-*')), "the run is kept locally, to sync later"


DAG = ['--device=cpu', '--compile=False', '--dataset=numeric', '--n_layer=1', '--n_head=2', '--n_embd=32',
       '--block_size=48', '--batch_size=8', '--gradient_accumulation_steps=1', '--eval_iters=4', '--learning_rate=3e-3',
       '--warmup_iters=5', '--lr_decay_iters=40', '--min_lr=3e-4', '--log_interval=1', '--dag_depth=4']


def test_dag_training_loss_goes_down_and_resumes_exactly(numeric_data):
    common = [*DAG, '--eval_interval=20', '--always_save_checkpoint=True']
    straight = run_script('train.py', *common, '--max_iters=40', '--out_dir=out-dag', cwd=numeric_data)
    val = eval_losses(straight.stdout)
    assert len(val) == 3 and val[-1] < val[0] - 0.5, val
    assert 'gate' in straight.stdout and 'op_add' not in straight.stdout  # the DAG's diagnostics, in short
    metrics = [json.loads(line) for line in (numeric_data / 'out-dag' / 'metrics.jsonl').read_text().splitlines()]
    assert all(0 <= m['op_add'] <= 1 and 'aux_loss' in m for m in metrics if m['kind'] == 'train')  # all of them
    assert 'auxiliary labels: roles, step values and ops' in straight.stdout
    no_labels = run_script('train.py', *common, '--max_iters=0', '--dag_value_loss=0', '--out_dir=out-dag-nl',
                           cwd=numeric_data)
    assert losses(straight.stdout)[0] > losses(no_labels.stdout)[0] + 0.1  # the same first batch, plus the aux loss
    run_script('train.py', *common, '--max_iters=20', '--out_dir=out-dag-resume', cwd=numeric_data)
    resumed = run_script('train.py', *common, '--max_iters=40', '--out_dir=out-dag-resume', '--init_from=resume',
                         cwd=numeric_data)
    a, b = losses(straight.stdout), losses(resumed.stdout)
    assert min(b) == 20 and {i: a[i] for i in b} == b


def test_multi_step_windows_from_halfway_and_resume_exactly(numeric_data):
    """--multi_step_windows=4 from halfway: the batches of the iterations after max_iters / 2 get 4 more windows
    that start near a line holding a multi-step program (other losses), the ones before are nanoGPT's (the same
    losses), and a run resumed at the switch repeats the uninterrupted one."""
    common = [*DAG, '--eval_interval=10', '--always_save_checkpoint=True', '--max_iters=20']
    default = losses(run_script('train.py', *common, '--out_dir=out-ms-off', cwd=numeric_data).stdout)
    windows = [*common, '--multi_step_windows=4', '--multi_step_from=0.5']
    out = run_script('train.py', *windows, '--out_dir=out-ms', cwd=numeric_data).stdout
    straight = losses(out)
    assert all(straight[i] == default[i] for i in range(11)) and straight[11] != default[11], (straight, default)
    # the lines it draws from, counted here another way: a line (after a newline where a window of block_size 48
    # fits) with a token whose label row holds two or more different values
    data = numeric_data / 'data' / 'numeric'
    tokens = np.fromfile(data / 'train.bin', dtype=np.uint16)
    steps_of = np.fromfile(data / 'train_steps_of.bin', dtype=np.int32)
    multi = [len({v for v in row if v == v}) >= 2 for row in np.load(data / 'train_steps.npy').tolist()]
    newline = pickle.load(open(data / 'meta.pkl', 'rb'))['stoi']['\n']
    lines = np.split(np.arange(len(tokens)), np.flatnonzero(tokens == newline))[1:]  # each from its newline
    count = sum(line[0] < len(tokens) - 48 and any(multi[r] for r in steps_of[line] if r >= 0) for line in lines)
    assert f"multi_step_windows: {count:,} lines of train.bin hold a multi-step program" in out
    # a first run that stops at the switch: with max_iters=10 and multi_step_from=1.0, iterations 0-10 draw as above
    run_script('train.py', *windows, '--max_iters=10', '--multi_step_from=1.0', '--out_dir=out-ms-resume',
               cwd=numeric_data)
    resumed = losses(run_script('train.py', *windows, '--out_dir=out-ms-resume', '--init_from=resume',
                                cwd=numeric_data).stdout)
    assert min(resumed) == 10 and {i: straight[i] for i in resumed} == resumed


def test_multi_step_from_runs_on_the_clock_with_max_seconds(numeric_data):
    """With max_seconds, multi_step_from is a fraction of the time, not of max_iters: from 0.0 the very first
    batch (of iteration 0, whose loss no update has touched yet) already holds the extra windows, from 1.0 it does
    not, whatever max_iters says (an iteration count would give both runs nanoGPT's first batch)."""
    timed = [*DAG, '--max_iters=100000', '--eval_interval=100000', '--max_seconds=1', '--multi_step_windows=4']
    first = [losses(run_script('train.py', *timed, f'--multi_step_from={start}', f'--out_dir=out-clock-{start}',
                               cwd=numeric_data).stdout)[0] for start in (0.0, 1.0)]
    assert first[0] != first[1], first


def test_max_seconds_stops_with_a_checkpoint(numeric_data):
    proc = run_script('train.py', *DAG, '--max_iters=100000', '--eval_interval=100000', '--max_seconds=3',
                      '--dag_topk=3', '--dag_key_dim=8', '--out_dir=out-timed', cwd=numeric_data)
    assert len(eval_losses(proc.stdout)) == 2  # at iter 0 and at the end
    model_args = torch.load(numeric_data / 'out-timed' / 'ckpt.pt', weights_only=True)['model_args']
    # every DAGGPTConfig field is saved
    assert model_args['dag_topk'] == 3 and model_args['dag_key_dim'] == 8 and model_args['dag_window'] == 24
    assert re.search(r'^iter 1: loss [\d.]+ \(lm [\d.]+, aux [\d.]+\)', proc.stdout, re.M)  # the two losses apart


def torchrun(*args, cwd, check=True, env=None):
    """train.py under torchrun with 2 processes on the CPU (gloo); returns its stdout (the process with check=False).
    env: more environment variables."""
    env = dict(os.environ, WANDB_MODE='disabled', OMP_NUM_THREADS='1', **(env or {}))
    proc = subprocess.run([sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node=2',
                           os.path.join(ROOT, 'train.py'), *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=300)
    if not check:
        return proc
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def test_ddp_two_processes_on_cpu(numeric_data):
    """GPT+DAG under DDP trains with no unused parameters and checkpoints once."""
    stdout = torchrun(*DAG, '--max_iters=6', '--eval_interval=6', '--gradient_accumulation_steps=2',
                      '--out_dir=out-ddp', cwd=numeric_data)
    assert len(losses(stdout)) == 7  # only the master process logs
    assert (numeric_data / 'out-ddp' / 'ckpt.pt').is_file()


def test_ddp_non_finite_loss_stops_with_exit_code_1(numeric_data, tmp_path):
    """A DDP run that stops on a non-finite loss exits 1 with its one line, and its tracker (trackio here) keeps what
    was logged before. It stops after backward passes have run, when the interpreter's teardown could let a gloo
    thread abort the process (SIGABRT, exit code -6, about 1 run in 30 before train.py left such a process with
    os._exit), and os._exit skips the tracker's exit hook (trackio then kept nothing)."""
    proc = torchrun(*DAG, '--dag_depth=1', '--gradient_accumulation_steps=2', '--max_iters=4', '--eval_interval=100',
                    '--learning_rate=1e400', '--out_dir=out-ddp-nan', '--wandb_log=True', '--tracker=trackio',
                    '--wandb_project=nan', cwd=numeric_data, check=False, env={'TRACKIO_DIR': str(tmp_path)})
    assert proc.returncode != 0 and 'non-finite train loss' in proc.stderr
    assert re.search(r'rank\s*: 0 .*\n\s*exitcode\s*: 1 ', proc.stderr), proc.stderr[-2000:]
    with sqlite3.connect(tmp_path / 'nan.db') as db:
        logged = [json.loads(m) for (m,) in db.execute('SELECT metrics FROM metrics ORDER BY id')]
    assert {'train/loss', 'val/loss'} <= {k for m in logged for k in m}, logged


def test_ddp_resume_is_exact_at_depth_1(numeric_data):
    """At dag_depth 1 every parameter gets a gradient (DDP's reducer would fail otherwise), and a resumed DDP run
    repeats the uninterrupted one: every process continues its own data stream. The master's losses after the
    first resumed step depend on the other process's batches through the averaged gradients."""
    common = [*DAG, '--dag_depth=1', '--eval_interval=3', '--gradient_accumulation_steps=2']
    straight = torchrun(*common, '--max_iters=6', '--out_dir=out-ddp1', cwd=numeric_data)
    torchrun(*common, '--max_iters=3', '--out_dir=out-ddp1-resume', cwd=numeric_data)
    resumed = torchrun(*common, '--max_iters=6', '--out_dir=out-ddp1-resume', '--init_from=resume', cwd=numeric_data)
    a, b = losses(straight), losses(resumed)
    assert min(b) == 3 and len(b) == 4 and {i: a[i] for i in b} == b
    single = run_script('train.py', *common, '--max_iters=4', '--out_dir=out-ddp1-resume', '--init_from=resume',
                        cwd=numeric_data)
    assert 'holds the data streams of 2 processes, this run has 1' in single.stdout


@pytest.mark.parametrize('missing', ['_steps_of', '_ops'])
def test_a_corpus_with_older_labels_fails_with_one_line(numeric_data, tmp_path, missing):
    """A data/numeric written before the per-step labels (train_answer_of.bin, no train_steps_of.bin) or before the
    ops labels (no train_ops.bin) would train GPT+DAG without its labels: train.py says so and stops instead."""
    old = tmp_path / 'data' / 'numeric'
    old.mkdir(parents=True)
    for f in (numeric_data / 'data' / 'numeric').iterdir():
        if missing not in f.name:
            (old / f.name).write_bytes(f.read_bytes())
    if missing == '_steps_of':
        steps_of = (numeric_data / 'data' / 'numeric' / 'train_steps_of.bin').read_bytes()
        (old / 'train_answer_of.bin').write_bytes(steps_of)
    proc = run_script('train.py', *DAG, '--max_iters=0', cwd=tmp_path, check=False)
    assert proc.returncode == 1 and 'run prepare.py again' in proc.stderr and 'Traceback' not in proc.stderr
    assert f'train{missing}' in proc.stderr  # names the file it lacks
    assert run_script('train.py', *DAG, '--max_iters=0', '--dag_value_loss=0', cwd=tmp_path).returncode == 0
