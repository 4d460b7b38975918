"""
Checkpoints: nanoGPT's `ckpt.pt` dictionary, written atomically and read with clear errors.

A checkpoint holds nanoGPT's keys (`model`, `optimizer`, `model_args`, `iter_num`, `best_val_loss`, `config`)
plus what an exact resume needs: `scaler` (the fp16 GradScaler state), `rng` (the torch CPU and CUDA generator
states, so the data batches continue where they left off) and `wandb_run_id`. `model_args` records `dag_depth`
(0 for a plain GPT), so `build_model` rebuilds the right class. This module knows nothing about training loops;
`compile_model` is here because train.py, bench.py and sample.py all build and compile models.
"""

import dataclasses
import glob
import os
import pickle
import socket

import torch

REQUIRED_KEYS = ('model', 'model_args')


def _tmp_path(path):
    """The temp file this process uses to write path: path.tmp.<host>.<pid>."""
    return f"{path}.tmp.{socket.gethostname()}.{os.getpid()}"


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def remove_stale_temp_files(path):
    """Delete the temp files that writers killed mid-save left next to path; return the paths removed.

    Only files of this host whose writer process no longer runs are removed (path.tmp.<host>.<pid>, and the
    older path.tmp.<pid>), so a save in progress, here or on another machine sharing the directory, is left alone."""
    host = socket.gethostname()
    removed = []
    for tmp in glob.glob(glob.escape(path) + '.tmp.*'):
        *tmp_host, pid = tmp[len(path) + len('.tmp.'):].rsplit('.', 1)
        if not pid.isdigit() or (tmp_host and tmp_host[0] != host) or _pid_alive(int(pid)):
            continue
        try:
            os.remove(tmp)
            removed.append(tmp)
        except FileNotFoundError:  # another process cleaned it first
            pass
    return removed


def save_checkpoint(checkpoint, path):
    """torch.save checkpoint to path atomically: write a temp file in the same directory, fsync, rename.

    A crash mid-write leaves the previous file at `path` untouched; a kill mid-write leaves the temp file,
    which remove_stale_temp_files (called by train.py at start) deletes."""
    tmp = _tmp_path(path)
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
        # one line: torch's own messages run over several and, for weights_only, suggest loading the file as code
        lines = str(e).strip().splitlines() or ['the file ends early']
        detail = 'not a file that torch.save wrote, or it holds more than tensors and plain values' \
            if isinstance(e, pickle.UnpicklingError) else lines[0][:200]
        raise ValueError(f"checkpoint {path} is corrupt or truncated ({type(e).__name__}: {detail}); "
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


def compile_model(model):
    """torch.compile(model), with one inductor setting for GPT+DAG on CUDA: no persistent reductions.

    With them, Triton 3.6 (PyTorch 2.11, an H200) stops with an internal error (`PassManager::run failed` in
    make_ttgir) on the kernel that fuses the trunk's final layer norm, the DAG's context Block's layer norm
    right after it and their backward passes, at n_embd=128 (the default numeric config), in bf16 and float32;
    without them it compiles, and trains twice as fast as eager there (NOTES.md). The setting is global to the
    process and left on CPU (inductor's C++ kernels) and for the plain GPT as PyTorch sets it."""
    if getattr(model.config, 'dag_depth', 0) > 0 and next(model.parameters()).is_cuda:
        from torch._inductor import config as inductor_config
        inductor_config.triton.persistent_reductions = False
    return torch.compile(model)


def model_from_checkpoint(checkpoint):
    """Rebuild the model saved in a checkpoint dict and load its weights (state dicts saved from a
    torch.compile'd model carry an `_orig_mod.` prefix, which is stripped).

    Raises ValueError when model_args cannot build a model or disagree with the saved weights."""
    try:
        model = build_model(checkpoint['model_args'])
    except (TypeError, ValueError, AssertionError) as e:
        raise ValueError(f"the checkpoint's model_args {checkpoint['model_args']} do not describe a model "
                         f"({type(e).__name__}: {e})") from e
    state_dict = checkpoint['model']
    unwanted_prefix = '_orig_mod.'
    state_dict = {k[len(unwanted_prefix):] if k.startswith(unwanted_prefix) else k: v
                  for k, v in state_dict.items()}
    try:
        model.load_state_dict(state_dict)
    except RuntimeError as e:
        first = str(e).strip().splitlines()[1:2] or [str(e)]
        raise ValueError(f"the checkpoint's weights do not fit its model_args ({first[0].strip()}); "
                         f"it was saved by an older version of the model code, or edited, or mixed from two runs: "
                         f"retrain it (or check out the commit that trained it)") from e
    return model
