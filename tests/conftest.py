"""Shared test set-up: the repo root on sys.path, the team's shared data, a subprocess runner, and train.py's
CPU float mode."""
import contextlib
import os
import subprocess
import sys

import pytest
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
SHARED_DATA = os.path.abspath(os.environ.get('SHARED_DATA', os.path.join(ROOT, '..', 'shared', 'data')))


def shared_file(*parts):
    """Path of a file in ../shared/data; CI must have it (fail), elsewhere the test is skipped with the reason."""
    path = os.path.join(SHARED_DATA, *parts)
    if not os.path.isfile(path):
        message = f"{path} missing: tests read the team's shared data from ../shared/data (or $SHARED_DATA)"
        if os.environ.get('CI'):
            pytest.fail(message)
        pytest.skip(message)
    return path


def run_script(script, *args, cwd, check=True, timeout=300, env=None):
    """Run ROOT/script with args in cwd under this Python; return the CompletedProcess (text output). W&B is
    disabled unless env (variables to set, or None to unset) says otherwise."""
    env = {**os.environ, 'PYTHONUNBUFFERED': '1', 'WANDB_MODE': 'disabled', 'OMP_NUM_THREADS': '1', **(env or {})}
    env = {k: v for k, v in env.items() if v is not None}
    proc = subprocess.run([sys.executable, os.path.join(ROOT, script), *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"{script} {' '.join(map(str, args))} exited {proc.returncode}:\n"
                             f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


@pytest.fixture(scope='session')
def char_data(tmp_path_factory):
    """A working directory whose data/shakespeare_char holds Tiny Shakespeare prepared at character level."""
    work = tmp_path_factory.mktemp('work')
    run_script('data/shakespeare_char/prepare.py', '--input', shared_file('tinyshakespeare', 'input.txt'),
               '--out_dir', work / 'data' / 'shakespeare_char', cwd=work)
    return work


@pytest.fixture(scope='session')
def numeric_data(tmp_path_factory):
    """A working directory whose data/numeric holds a small built-in numeric corpus (with roles)."""
    work = tmp_path_factory.mktemp('numeric')
    run_script('data/numeric/prepare.py', '--n_train=4000', '--n_val=400', '--n_test=40', '--n_extrap=20',
               '--n_phrasing=20', '--out_dir', work / 'data' / 'numeric', cwd=work)
    return work


if os.environ.get('PYTEST_XDIST_WORKER'):  # pytest -n 2: one thread per worker, or the workers fight over the cores
    torch.set_num_threads(1)


@contextlib.contextmanager
def flush_denormal(on=True):
    """Within: the CPU reads and writes denormal floats as 0 (torch.set_flush_denormal), as train.py does with
    --flush_denormal=True (compare_numeric.py's GPT+DAG without labels); after: IEEE denormals, PyTorch's default."""
    assert torch.set_flush_denormal(on) or not on, "this CPU cannot flush denormals (torch.set_flush_denormal)"
    try:
        yield
    finally:
        torch.set_flush_denormal(False)
