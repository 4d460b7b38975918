"""
Checkpoints: nanoGPT's `ckpt.pt` dictionary, written atomically and read with clear errors.

A checkpoint holds nanoGPT's keys (`model`, `optimizer`, `model_args`, `iter_num`, `best_val_loss`, `config`)
plus what an exact resume needs: `scaler` (the fp16 GradScaler state), `rng` (the torch CPU and CUDA generator
states, so the data batches continue where they left off) and `wandb_run_id`. `model_args` records `dag_depth`
(0 for a plain GPT), so `build_model` rebuilds the right class. This module knows nothing about training loops.
"""

import dataclasses
import os

import torch

REQUIRED_KEYS = ('model', 'model_args')


def save_checkpoint(checkpoint, path):
    """torch.save checkpoint to path atomically: write a temp file in the same directory, fsync, rename.

    A crash mid-write leaves the previous file at `path` untouched."""
    tmp = f"{path}.tmp.{os.getpid()}"
    try:
        with open(tmp, 'wb') as f:
            torch.save(checkpoint, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def load_checkpoint(path, map_location='cpu'):
    """Load a checkpoint dict saved by save_checkpoint (weights_only=True: no pickled code is run).

    Raises FileNotFoundError when path is missing and ValueError naming the file when it is corrupt,
    truncated, or not a checkpoint of this project."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no checkpoint at {path}: train one first (python train.py ...) "
                                f"or set out_dir to the directory that holds ckpt.pt")
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # torch raises RuntimeError, EOFError, UnpicklingError ... for a damaged file
        raise ValueError(f"checkpoint {path} is corrupt or truncated ({type(e).__name__}: {e}); "
                         f"restore it from a backup or retrain") from e
    if not isinstance(checkpoint, dict) or any(k not in checkpoint for k in REQUIRED_KEYS):
        raise ValueError(f"{path} is not a nanoGPT-DAG checkpoint: it lacks {list(REQUIRED_KEYS)}")
    return checkpoint


def build_model(model_args):
    """A fresh GPT (dag_depth 0 or absent) or DAGGPT (dag_depth > 0) from a model_args dict."""
    if model_args.get('dag_depth', 0) > 0:
        from dag_model import DAGGPT, DAGGPTConfig
        return DAGGPT(DAGGPTConfig(**model_args))
    from model import GPT, GPTConfig
    gpt_fields = {f.name for f in dataclasses.fields(GPTConfig)}  # a plain GPT ignores the DAG's settings
    return GPT(GPTConfig(**{k: v for k, v in model_args.items() if k in gpt_fields}))


def model_from_checkpoint(checkpoint):
    """Rebuild the model saved in a checkpoint dict and load its weights (state dicts saved from a
    torch.compile'd model carry an `_orig_mod.` prefix, which is stripped)."""
    model = build_model(checkpoint['model_args'])
    state_dict = checkpoint['model']
    unwanted_prefix = '_orig_mod.'
    state_dict = {k[len(unwanted_prefix):] if k.startswith(unwanted_prefix) else k: v
                  for k, v in state_dict.items()}
    model.load_state_dict(state_dict)
    return model
