"""
nanoGPT's "Poor Man's Configurator", with errors that say what went wrong. A script calls

    from configurator import configure
    configure(globals())

after defining its settings as plain module globals. Each command-line argument is either a config file
(Python, run in the script's globals, e.g. `config/train_shakespeare_char.py`) or `--key=value`, applied in
order. A value is parsed with ast.literal_eval (so `--dropout=0.1`, `--compile=False`, `--start='FILE:p.txt'`)
and kept as a string when that fails (`--device=cpu`). `--help` lists every setting with its value and its
comment, read from the script's source (never run) named by the `__file__` in its globals.

Unlike nanoGPT, an unknown key (in a config file or an override), a value of the wrong type, or a missing
config file exits with status 2 and a message naming the key and the valid choices, instead of being
silently added or failing on an assert.
"""

import ast
import difflib
import os
import sys
from ast import literal_eval

CONFIG_TYPES = (int, float, bool, str, tuple, type(None))


def config_keys(g):
    """The settings of a script: its public globals of simple types (int, float, bool, str, tuple, None), except
    constants (UPPER_CASE names such as an imported NO_OP, which --NO_OP=3 must not change)."""
    return [k for k, v in g.items() if not k.startswith('_') and not k.isupper() and isinstance(v, CONFIG_TYPES)]


def setting_comments(path):
    """{name: comment} for the assignments at the top level of the script at path (and in its top-level `if`
    blocks, e.g. `if __name__ == '__main__':`), read as text, never run; {} when path is None or unreadable.

    A comment is the assignment's trailing comment plus the comment-only lines right below it that are indented
    deeper than the assignment (a wrapped comment, aligned under its first line); a comment line at the
    assignment's own indentation heads the next group of settings (`# adamw optimizer`) and is not part of it."""
    try:
        with open(path, encoding='utf-8') as f:
            source = f.read()
        tree = ast.parse(source)
    except (TypeError, OSError, SyntaxError, ValueError):
        return {}
    lines = source.splitlines()
    nodes = [n for top in tree.body for n in [top, *(top.body if isinstance(top, ast.If) else [])]]
    comments = {}
    for node in nodes:
        if not (isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name)):
            continue
        rest = lines[node.end_lineno - 1].encode()[node.end_col_offset:].decode().strip()  # offsets are in bytes
        if not rest.startswith('#') or node.targets[0].id in comments:
            continue
        text, i = [rest], node.end_lineno
        while i < len(lines) and lines[i].lstrip().startswith('#') and \
                len(lines[i]) - len(lines[i].lstrip()) > node.col_offset:
            text, i = text + [lines[i].strip()], i + 1
        comments[node.targets[0].id] = ' '.join(t.lstrip('#').strip() for t in text)
    return comments


def _fail(message):
    print(f"configurator: {message}", file=sys.stderr)
    sys.exit(2)


def _unknown_key(key, keys):
    close = difflib.get_close_matches(key, keys, n=3)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    _fail(f"unknown config key {key!r}.{hint} Valid keys: {', '.join(sorted(keys))}")


def _coerce(key, value, current):
    """value (already literal_eval'ed, or a str) -> the type of the current setting, or exit with a message."""
    if current is None or type(value) is type(current):
        return value
    if isinstance(current, float) and type(value) is int:
        return float(value)  # --learning_rate=1 means 1.0
    if isinstance(current, tuple) and isinstance(value, list):
        return tuple(value)
    _fail(f"--{key} expects a {type(current).__name__} (default {current!r}), got {value!r} "
          f"of type {type(value).__name__}")


def configure(g, argv=None):
    """Apply config files and --key=value overrides from argv (default sys.argv[1:]) to the globals dict g.

    Returns the set of keys that a config file or an override set. Exits with status 2 and a message on an
    unknown key, a type mismatch or a missing config file."""
    argv = sys.argv[1:] if argv is None else argv
    keys = config_keys(g)
    changed = set()
    for arg in argv:
        if arg in ('-h', '--help'):
            print("settings (override with --key=value or a config file):")
            comments = setting_comments(g.get('__file__'))
            for k in keys:
                print(f"  --{k}={g[k]!r}" + (f"  # {comments[k]}" if comments.get(k) else ""))
            sys.exit(0)
        if not arg.startswith('--'):
            if not os.path.isfile(arg):
                _fail(f"config file {arg!r} not found (arguments are config files or --key=value)")
            print(f"Overriding config with {arg}:")
            with open(arg) as f:
                source = f.read()
            print(source)
            before, names = {k: g[k] for k in keys}, dict(g)
            exec(compile(source, arg, 'exec'), g)
            for k, v in g.items():  # a name the file added or rebound that is not a setting
                if k not in before and not k.startswith('_') and isinstance(v, CONFIG_TYPES) and \
                        (k not in names or v is not names[k]):
                    _unknown_key(k, keys)
            for k in keys:
                g[k] = _coerce(k, g[k], before[k])
            changed |= {k for k in keys if g[k] != before[k]}
            continue
        if '=' not in arg:
            _fail(f"argument {arg!r} must look like --key=value")
        key, val = arg[2:].split('=', 1)
        if key not in keys:
            _unknown_key(key, keys)
        try:
            attempt = literal_eval(val)
        except (SyntaxError, ValueError):
            attempt = val  # a bare string such as --device=cpu
        g[key] = _coerce(key, attempt, g[key])
        changed.add(key)
        print(f"Overriding: {key} = {g[key]!r}")
    return changed


def model_rules(batch_size, block_size, n_layer, n_head, n_embd, dropout, dag_depth, dag_key_dim,
                dag_train_positions=1.0):
    """The (ok, message) rules a script's model and batch settings must pass (check_rules applies them): sizes of
    at least 1, n_embd divisible by n_head, a dropout probability, dag_depth and dag_key_dim >= 0, a share of the
    positions in (0, 1]."""
    return [
        (batch_size >= 1, f"--batch_size={batch_size}: a batch needs at least 1 sequence"),
        (block_size >= 1, f"--block_size={block_size}: a sequence needs at least 1 token"),
        (n_layer >= 1 and n_head >= 1 and n_embd >= 1, "n_layer, n_head and n_embd must be at least 1"),
        (n_embd % max(n_head, 1) == 0, f"--n_embd={n_embd} is not divisible by --n_head={n_head}: each head gets "
                                       f"n_embd / n_head channels (e.g. --n_embd={n_head * max(n_embd // n_head, 1)})"),
        (0.0 <= dropout < 1.0, f"--dropout={dropout}: a probability in [0, 1)"),
        (dag_depth >= 0, f"--dag_depth={dag_depth}: use 0 for a plain GPT or the number of DAG steps (e.g. 4)"),
        (dag_key_dim >= 0, f"--dag_key_dim={dag_key_dim}: use 0 for n_embd or a number of dimensions (e.g. 32)"),
        (0.0 < dag_train_positions <= 1.0,
         f"--dag_train_positions={dag_train_positions}: use a share of the positions in (0, 1] (1: all of them)"),
    ]


def check_rules(script, rules):
    """Exit with status 1 and '<script>: <message>' for the first (ok, message) rule that fails."""
    for ok, message in rules:
        if not ok:
            sys.exit(f"{script}: {message}")


def check_device(device, dtype):
    """Exit with status 2 and a message when device cannot be used here (CUDA or MPS absent) or dtype is not
    one of 'float32', 'bfloat16', 'float16'."""
    import torch
    if dtype not in ('float32', 'bfloat16', 'float16'):
        _fail(f"--dtype={dtype!r} is not supported: use 'float32', 'bfloat16' or 'float16'")
    if device.startswith('cuda') and not torch.cuda.is_available():
        _fail(f"--device={device!r} but this machine has no CUDA GPU (torch.cuda.is_available() is False): "
              f"use --device=cpu")
    if device.startswith('mps') and not torch.backends.mps.is_available():
        _fail(f"--device={device!r} but MPS is not available here: use --device=cpu")
    if device.split(':')[0] not in ('cpu', 'cuda', 'mps'):
        _fail(f"--device={device!r} is not a device: use 'cpu', 'cuda', 'cuda:N' or 'mps'")
    if dtype == 'bfloat16' and device.startswith('cuda') and not torch.cuda.is_bf16_supported():
        _fail("--dtype=bfloat16 is not supported by this GPU: use --dtype=float16")
