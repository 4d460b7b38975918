import os

import pytest
import torch

from checkpoint import load_checkpoint, model_from_checkpoint, save_checkpoint
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
