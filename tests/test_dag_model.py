import math

import pytest
import torch
from torch.nn import functional as F

from dag_model import (CLASSES, MAX_VALUE, OPS, SYMBOLS, DAGGPT, DAGGPTConfig, dag_ops, linear_scan, read_numbers,
                       render_symbol, value_features)

D = torch.float64


def tiny_dag(depth=4, seed=0, **kw):
    torch.manual_seed(seed)
    cfg = dict(block_size=32, vocab_size=20, n_layer=1, n_head=2, n_embd=16, dropout=0.0, bias=False, dag_depth=depth)
    cfg.update(kw)
    return DAGGPT(DAGGPTConfig(**cfg))


def op(name, a, b):
    return dag_ops(torch.tensor(a, dtype=D), torch.tensor(b, dtype=D))[..., OPS.index(name)].item()


@pytest.mark.parametrize('a, b', [(3, 4), (-3, 4), (3, -4), (-3, -4), (0, 5), (5, 0), (0, 0), (1e-6, 1e6),
                                  (-1e6, 1e-6), (1234567890, 9876543210), (2.5, -0.25)])
def test_exact_ops(a, b):
    assert op('add', a, b) == a + b
    assert op('subtract', a, b) == a - b
    assert op('multiply', a, b) == max(-MAX_VALUE, min(MAX_VALUE, a * b))  # saturates past MAX_VALUE
    assert op('max', a, b) == max(a, b) and op('min', a, b) == min(a, b) and op('identity', a, b) == a
    if b != 0:
        assert op('divide', a, b) == pytest.approx(a / b, rel=1e-15)


def test_pow_and_log():
    assert op('pow', 3, 4) == 81 and op('pow', -2, 3) == -8 and op('pow', -2, 2) == 4
    assert op('pow', 86, 2) == 7396 and op('pow', 95772, 2) == 9172275984  # exact, as float64 holds it
    assert op('pow', 5824, 0) == 1 and op('pow', 0, 3) == 0 and op('pow', 2, -1) == 0.5
    assert op('pow', 4, 0.5) == pytest.approx(2)
    assert op('log', 64, 2) == pytest.approx(6, rel=1e-14) and op('log', 1000, 10) == pytest.approx(3, rel=1e-14)
    assert op('log', 7776, 6) == pytest.approx(5, rel=1e-14) and op('log', -8, 2) == pytest.approx(3)


def test_ops_saturate_instead_of_nan_or_inf():
    specials = [0.0, -0.0, 1e-300, -1e-300, 1e-12, 1.0, -1.0, 1e300, -1e300, MAX_VALUE, -MAX_VALUE,
                float('inf'), float('-inf'), 0.5, 7.0]
    a, b = torch.meshgrid(torch.tensor(specials, dtype=D), torch.tensor(specials, dtype=D), indexing='ij')
    out = dag_ops(a, b)
    assert torch.isfinite(out).all() and out.abs().max() <= MAX_VALUE
    assert op('divide', 1, 0) == pytest.approx(1e12) and op('divide', 1, -1e-13) == pytest.approx(-1e12)  # signed eps
    assert op('multiply', 1e10, 1e10) == MAX_VALUE and op('pow', 10, 100) == MAX_VALUE


def test_read_numbers_from_class_choices():
    # what the extractor says each character is -> the value of the number ending there
    def roles(text):
        names = {**{d: d for d in '0123456789'}, ',': 'sep', '.': 'point', 'k': 'k', '-': 'minus'}
        return [CLASSES.index(names.get(c, 'other')) for c in text]
    text = 'x 12,345 y -2.5k z 0.07 -7 1234567890123'
    y = F.one_hot(torch.tensor([roles(text)]), len(CLASSES)).to(D)
    value, length = read_numbers(y, window=24)
    at = lambda s: text.index(s) + len(s) - 1  # noqa: E731
    assert value[0, at('12,345')] == 12345 and value[0, at('-2.5k')] == -2500
    assert value[0, at('0.07')] == 0.07 and value[0, at('-7')] == -7
    assert value[0, at('1234567890123')] == 1234567890123
    assert value[0, at('12,3')] == 123 and value[0, text.index('y')] == 0
    assert length[0, at('12,345')] == 6 and length[0, text.index('z')] == 0


def test_linear_scan_matches_loop():
    torch.manual_seed(0)
    a, b = torch.randn(2, 30, dtype=D), torch.randn(2, 30, dtype=D)
    x, expected = torch.zeros(2, dtype=D), []
    for t in range(30):
        x = a[:, t] * x + b[:, t]
        expected.append(x)
    torch.testing.assert_close(linear_scan(a, b, window=30), torch.stack(expected, 1))


def test_render_symbol_writes_canonical_strings():
    def render(v):
        out = ''
        for j in range(20):
            s = SYMBOLS[render_symbol(torch.tensor(v, dtype=D), torch.tensor(j))]
            if s == 'end':
                return out
            out += s
    assert render(357) == '357' and render(-5304.7) == '-5304.7' and render(0) == '0' and render(-0.0) == '0'
    assert render(0.25) == '0.25' and render(-91.83) == '-91.83' and render(11111111100) == '11111111100'
    assert render(0.1 + 0.2) == '0.3' and render(6.000000000000001) == '6' and render(2 / 3) == '0.666667'
    assert render(9172275984) == '9172275984' and render(MAX_VALUE) == '1' + '0' * 15


def test_value_features_are_bounded():
    v = torch.tensor([0, 1e-6, -1e-6, 7, -123456.75, 1e15, -1e15, 1e300], dtype=D)
    f = value_features(v)
    assert f.dtype == torch.float32 and torch.isfinite(f).all() and f.abs().max() <= 1.0 + 1e-6


def test_forced_program_executes_exactly():
    # (3 + 4) * 5 = 35, then identity, on tokens whose values are given; 10-digit sums in float64
    model = tiny_dag(depth=3)
    T = 3
    values = torch.tensor([[3.0, 4.0, 5.0], [1234567890.0, 9876543210.0, 2.0]], dtype=D)
    e = torch.randn(2, T, 16)
    classes = torch.zeros(2, T, len(CLASSES))
    length = torch.ones(2, T, dtype=torch.long)
    program = [(0, 1, 'add'), (T + 0, 2, 'multiply'), (T + 1, 0, 'identity')]
    dag_values, feats, _ = model.controller(e, values, length, classes, e, e, program)
    assert dag_values.shape == (2, T, 3) and dag_values.dtype == D
    assert dag_values[0, -1].tolist() == [7.0, 35.0, 35.0]
    assert dag_values[1, -1].tolist() == [11111111100.0, 22222222200.0, 22222222200.0]
    assert feats.shape == (2, T, 3, feats.size(-1))


@pytest.mark.parametrize('depth', [1, 2, 5])
def test_one_node_per_step(depth):
    model = tiny_dag(depth=depth)
    idx = torch.randint(0, 20, (2, 9))
    _, dag_values, _ = model.dag(model.hidden_states(idx))
    assert dag_values.shape == (2, 9, depth)


def test_every_parameter_gets_a_gradient_from_the_lm_loss():
    model = tiny_dag()
    idx = torch.randint(0, 20, (3, 16))
    _, loss = model(idx, idx)
    loss.backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert missing == []


def test_labels_add_the_auxiliary_loss():
    model = tiny_dag().eval()  # eval: no exploration noise, so both passes make the same choices
    idx = torch.randint(0, 20, (2, 8))
    roles = torch.randint(-1, len(CLASSES), (2, 8))
    _, lm_only = model(idx, idx)
    _, with_roles = model(idx, idx, roles)
    assert with_roles > lm_only
    # a stated result that the DAG's own last program computes: its probability is raised
    _, dag_values, _ = model.dag(model.hidden_states(idx))
    answers = torch.full((2, 8), float('nan'), dtype=D)
    answers[:, 5:] = dag_values[:, 5:, -1]
    _, with_both = model(idx, idx, roles, answers)
    assert with_both > with_roles
    model.zero_grad()
    _, loss = model(idx, idx, None, answers)
    loss.backward()
    assert model.controller.op_head.weight.grad.abs().sum() > 0  # the answer loss reaches the op choice
    answers[:, 5:] = 0.123456  # no candidate program computes this: nothing to learn from it
    _, no_match = model(idx, idx, None, answers)
    assert no_match == lm_only


def test_causality_at_every_position():
    model = tiny_dag().eval()
    torch.manual_seed(1)
    idx = torch.randint(0, 20, (1, 16))
    logits, _ = model(idx, idx)
    for t in range(15):
        changed = idx.clone()
        changed[0, t + 1:] = (changed[0, t + 1:] + 5) % 20
        logits2, _ = model(changed, changed)
        torch.testing.assert_close(logits2[0, :t + 1], logits[0, :t + 1], atol=1e-6, rtol=1e-6)


def test_generate_matches_greedy_loop():
    from model import greedy_decode
    model = tiny_dag().eval()
    idx = torch.randint(0, 20, (2, 4))
    out = model.generate(idx, 6, temperature=0)
    assert torch.equal(out, greedy_decode(model, idx, 6))


@pytest.mark.parametrize('seed', range(12))
def test_no_nan_or_inf_anywhere(seed):
    """Random weights, random token values from 1e-6 to 1e6 in magnitude (zero included) and depth up to 8."""
    depth = 1 + seed % 8
    model = tiny_dag(depth=depth, seed=seed)
    g = torch.Generator().manual_seed(seed)
    B, T = 2, 12
    magnitude = 10 ** (torch.rand(B, T, generator=g, dtype=D) * 12 - 6)
    sign = torch.where(torch.rand(B, T, generator=g) < 0.5, -1.0, 1.0).to(D)
    values = torch.where(torch.rand(B, T, generator=g) < 0.2, 0.0, sign * magnitude)
    e = torch.randn(B, T, 16, generator=g, requires_grad=True)
    classes = F.one_hot(torch.randint(0, len(CLASSES), (B, T), generator=g), len(CLASSES)).float()
    length = torch.randint(0, 5, (B, T), generator=g)
    dag_values, feats, _ = model.controller(e, values, length, classes, e * 2, e * 3)
    assert torch.isfinite(dag_values).all() and torch.isfinite(feats).all()
    feats.sum().backward()
    assert torch.isfinite(e.grad).all()
    # and through the whole model, with whatever the untrained extractor reads
    idx = torch.randint(0, 20, (B, 20), generator=g)
    logits, loss = model(idx, idx, torch.randint(-1, len(CLASSES), (B, 20), generator=g))
    loss.backward()
    assert torch.isfinite(logits).all() and math.isfinite(loss.item())
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_extra_vals():
    model = tiny_dag()
    assert model.extra_vals() == {}  # nothing measured before a forward pass
    model(torch.randint(0, 20, (2, 8)))
    vals = model.extra_vals()
    assert {'gate', 'operand_entropy', 'max_abs_value'} <= set(vals)
    assert {f'op_{name}' for name in OPS} <= set(vals)
    assert all(isinstance(v, float) and math.isfinite(v) for v in vals.values())
    assert sum(vals[f'op_{name}'] for name in OPS) == pytest.approx(1.0)


def test_dag_depth_zero_is_rejected():
    with pytest.raises(ValueError, match='dag_depth'):
        tiny_dag(depth=0)


def test_from_pretrained_loads_gpt_part(tmp_path):
    transformers = pytest.importorskip('transformers')
    torch.manual_seed(0)
    hf = transformers.GPT2LMHeadModel(transformers.GPT2Config(vocab_size=30, n_positions=16, n_embd=16, n_layer=1,
                                                              n_head=2)).eval()
    hf.save_pretrained(tmp_path)
    model = DAGGPT.from_pretrained(str(tmp_path), dict(dag_depth=2))
    assert isinstance(model.config, DAGGPTConfig) and model.config.dag_depth == 2
    torch.testing.assert_close(model.transformer.h[0].mlp.c_fc.weight, hf.transformer.h[0].mlp.c_fc.weight.t())
    logits, _ = model(torch.randint(0, 30, (1, 8)))
    assert torch.isfinite(logits).all()


def test_corpus_roles_are_the_extractor_classes():
    import importlib.util
    import os
    from conftest import ROOT
    spec = importlib.util.spec_from_file_location('numeric_prepare', os.path.join(ROOT, 'data', 'numeric', 'prepare.py'))
    prepare = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(prepare)
    assert prepare.ROLES == CLASSES  # the labels index the classifier's classes
