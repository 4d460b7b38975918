import os
import socket
import subprocess
import sys

import pytest
import torch

from checkpoint import load_checkpoint, model_from_checkpoint, remove_stale_temp_files, save_checkpoint
from model import GPT, GPTConfig

ARGS = dict(block_size=16, vocab_size=20, n_layer=1, n_head=2, n_embd=8, dropout=0.0, bias=False, dag_depth=0)


def make_checkpoint(path):
    torch.manual_seed(0)
    model = GPT(GPTConfig(**{k: v for k, v in ARGS.items() if k != 'dag_depth'}))
    save_checkpoint({'model': model.state_dict(), 'model_args': ARGS, 'iter_num': 3}, path)
    return model


def test_round_trip_and_no_temp_files_left(tmp_path):
    path = str(tmp_path / 'ckpt.pt')
    model = make_checkpoint(path)
    assert os.listdir(tmp_path) == ['ckpt.pt']
    restored = model_from_checkpoint(load_checkpoint(path))
    for (k, a), (_, b) in zip(model.state_dict().items(), restored.state_dict().items()):
        assert torch.equal(a, b), k


def test_compiled_prefix_is_stripped(tmp_path):
    path = str(tmp_path / 'ckpt.pt')
    model = make_checkpoint(path)
    ckpt = load_checkpoint(path)
    ckpt['model'] = {'_orig_mod.' + k: v for k, v in ckpt['model'].items()}
    restored = model_from_checkpoint(ckpt)
    assert torch.equal(restored.lm_head.weight, model.lm_head.weight)


@pytest.mark.parametrize('damage', ['truncate', 'garbage', 'empty'])
def test_corrupt_checkpoint_gives_clear_error(tmp_path, damage):
    path = str(tmp_path / 'ckpt.pt')
    make_checkpoint(path)
    data = open(path, 'rb').read()
    with open(path, 'wb') as f:
        f.write({'truncate': data[:len(data) // 2], 'garbage': b'not a checkpoint' * 10, 'empty': b''}[damage])
    with pytest.raises(ValueError, match='corrupt or truncated'):
        load_checkpoint(path)


def test_missing_and_foreign_checkpoints(tmp_path):
    with pytest.raises(FileNotFoundError, match='train one first'):
        load_checkpoint(str(tmp_path / 'nope.pt'))
    path = str(tmp_path / 'other.pt')
    torch.save({'weights': torch.zeros(2)}, path)
    with pytest.raises(ValueError, match='not a nanoGPT-DAG checkpoint'):
        load_checkpoint(path)


def test_failed_save_keeps_previous_file(tmp_path, monkeypatch):
    path = str(tmp_path / 'ckpt.pt')
    make_checkpoint(path)
    before = open(path, 'rb').read()

    def crash(*args, **kwargs):
        raise OSError('disk full')
    monkeypatch.setattr(torch, 'save', crash)
    with pytest.raises(OSError):
        save_checkpoint({'model': {}, 'model_args': ARGS}, path)
    assert open(path, 'rb').read() == before
    assert os.listdir(tmp_path) == ['ckpt.pt']


def test_stale_temp_files_of_dead_writers_are_removed(tmp_path):
    path = str(tmp_path / 'ckpt.pt')
    make_checkpoint(path)
    host, me = socket.gethostname(), os.getpid()
    dead = subprocess.run([sys.executable, '-c', 'import os; print(os.getpid())'], capture_output=True, text=True)
    dead = int(dead.stdout)
    stale = [f'{path}.tmp.{host}.{dead}', f'{path}.tmp.{dead}']
    kept = [f'{path}.tmp.{host}.{me}', f'{path}.tmp.another-host.{dead}', f'{path}.tmp.{host}.notapid']
    for p in stale + kept:
        open(p, 'wb').close()
    assert sorted(remove_stale_temp_files(path)) == sorted(stale)
    assert sorted(os.listdir(tmp_path)) == sorted(['ckpt.pt'] + [os.path.basename(p) for p in kept])


def test_weights_that_do_not_fit_model_args(tmp_path):
    path = str(tmp_path / 'ckpt.pt')
    make_checkpoint(path)
    ckpt = load_checkpoint(path)
    ckpt['model_args'] = {**ARGS, 'n_embd': 16}
    with pytest.raises(ValueError, match='do not fit its model_args'):
        model_from_checkpoint(ckpt)
    ckpt['model_args'] = {**ARGS, 'n_head': 3}
    with pytest.raises(ValueError, match='do not describe a model'):
        model_from_checkpoint(ckpt)


def test_gpt_dag_checkpoint_saved_before_dag_key_dim_loads():
    # checkpoints written before DAGGPTConfig had dag_key_dim keyed the operands with n_embd dimensions and lack the
    # field: its default (0) means n_embd, so they load as they were; a smaller key dim is rebuilt from model_args
    from dag_model import DAGGPT, DAGGPTConfig
    args = {**ARGS, 'dag_depth': 2}
    torch.manual_seed(0)
    old = DAGGPT(DAGGPTConfig(**args))
    assert old.controller.key.weight.shape == (ARGS['n_embd'], ARGS['n_embd'])
    restored = model_from_checkpoint({'model': old.state_dict(), 'model_args': args})
    idx = torch.randint(0, 20, (1, 8))
    assert torch.equal(old.eval()(idx)[0], restored.eval()(idx)[0])
    small = DAGGPT(DAGGPTConfig(**args, dag_key_dim=4))
    assert small.controller.key.weight.shape == (4, ARGS['n_embd'])
    restored = model_from_checkpoint({'model': small.state_dict(), 'model_args': {**args, 'dag_key_dim': 4}})
    assert torch.equal(small.eval()(idx)[0], restored.eval()(idx)[0])
    with pytest.raises(ValueError, match='do not describe a model.*dag_key_dim must be >= 0'):
        model_from_checkpoint({'model': small.state_dict(), 'model_args': {**args, 'dag_key_dim': -4}})
