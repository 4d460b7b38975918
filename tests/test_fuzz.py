"""
Fuzz test of the whole GPT+DAG model (dag_model.DAGGPT): nothing is ever NaN or inf.

Each trial (a fixed seed) builds a tiny DAGGPT over the numeric corpus's alphabet with a random dag_depth (1..8),
in train or eval mode, in float32 or under CPU bfloat16 autocast, with its weights as initialised, scaled up x30
(logits at extremes), or wired so that the value extractor reads the text's numbers exactly (so that extreme
numbers really reach the DAG: 21-digit integers, 0.000000001, division by 0, pow and log of 0 and negatives),
also scaled up. The inputs are such numbers written in text, digit runs that fill the whole block, minus signs,
commas, points and 'k' in odd places, and random printable garbage; most trials also pass the auxiliary labels
(random roles, and step values with NaN, 0, +-1e300, +-2^53 and the DAG's own token values). Asserted: logits,
the loss, every parameter's gradient (present, finite), and the DAG's values, token values and readout features
are finite; with forced programs (chains of pow, divide, log on the extreme token values) too. (Out of range:
weights x1000, std ~20, where the gradient through the DAG path reaches ~8e28 at ln_f and overflows float32 in
its backward pass; the plain GPT survives that scale. Training never goes near it; NOTES.md.)
"""
import random

import numpy as np
import pytest
import torch

from conftest import flush_denormal
from dag_model import CLASSES, MAX_VALUE, OPS, DAGGPT, DAGGPTConfig, scratch_index
from data.numeric.prepare import ALPHABET, encode

BLOCK = 48
ROLE_OF = {**{d: CLASSES.index('digits') for d in '0123456789'}, ',': CLASSES.index('sep'), '.': CLASSES.index('point'),
           'k': CLASSES.index('k'), '-': CLASSES.index('minus')}
EXTREME = ['999999999999999999999 * 99999999999 = ', '0.000000001 / 0 = ', '-0 ^ -999 = ', '1e308 * 1e308 = ',
           '0 / 0 = ', '-999999999999999 ^ 999999999999999 = ', 'log(0) = ', 'log_0(-5) = ', 'log_-1(0.0) = ',
           'log_1(1) = ', '--------5 - -----3 = ', ',,,1,,2,,,.5.5.k.k,k-k = ', '9,999,999,999,999,999.999999999kkk',
           '123456789012345678901234567890.000000000000001k / 0.0000000000000000001 = ', '9' * BLOCK,
           '0.' + '0' * (BLOCK - 3) + '1', '-' * BLOCK, '-0.0k', 'max(-0, 0) = ', 'min(0.000000001, -99999999999) = ',
           '2 ^ 0.5 ^ -0.5 ^ 1000000 = ', '1,2,3,4,5,6,7,8,9,0.1.2.3.4k5k6k']
STEP_VALUES = [float('nan'), 0.0, -0.0, 1.0, -1.0, 1e300, -1e300, 1e-300, MAX_VALUE, -MAX_VALUE, 1e12, -7.5]


def wire(model):
    """Make the value extractor read the text's numbers exactly: each token's hidden state is the one-hot of its
    role in a number (the blocks' residual branches off), and the extractor's classifier is the identity."""
    C = model.config.n_embd
    with torch.no_grad():
        for block in model.transformer.h:
            block.attn.c_proj.weight.zero_()
            block.mlp.c_proj.weight.zero_()
        model.transformer.wpe.weight.mul_(0.1)
        model.transformer.wte.weight.copy_(torch.eye(C)[[ROLE_OF.get(c, 0) for c in ALPHABET]])
        model.value_extractor.classify.weight.zero_()
        model.value_extractor.classify.weight[:len(CLASSES)] = torch.eye(C)[:len(CLASSES)]
        model.value_extractor.classify.bias.zero_()


def fuzz_text(rng):
    """A random string of exactly BLOCK + 1 chars: extreme expressions, number characters and garbage."""
    parts = []
    while sum(map(len, parts)) <= BLOCK:
        kind = rng.random()
        if kind < 0.5:
            parts.append(rng.choice(EXTREME))
        elif kind < 0.75:
            parts.append(''.join(rng.choice('0123456789,.k-') for _ in range(rng.randint(1, 30))))
        else:
            parts.append(''.join(rng.choice(ALPHABET) for _ in range(rng.randint(1, 20))))
    return ''.join(parts)[:BLOCK + 1]


def build(seed, wired=False, scale=1.0):
    """A tiny DAGGPT with a random dag_depth, dropout, bias and mode, and the rng that drew them."""
    rng = random.Random(seed)
    torch.manual_seed(seed)
    model = DAGGPT(DAGGPTConfig(block_size=BLOCK, vocab_size=len(ALPHABET), n_layer=1, n_head=2, n_embd=32,
                                dropout=rng.choice([0.0, 0.1]), bias=rng.random() < 0.5, dag_depth=rng.randint(1, 8)),
                   list(ALPHABET))
    if wired:
        wire(model)
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(scale)
    return model.train(rng.random() < 0.5), rng


def batch(rng, B=3):
    """Inputs (B, BLOCK) and next-char targets (B, BLOCK) (some ignored) of fuzz texts."""
    ids = torch.from_numpy(np.stack([encode(fuzz_text(rng)) for _ in range(B)]).astype(np.int64))
    x, y = ids[:, :-1], ids[:, 1:].clone()
    y[torch.rand(y.shape, generator=torch.Generator().manual_seed(rng.randrange(2 ** 31))) < 0.3] = -1
    y[:, -1] = ids[:, -1]  # at least one target per row
    return x, y


def labels(rng, x, token_values):
    """Random roles (B, T) (the true role of each char, a random one, or -1) and steps (B, T, S) float64: NaN
    outside random answer spans, else extreme values or the values the extractor read."""
    B, T = x.shape
    roles = torch.tensor([[rng.choice([ROLE_OF.get(ALPHABET[i], 0), rng.randrange(len(CLASSES)), -1])
                           for i in row] for row in x.tolist()])
    S = rng.randint(1, 8)
    steps = torch.full((B, T, S), float('nan'), dtype=torch.float64)
    pool = STEP_VALUES + [v for v in token_values.flatten().tolist() if v != 0][:20]
    for b in range(B):
        start = rng.randrange(T)
        for t in range(start, min(T, start + rng.randint(1, 12))):
            steps[b, t] = torch.tensor([rng.choice(pool) for _ in range(S)], dtype=torch.float64)
    return roles, steps


def assert_dag_finite(out, aux):
    for name in ('values', 'token_values'):
        assert torch.isfinite(out[name]).all() and out[name].abs().max() <= MAX_VALUE, name
    assert torch.isfinite(out['feats']).all() and torch.isfinite(out['emb']).all()
    assert aux is None or torch.isfinite(aux)


def assert_finite_backward(model, loss):
    loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all(), name


WEIGHTS = ((False, 1.0), (False, 30.0), (True, 1.0), (True, 30.0))  # (wired, scale)


@pytest.mark.parametrize('flush', [False, True])  # True: train.py's flush_denormal (denormal floats as 0)
@pytest.mark.parametrize('seed', range(8))
def test_forward_backward_finite(seed, flush):
    model, rng = build(seed, *WEIGHTS[seed % 4])
    bf16 = seed >= 4
    x, y = batch(rng)
    with flush_denormal(flush):  # the forward and the backward pass
        with torch.autocast('cpu', dtype=torch.bfloat16, enabled=bf16):
            with torch.no_grad():
                _, out, _ = model.dag(x, model.hidden_states(x))
            roles, steps = labels(rng, x, out['token_values']) if rng.random() < 0.75 else (None, None)
            with torch.no_grad():
                _, out, aux = model.dag(x, model.hidden_states(x), roles, steps)
            assert_dag_finite(out, aux)
            logits, loss = model(x, y, roles=roles, steps=steps)
        assert torch.isfinite(logits).all() and torch.isfinite(loss)
        assert_finite_backward(model, loss)


NUMBERS = ['999999999999999999999', '0.000000001', '-0', '0', '-999999999999999', '9,999,999.999999999k', '-1']


@pytest.mark.parametrize('seed', range(4))
def test_forced_programs_finite(seed):
    """Every step forced to a random op (mostly pow, divide, log, multiply) on two extreme numbers of the text
    (read exactly by a wired extractor) or an earlier step's result; positions before a number see another."""
    model, rng = build(100 + seed, wired=True, scale=30.0 if seed % 2 else 1.0)
    model.eval()  # dropout would drop the wiring's one-hots (the forced choices need no Gumbel noise)
    a, b = rng.choice(NUMBERS), rng.choice(NUMBERS)
    text = f'{a} ^ {b} = '
    x = torch.from_numpy(encode((text + fuzz_text(rng))[:BLOCK]).astype(np.int64))[None]
    ends = [len(a) - 1, len(a) + 3 + len(b) - 1]
    ops = ['pow', 'divide', 'log', 'multiply'] * 2 + list(OPS)
    own = [scratch_index(x.size(1), j) for j in range(model.config.dag_depth)]  # each position's own steps
    program = [(rng.choice(ends + own[:k]), rng.choice(ends + own[:k]), rng.choice(ops))
               for k in range(model.config.dag_depth)]
    with torch.autocast('cpu', dtype=torch.bfloat16, enabled=seed >= 2), torch.no_grad():
        _, out, _ = model.dag(x, model.hidden_states(x), program=program)
    read = min(MAX_VALUE, float(a.replace(',', '').replace('k', 'e3')))  # past 15 digits, only to ~1e-16 relative
    assert out['token_values'][0, ends[0]].item() == pytest.approx(read, rel=1e-12)  # the wiring reads the text
    assert_dag_finite(out, None)
