"""train.py with `--wandb_log=True --tracker=trackio`: the run and the losses W&B would get land in trackio's SQLite
store ($TRACKIO_DIR/<wandb_project>.db), and its dashboard shows them, in headless Chromium, while training runs."""
import json
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request

import pytest

from conftest import ROOT, run_script
from test_train import TINY, eval_losses

TRACKIO = ['--wandb_log=True', '--tracker=trackio', '--wandb_project=tiny']


def logged(store, run_name=None):
    """[(run_id, run_name, metrics dict)] of every trackio log call in store/tiny.db, in the order they were made."""
    if not (store / 'tiny.db').is_file():
        return []
    with sqlite3.connect(store / 'tiny.db') as db:
        rows = db.execute('SELECT run_id, run_name, metrics FROM metrics ORDER BY id').fetchall()
    return [(run_id, name, json.loads(m)) for run_id, name, m in rows if run_name in (None, name)]


def test_trackio_keeps_the_run_and_what_wandb_would_log(char_data, tmp_path):
    env = {'TRACKIO_DIR': str(tmp_path)}
    common = [*TINY, *TRACKIO, '--wandb_run_name=tiny-run', '--eval_interval=5', '--out_dir=out-trackio']
    first = run_script('train.py', *common, '--max_iters=10', cwd=char_data, env=env)
    resumed = run_script('train.py', *common, '--max_iters=15', '--init_from=resume', cwd=char_data, env=env)
    rows = logged(tmp_path)
    assert {(run_id, name) for run_id, name, _ in rows} == {(rows[0][0], 'tiny-run')}, "a resume continues the run"
    assert [m['iter'] for *_, m in rows] == [0, 5, 10, 10, 15]
    printed = eval_losses(first.stdout) + eval_losses(resumed.stdout)  # 4 decimals
    assert [m['val/loss'] for *_, m in rows] == pytest.approx(printed, abs=5e-5)
    assert {'train/loss', 'lr'} <= set(rows[-1][2]) and 'mfu' not in rows[-1][2]  # no MFU (-100) on a CPU
    with sqlite3.connect(tmp_path / 'tiny.db') as db:
        (config,), = db.execute('SELECT config FROM configs').fetchall()
    assert json.loads(config)['n_layer'] == 2 and json.loads(config)['tracker'] == 'trackio'

    run_script('train.py', *common, '--max_iters=5', '--out_dir=out-trackio-2', cwd=char_data, env=env)
    assert len({run_id for run_id, *_ in logged(tmp_path)}) == 2, "a new run of the same name is a new run"

    proc = run_script('train.py', *TINY, '--tracker=tensorboard', cwd=char_data, check=False)
    assert proc.returncode != 0 and "--tracker='tensorboard': use 'wandb' (W&B) or 'trackio'" in proc.stderr


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def wait_for(what, ready, timeout=60):
    end = time.time() + timeout
    while not ready():
        if time.time() > end:
            raise AssertionError(f"no {what} after {timeout} s")
        time.sleep(0.2)


def evals_so_far(store):
    try:
        return len(logged(store, 'live-run'))
    except sqlite3.OperationalError:  # the store is being created
        return 0


def answers(url):
    try:
        return urllib.request.urlopen(url, timeout=2).status == 200
    except OSError:
        return False


def test_dashboard_shows_the_run_while_it_trains(char_data, tmp_path):
    chromium = shutil.which('chromium') or shutil.which('chromium-headless-shell')
    if chromium is None:
        pytest.skip("no chromium on PATH to load the dashboard (Debian: apt-get install chromium)")
    err = tmp_path / 'train.err'
    env = {**os.environ, 'TRACKIO_DIR': str(tmp_path / 'trackio'), 'OMP_NUM_THREADS': '1'}
    port = free_port()
    url = f'http://127.0.0.1:{port}/?project=tiny'
    # long enough to still be training when the page loads; every eval (5 iterations) logs a point
    with err.open('w') as train_stderr:  # the child keeps its own copy
        train = subprocess.Popen([sys.executable, os.path.join(ROOT, 'train.py'), *TINY, *TRACKIO, '--eval_interval=5',
                                  '--wandb_run_name=live-run', '--max_iters=100000', '--out_dir=out-live'],
                                 cwd=char_data, env=env, stdout=subprocess.DEVNULL, stderr=train_stderr)
    show = subprocess.Popen([sys.executable, '-c', 'import sys, trackio; trackio.show(project="tiny", '
                             'open_browser=False, server_port=int(sys.argv[1]))', str(port)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    browser = [chromium, '--headless', '--disable-gpu', '--no-sandbox', '--hide-scrollbars', '--window-size=1400,1400',
               '--virtual-time-budget=10000', f'--user-data-dir={tmp_path / "chromium"}']
    try:
        wait_for("dashboard", lambda: answers(url))
        wait_for("two evals in the store", lambda: train.poll() is not None or evals_so_far(tmp_path / 'trackio') >= 2)
        assert train.poll() is None, f"train.py exited {train.returncode}: {err.read_text()[-2000:]}"
        shot = tmp_path / 'dashboard.png'
        dom = subprocess.run([*browser, '--dump-dom', f'--screenshot={shot}', url], capture_output=True, text=True,
                             timeout=60).stdout
        assert train.poll() is None, "training was still running"
        assert 'title="live-run"' in dom, "the run is listed"
        assert 'data-metric="val/loss"' in dom and 'data-metric="train/loss"' in dom, "the loss charts are there"
        assert shot.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n' and shot.stat().st_size > 20_000
        print(f"dashboard screenshot: {shot}")
    finally:
        for proc in (train, show):
            proc.terminate()
            proc.wait(timeout=30)
