import functools
import math
import re

import pytest
import torch
from torch.nn import functional as F

from conftest import flush_denormal
from dag_model import (CLASSES, FOURIER_PERIODS, MAX_VALUE, NOT_A_NUMBER, OPS, OPS_LABEL_WEIGHT, SYMBOLS, DAGGPT,
                       DAGController, DAGGPTConfig, after_number, canonical_prefix, dag_ops, leaf_sets, linear_scan,
                       multi_step_rows, number_views, popcount, program_loss, read_numbers, render_symbol,
                       scratch_index, step_labels, step_weight_loss, value_features)

D = torch.float64


TINY_VOCAB = list('0123456789.,k-+= \n?')  # tiny_dag's 20 tokens: random ids hold numbers


def tiny_dag(depth=4, seed=0, tokens=TINY_VOCAB, **kw):
    torch.manual_seed(seed)
    cfg = dict(block_size=32, vocab_size=20, n_layer=1, n_head=2, n_embd=16, dropout=0.0, bias=False, dag_depth=depth)
    cfg.update(kw)
    return DAGGPT(DAGGPTConfig(**cfg), tokens)


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
        names = {**{d: 'digits' for d in '0123456789'}, ',': 'sep', '.': 'point', 'k': 'k', '-': 'minus'}
        return [CLASSES.index(names.get(c, 'other')) for c in text]
    text = 'x 12,345 y -2.5k z 0.07 -7 1234567890123'
    y = F.one_hot(torch.tensor([roles(text)]), len(CLASSES)).to(D)
    digits = torch.tensor([[float(c) if c.isdigit() else 0.0 for c in text]], dtype=D)
    value, length, chars = read_numbers(y, digits, torch.tensor([[float(c.isdigit()) for c in text]], dtype=D), 24)
    assert (chars == length).all()  # one character a token
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


def render(v):
    """The canonical decimal string of v (a float), symbol by symbol as render_symbol gives it."""
    out = ''
    for j in range(20):
        s = SYMBOLS[render_symbol(torch.tensor(v, dtype=D), torch.tensor(j))]
        if s == 'end':
            return out
        out += s


def test_render_symbol_writes_canonical_strings():
    assert render(357) == '357' and render(-5304.7) == '-5304.7' and render(0) == '0' and render(-0.0) == '0'
    assert render(0.25) == '0.25' and render(-91.83) == '-91.83' and render(11111111100) == '11111111100'
    assert render(0.1 + 0.2) == '0.3' and render(6.000000000000001) == '6' and render(2 / 3) == '0.666666667'
    assert render(9172275984) == '9172275984' and render(MAX_VALUE) == '9007199254740992'
    assert render(166375000000000) == '166375000000000' and render(1.123456789) == '1.123456789'
    assert render(123456789.123456) == '123456789.123456' and render(-0.000000001) == '-0.000000001'
    assert render(0.07) == '0.07' and render(1e-10) == '0' and render(99999999999999.9) == '99999999999999.9'


@pytest.mark.parametrize('v', [357, -357, 3.25, -0.125, 0.5, 0, 11111111100, -5304.7, 2 / 3, 123456789.123456,
                               -0.000000001, 9007199254740992])
def test_canonical_prefix_is_the_number_its_first_characters_spell(v):
    """Every prefix of the canonical string, read as read_numbers reads a number written so far ("-" is 0, "3." is
    3), bit for bit: float() of the prefix's text is the nearest double, as read_numbers' one division gives."""
    text = render(v)
    for n in range(len(text) + 1):
        prefix = text[:n].rstrip('.')
        expected = float(prefix) if prefix not in ('', '-') else 0.0
        assert canonical_prefix(torch.tensor(v, dtype=D), torch.tensor(n)).item() == expected, (text, n)


def test_value_features_are_bounded():
    v = torch.tensor([0, 1e-6, -1e-6, 7, -123456.75, 1e15, -1e15, 2.0 ** 53, 1e300], dtype=D)
    f = value_features(v)
    assert f.dtype == torch.float32 and torch.isfinite(f).all() and f.abs().max() <= 1.0 + 1e-6


def test_value_features_read_the_digits_of_integers_up_to_2_53():
    # cos, sin of 2 pi v / 10^i are those of the last i digits of v (Python's exact integer v % 10^i), also where
    # v * (1 / 10^i) rounds up to the next integer in float64, so that v - p floor(v / p) is -1, not 9
    # (9007199254740799 at 10)
    values = [0, 7, 29, 30, 12345, -12345, 987654321987, 10 ** 15 + 7, 2 ** 53 - 1, -(2 ** 53 - 1),
              9007199254740799, -9007199254740799]
    f = value_features(torch.tensor(values, dtype=D))
    n = len(FOURIER_PERIODS)
    for row, v in zip(f, values):
        for i, p in enumerate(FOURIER_PERIODS):
            if p >= 1:
                angle = 2 * math.pi * (v % int(p)) / p
                assert abs(row[2 + i].item() - math.cos(angle)) < 1e-6
                assert abs(row[2 + n + i].item() - math.sin(angle)) < 1e-6


def test_forced_program_executes_exactly():
    # (3 + 4) * 5 = 35, then identity, on tokens whose values are given; 10-digit sums in float64
    model = tiny_dag(depth=3)
    T = 3
    values = torch.tensor([[3.0, 4.0, 5.0], [1234567890.0, 9876543210.0, 2.0]], dtype=D)
    e = torch.randn(2, T, 16)
    classes = torch.zeros(2, T, len(CLASSES))
    length = torch.ones(2, T, dtype=torch.long)
    program = [(0, 1, 'add'), (scratch_index(T, 0), 2, 'multiply'), (scratch_index(T, 1), 0, 'identity')]
    out = model.controller(e, values, length, length, classes, e, program)
    dag_values, feats = out['values'], out['feats']
    assert dag_values.shape == (2, T, 3) and dag_values.dtype == D
    assert dag_values[0, -1].tolist() == [7.0, 35.0, 35.0]
    assert dag_values[1, -1].tolist() == [11111111100.0, 22222222200.0, 22222222200.0]
    assert feats.shape == (2, T, 3, feats.size(-1))


def test_programs_read_a_child_by_its_label_and_a_copy_by_its_value():
    # 3 - 4 where the labels say the first step should give 7, then a second step on that node: the programs the
    # auxiliary loss scores read the node as 7 (so reading it is credited though the child is wrong), unless the
    # second step's own label is 7 too (a copy earns only what was computed); the forward values never change
    model = tiny_dag(depth=2).eval()
    T = 3
    values = torch.tensor([[3.0, 4.0, 5.0]], dtype=D)
    e, classes, length = torch.randn(1, T, 16), torch.zeros(1, T, len(CLASSES)), torch.ones(1, T, dtype=torch.long)
    nan = float('nan')
    for op, label, expected in [('multiply', 35.0, 35.0), ('identity', 7.0, -1.0)]:
        program = [(0, 1, 'subtract'), (scratch_index(T, 0), 2, op)]
        labels = torch.tensor([[[nan, nan], [nan, nan], [7.0, label]]], dtype=D)
        run = lambda **kw: model.controller(e, values, length, length, classes, e, program, **kw)  # noqa: E731
        out, plain = run(labels=labels), run()
        assert torch.equal(out['values'], plain['values']) and out['values'][0, -1, 0] == -1.0
        assert 'programs' not in plain
        results, _, scored = out['programs'][1]  # the last position's only: the other labels are NaN
        assert results.shape[0] == 1 and scored.tolist() == [label]
        assert results[0, 0, 0, OPS.index(op)] == expected  # the chosen pair's result under the chosen op


def test_step_labels_and_the_model_passes_them_to_the_controller(monkeypatch):
    # step k is taught column S - D + k, the columns before a row's first label filled with it, NaN before column 0;
    # DAGGPT.forward with steps hands exactly these to the controller (what DAGController.programs reads), and
    # nothing without
    nan = float('nan')
    steps = torch.tensor([[[nan, nan, 7.0, 35.0], [nan, nan, nan, nan]]], dtype=D)
    assert step_labels(steps, 2)[0, 0].tolist() == [7.0, 35.0]
    deeper = step_labels(steps, 6)
    assert deeper[0, 0, :2].isnan().all() and deeper[0, 0, 2:].tolist() == [7.0, 7.0, 7.0, 35.0]
    assert deeper[0, 1].isnan().all()
    model, seen, forward = tiny_dag(depth=2), [], DAGController.forward

    def spy(self, *args, **kwargs):
        seen.append(kwargs['labels'])
        return forward(self, *args, **kwargs)
    monkeypatch.setattr(DAGController, 'forward', spy)
    idx = torch.randint(0, 20, (1, 2))
    model(idx, idx, steps=steps)
    model(idx, idx)
    assert torch.equal(seen[0].nan_to_num(-1.0), step_labels(steps, 2).nan_to_num(-1.0)) and seen[1] is None


def test_multi_step_rows_are_the_rows_with_two_or_more_values():
    # a chain's parent (7 then 35), the answer on every step (one value), a single op, no label; arrays or tensors
    nan = float('nan')
    rows = [[nan, nan, 7.0, 35.0], [35.0] * 4, [nan, nan, nan, -2.5], [nan] * 4, [0.0, -0.0, nan, 0.0]]
    assert multi_step_rows(rows).tolist() == [True, False, False, False, False]
    assert multi_step_rows(torch.tensor(rows, dtype=D)).tolist() == [True, False, False, False, False]


def test_steps_of_one_position_run_the_program_the_text_asks_for():
    # (3 + 4) * 20 and (3 * 4) + 20: the same numbers, the ops in the opposite order, told apart by the contexts
    # only; no other op computes any of the four steps. Trained through program_loss, the two steps must compute each
    # row's own sub-expressions. With one op head shared by the steps (a step embedding added to the context), every
    # step's op logits differed by a constant, so no weights could swap the order (issue 8: chains' steps all ran the
    # same program).
    model = tiny_dag(depth=2)  # trained with exploration (the candidates change), checked in eval mode (argmax)
    T, C = 3, 16
    values = torch.tensor([[3.0, 4.0, 20.0]] * 2, dtype=D)
    length = torch.ones(2, T, dtype=torch.long)
    torch.manual_seed(1)
    e, ctx = torch.randn(1, T, C).expand(2, T, C), torch.randn(2, 1, C).expand(2, T, C)
    steps = torch.full((2, T, 2), float('nan'), dtype=D)
    steps[:, -1] = torch.tensor([[7.0, 140.0], [12.0, 32.0]], dtype=D)
    controller = model.controller
    opt = torch.optim.Adam(controller.parameters(), lr=3e-2)
    for _ in range(100):
        out = controller(e, values, length, length, torch.zeros(2, T, len(CLASSES)), ctx, labels=step_labels(steps, 2))
        loss = program_loss(out['programs'])
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        out = controller.eval()(e, values, length, length, torch.zeros(2, T, len(CLASSES)), ctx)
    assert out['values'][:, -1].tolist() == [[7.0, 140.0], [12.0, 32.0]]


@pytest.mark.parametrize('depth', [1, 2, 5])
def test_one_node_per_step(depth):
    model = tiny_dag(depth=depth)
    idx = torch.randint(0, 20, (2, 9))
    _, out, _ = model.dag(idx, model.hidden_states(idx))
    assert out['values'].shape == (2, 9, depth) and out['choices'].shape == (2, 9, depth, 3)


@pytest.mark.parametrize('depth', [1, 4])
def test_every_parameter_gets_a_gradient_from_the_lm_loss(depth):
    model = tiny_dag(depth=depth)
    idx = torch.randint(0, 20, (3, 16))
    _, loss = model(idx, idx)
    loss.backward()
    assert all(p.grad is not None for p in model.parameters())  # DDP's need
    # the judge's last bias shifts every step's score alike, and the step weights' softmax ignores a shared shift: its
    # gradient is 0 up to rounding (exactly 0 with some inputs)
    inert = {'readout.step_score.2.bias'}
    missing = [n for n, p in model.named_parameters() if n not in inert and not p.grad.abs().sum() > 0]
    assert missing == []


def test_labels_add_the_auxiliary_loss():
    model = tiny_dag().eval()  # eval: no exploration noise, so both passes make the same choices
    idx = torch.randint(0, 20, (2, 8))
    roles = torch.randint(-1, len(CLASSES), (2, 8))
    _, lm_only = model(idx, idx)
    _, with_roles = model(idx, idx, roles=roles)
    assert with_roles > lm_only
    # step values that the DAG's own programs compute, right-aligned in 8 columns: their probability is raised
    _, out, _ = model.dag(idx, model.hidden_states(idx))
    steps = torch.full((2, 8, 8), float('nan'), dtype=D)
    steps[:, 5:, -2:] = out['values'][:, 5:, -2:]
    _, with_both = model(idx, idx, roles=roles, steps=steps)
    assert with_both > with_roles
    with torch.no_grad():  # evaluated with labels: the probabilities the loss reads are computed without gradients
        _, evaluated = model(idx, idx, roles=roles, steps=steps)
    assert evaluated.item() == pytest.approx(with_both.item(), rel=1e-5)  # the readout's features batched otherwise
    model.zero_grad()
    _, loss = model(idx, idx, steps=steps)
    loss.backward()
    assert model.controller.op_head.weight.grad.abs().sum() > 0  # the step loss reaches the op choice
    steps[:, 5:, -2:] = 0.123456  # no candidate program computes this: nothing to learn from it
    _, no_match = model(idx, idx, steps=steps)
    assert no_match == lm_only


def test_ops_labels_teach_the_op_read_at_a_right_operand():
    """ops (B, T): the cross-entropy of the op as read at each labelled token (the anchor a step adds to its op
    logits when its right operand's node is there), dag_value_loss x OPS_LABEL_WEIGHT times; it trains the anchor
    head only."""
    model = tiny_dag().eval()
    idx = torch.randint(0, 20, (2, 8))
    ops = torch.full((2, 8), -1)
    ops[0, 3], ops[1, 6] = OPS.index('multiply'), OPS.index('max')
    _, lm_only = model(idx, idx)
    _, out, _ = model.dag(idx, model.hidden_states(idx))
    anchor = model.controller.op_anchor(model.context(model.hidden_states(idx)))
    assert torch.equal(out['anchor_logits'], anchor)  # (B, T, 9): the op as read at every position
    expected = F.cross_entropy(anchor[ops >= 0], ops[ops >= 0])
    _, loss = model(idx, idx, ops=ops)
    weight = model.config.dag_value_loss * OPS_LABEL_WEIGHT
    assert loss.item() == pytest.approx(lm_only.item() + weight * expected.item(), rel=1e-6)
    model.zero_grad()
    model.dag(idx, model.hidden_states(idx), ops=ops)[2].backward()  # the auxiliary loss alone
    grads = {n for n, p in model.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}
    assert 'controller.op_anchor.weight' in grads and 'controller.op_head.weight' not in grads
    _, none_labelled = model(idx, idx, ops=torch.full((2, 8), -1))
    assert none_labelled == lm_only


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
    out = model.controller(e, values, length, length, classes, e * 2)
    dag_values, feats = out['values'], out['feats']
    assert torch.isfinite(dag_values).all() and torch.isfinite(feats).all()
    feats.sum().backward()
    assert torch.isfinite(e.grad).all()
    # and through the whole model, with whatever the untrained extractor reads
    idx = torch.randint(0, 20, (B, 20), generator=g)
    logits, loss = model(idx, idx, torch.randint(-1, len(CLASSES), (B, 20), generator=g))
    loss.backward()
    assert torch.isfinite(logits).all() and math.isfinite(loss.item())
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_stats_are_returned_not_stored():
    model = tiny_dag()
    idx = torch.randint(0, 20, (2, 8))
    stats = {}
    _, loss = model(idx, idx, roles=torch.randint(-1, len(CLASSES), (2, 8)), stats=stats)
    assert {'lm_loss', 'aux_loss', 'gate', 'operand_entropy', 'max_abs_value'} <= set(stats)
    assert {f'op_{name}' for name in OPS} <= set(stats)
    assert all(v.dim() == 0 and torch.isfinite(v) for v in stats.values())
    assert sum(stats[f'op_{name}'] for name in OPS).item() == pytest.approx(1.0)
    assert loss.item() == pytest.approx((stats['lm_loss'] + model.config.dag_value_loss * stats['aux_loss']).item())
    with torch.no_grad():  # evaluation: no training diagnostics computed, and nothing kept on the modules
        stats = {}
        model(idx, idx, stats=stats)
    assert set(stats) == {'lm_loss', 'gate'}
    assert not any(isinstance(v, torch.Tensor) for m in model.modules() for v in vars(m).values())


@pytest.mark.parametrize('depth', [1, 4])
def test_cached_generation_gives_the_uncached_tokens(depth):
    """GPT+DAG's KV cache (DAGCache): the same greedy tokens as re-running the window, also past block_size
    (32), and the same logits at every position to float32 rounding."""
    from model import greedy_decode
    model = tiny_dag(depth=depth, seed=3).eval()
    idx = torch.randint(0, 20, (3, 5))
    cached = model.generate(idx, 40, temperature=0, use_cache=True)
    assert torch.equal(cached, model.generate(idx, 40, temperature=0, use_cache=False))
    assert torch.equal(greedy_decode(model, idx, 40, use_cache=True), cached)
    with torch.no_grad():
        full, _ = model(cached[:, :30].contiguous(), cached[:, :30].contiguous())
        cache = model.new_kv_cache(3, 32)
        first, _ = model(cached[:, :10], kv_cache=cache)
        steps = torch.cat([model(cached[:, t:t + 1], kv_cache=cache)[0] for t in range(10, 30)], 1)
    torch.testing.assert_close(first[:, -1], full[:, 9], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(steps, full[:, 10:30], atol=1e-5, rtol=1e-5)
    if depth > 1:  # the scratch nodes' leaf sets come from the cache too: the judge's leaf inputs are the same
        with torch.no_grad():
            ids = cached[:, :30].contiguous()
            _, whole, _ = model.dag(ids, model.hidden_states(ids))
            cache = model.new_kv_cache(3, 32)
            parts = [model.dag(ids[:, t:t + 1], model.hidden_states(ids[:, t:t + 1], cache.trunk), cache=cache)[1]
                     for t in range(30)]
        for name in ('distinct', 'leaf_counts'):
            assert torch.equal(torch.cat([part[name] for part in parts], 1), whole[name]), name
        # the same programs: choices number the nodes by the tokens seen (t + 1 of them at position t), so step j's
        # scratch node at position s is (t + 1)(1 + j) + s in a part and 30 (1 + j) + s in the whole
        for t, part in enumerate(parts):
            node, op = part['choices'][:, 0, :, :2], part['choices'][:, 0, :, 2]
            j, s = node // (t + 1) - 1, node % (t + 1)
            assert torch.equal(torch.where(j >= 0, 30 * (1 + j) + s, node), whole['choices'][:, t, :, :2])
            assert torch.equal(op, whole['choices'][:, t, :, 2])
        # and the same values: bit for bit but where log and pow round differently over tensors of different
        # lengths (vectorised lanes and the scalar tail: 0.5 ** 0.5 a float64 ulp apart)
        values = torch.cat([part['values'] for part in parts], 1)
        torch.testing.assert_close(values, whole['values'], rtol=1e-15, atol=0)
        exact_ops = ~torch.isin(whole['choices'][..., 2], torch.tensor([OPS.index('log'), OPS.index('pow')]))
        assert torch.equal(values[..., 0][exact_ops[..., 0]], whole['values'][..., 0][exact_ops[..., 0]])



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


# -----------------------------------------------------------------------------
# exact end to end, through the module path training and generation use (issue 8): a model wired by hand so
# that its trunk hands each token's role in a number to the value extractor, whose classifier is confident but
# soft (the argmax has about 0.8 of the probability), as a trained one is. The float32 straight-through sum
# hard + soft - soft.detach() made such a model read 6 + 9 as 14.9999999.

VOCAB = '\n 0123456789,.k-+*/=()?abcdefghijklmnopqrstuvwxyzW'
ROLE_OF = {**{d: CLASSES.index('digits') for d in '0123456789'}, ',': CLASSES.index('sep'), '.': CLASSES.index('point'),
           'k': CLASSES.index('k'), '-': CLASSES.index('minus')}


def wired_dag(depth=2, block_size=128, **kw):
    """A DAGGPT (n_embd 16) whose hidden state at each token is the layer norm of the one-hot of its role (plus
    a little noise)."""
    model = tiny_dag(depth=depth, vocab_size=len(VOCAB), block_size=block_size, tokens=list(VOCAB), **kw)
    with torch.no_grad():
        for block in model.transformer.h:  # residual branches off: blocks pass x on
            block.attn.c_proj.weight.zero_()
            block.mlp.c_proj.weight.zero_()
        # a little noise per position, so that each token's softmax differs, as in a trained model
        model.transformer.wpe.weight.copy_(0.1 * torch.randn(model.config.block_size, 16,
                                                            generator=torch.Generator().manual_seed(0)))
        model.transformer.wte.weight.copy_(torch.eye(16)[[ROLE_OF.get(c, 0) for c in VOCAB]])
        model.value_extractor.classify.weight.zero_()
        model.value_extractor.classify.weight[:len(CLASSES)] = torch.eye(16)[:len(CLASSES)]
        model.value_extractor.classify.bias.zero_()
    return model


def encode(text):
    return torch.tensor([[VOCAB.index(c) for c in text]])


def read_tokens(model, text, dtype=None):
    """What model.dag reads from text: (values (T,) float64, DAG output dict), optionally under CPU autocast."""
    idx = encode(text)
    with torch.autocast('cpu', dtype=dtype or torch.bfloat16, enabled=dtype is not None):
        _, out, _ = model.dag(idx, model.hidden_states(idx))
    return out['token_values'][0], out


NUMBERS = ['6', '9', '12,345', '-2.5k', '0.07', '-7', '1234567890123', '12.25', '999999999999999', '3k', '-0.5',
           '2,500.75', '86', '95772']


@pytest.mark.parametrize('mode', ['train', 'eval', 'bf16', 'flush'])
def test_extractor_reads_numbers_bitwise_exactly(mode):
    """'flush': training with train.py's --flush_denormal=True (denormal floats as 0)."""
    model = wired_dag().train(mode in ('train', 'flush'))
    text = 'x ' + ' y '.join(NUMBERS) + ' z'
    with flush_denormal(mode == 'flush'):
        values, out = read_tokens(model, text, torch.bfloat16 if mode == 'bf16' else None)
    confidence = F.softmax(model.value_extractor.classify(model.hidden_states(encode(text))), -1)
    assert 0.5 < confidence.max(-1).values.min() < confidence.max(-1).values.max() < 0.95  # soft, and not uniform
    pos = 2
    for number in NUMBERS:
        end = pos + len(number) - 1
        assert values[end].item() == float(number.replace(',', '').replace('k', 'e3')), number
        pos = end + 4
    assert values[text.index('y')] == 0


def python_op(name, a, b):
    return {'add': a + b, 'subtract': a - b, 'multiply': a * b, 'max': max(a, b), 'min': min(a, b),
            'identity': a}.get(name)


CHOICES_TEXT = '6 + 9 = 15 and 1234567890 plus 9876543210 is -2.5k or 12,345 * 86 ='


@pytest.mark.parametrize('mode', ['train', 'eval', 'flush'])
def test_learned_choices_compute_exactly(mode):
    """Whatever the (random, untrained) controller picks, every DAG value is the chosen op on the exact values
    ('flush': in training with train.py's flush_denormal)."""
    model = wired_dag(depth=4, seed=3).train(mode in ('train', 'flush'))
    with flush_denormal(mode == 'flush'):
        assert_choices_exact(model, *read_tokens(model, CHOICES_TEXT))


def assert_choices_exact(model, token_values, out):
    """Every DAG value of out (DAGGPT.dag's dict, one row) is its chosen op on the exact values token_values (T,)
    and the earlier steps' values: bit for bit where float64 holds the result. With a training step's share of
    the positions (DAGGPT.train_positions), out holds those positions' nodes only, numbered as the choices are."""
    T = out['values'].size(1)  # the positions the DAG ran at: all, or a training step's share
    checked = 0
    for t in range(T):
        nodes = token_values.tolist() + out['values'][0].T.flatten().tolist()  # tokens, then each step's nodes
        for k in range(model.config.dag_depth):
            a, b, o = out['choices'][0, t, k].tolist()
            expected = python_op(OPS[o], nodes[a], nodes[b])
            if expected is not None and abs(expected) < 2 ** 53:  # exact in float64; saturated past MAX_VALUE
                assert out['values'][0, t, k].item() == max(-MAX_VALUE, min(MAX_VALUE, expected))
                checked += 1
            else:  # saturated, or a result float64 rounds: dag_ops' own, bit for bit, except log and pow, whose
                # results are irrational and whose batched kernels may round once differently from the scalar one
                # (pow(2^53, -0.5) did): to an ulp
                got = out['values'][0, t, k].item()
                want = dag_ops(torch.tensor(nodes[a], dtype=D), torch.tensor(nodes[b], dtype=D))[o].item()
                assert got == want or (OPS[o] in ('log', 'pow') and abs(got - want) <= math.ulp(want))
    assert checked > T  # most choices are exact ops


def run_on_a_share(model, idx, share, monkeypatch, steps=None):
    """model.dag on idx (1, T) (with the steps labels (1, T, S) if given) in training with dag_train_positions=share
    -> (the positions it ran at (1, M), its dict, and a list to which each later call's positions are appended)."""
    model.config.dag_train_positions = share
    drawn = []
    train_positions = model.train_positions
    monkeypatch.setattr(model, 'train_positions', lambda *a: drawn.append(train_positions(*a)) or drawn[-1])
    _, out, _ = model.dag(idx, model.hidden_states(idx), steps=steps)
    return drawn[0], out, drawn


def test_training_on_a_share_of_the_positions_computes_exactly_there(monkeypatch):
    """With dag_train_positions < 1 a training step runs the DAG at M = share x T positions: every position right
    after a number (later positions read its nodes) and random others, ascending; what it computes there is
    exact, and positions left out get no dag_sem (their logits are the GPT's)."""
    model = wired_dag(depth=4, seed=3).train()
    idx = encode(CHOICES_TEXT)
    T = idx.size(1)
    positions, out, drawn = run_on_a_share(model, idx, 0.5, monkeypatch)
    assert positions.shape == (1, round(0.5 * T)) and out['values'].shape == (1, positions.size(1), 4)
    assert (positions.diff() > 0).all()
    after = [t for t in range(1, T) if CHOICES_TEXT[t - 1].isdigit() and not CHOICES_TEXT[t].isdigit() and
             CHOICES_TEXT[t] not in ',.k']
    assert set(after) <= set(positions[0].tolist())
    assert_choices_exact(model, out['token_values'][0], out)
    logits, _ = model(idx, idx)
    positions = drawn[-1]  # this step's draw
    left_out = sorted(set(range(T)) - set(positions[0].tolist()))
    gpt_logits = model.lm_head(model.hidden_states(idx))
    assert torch.equal(logits[0, left_out], gpt_logits[0, left_out])
    assert not torch.equal(logits[0, positions[0]], gpt_logits[0, positions[0]])


def test_a_training_step_keeps_the_positions_its_steps_labels_name(monkeypatch):
    """Through DAGGPT.dag: at a share too small for every position after a number, the positions where the steps
    labels name a value are still all kept (train_positions ranks them first)."""
    model = wired_dag(depth=4, seed=3).train()
    idx = encode(CHOICES_TEXT)
    steps = torch.full((1, idx.size(1), 8), float('nan'), dtype=D)
    labelled = [2, 12, 27]  # '+', the 'n' of and, the 'l' of plus: none right after a number
    steps[0, labelled, -1] = 1.0
    for seed in range(5):
        torch.manual_seed(seed)
        positions, out, _ = run_on_a_share(model, idx, 0.1, monkeypatch, steps)  # M = 7: fewer than after a number
        after = after_number(out['length'])[0]
        assert after.sum() >= positions.size(1) and not after[labelled].any()  # the premise: labels must outrank
        assert set(labelled) <= set(positions[0].tolist())


def test_a_share_of_the_positions_computes_what_all_of_them_do(monkeypatch):
    """The same choices (the controller's argmax: no exploration noise) at the positions a share keeps give the
    same values, symbols and readout features as the DAG run at every position, wherever an operand is visible."""
    model = wired_dag(depth=4, seed=3).train()
    model.controller.eval()  # argmax choices, still the training step's share of the positions
    idx = encode(CHOICES_TEXT)
    _, full, _ = model.dag(idx, model.hidden_states(idx))
    positions, share, _ = run_on_a_share(model, idx, 0.5, monkeypatch)
    first = CHOICES_TEXT.index(' ')  # after the first number: some operand is visible
    views = number_views(full['length'], positions)  # a position inside a number reads its view's scratch nodes
    kept = (positions[0] >= first) & torch.isin(views[0], positions[0])
    assert torch.equal(share['values'][0, kept], full['values'][0, positions[0, kept]])
    assert torch.equal(share['symbols'][0, kept], full['symbols'][0, positions[0, kept]])
    assert torch.equal(share['feats'][0, kept], full['feats'][0, positions[0, kept]])
    assert torch.equal(share['step_weights'][0, kept], full['step_weights'][0, positions[0, kept]])


def test_the_step_weight_loss_on_a_share_of_the_positions_is_that_of_all_of_them():
    """The auxiliary loss (the steps' programs and the step weights') of a training step on a share of the
    positions that keeps every labelled one is that of the DAG at every position: the labels, the context and the
    number written so far are read at the positions the DAG ran at."""
    model = wired_dag(depth=4, seed=3).train()
    model.controller.eval()  # argmax choices, still the training step's share of the positions
    idx = encode(CHOICES_TEXT)
    model.config.dag_train_positions = 1.0
    _, free, _ = model.dag(idx, model.hidden_states(idx))
    values = free['values'][0]
    disagree = [t for t in range(idx.size(1)) if len(set(values[t].tolist())) > 1][-6:]
    steps = torch.full((1, idx.size(1), 8), float('nan'), dtype=D)
    steps[0, disagree, -1] = values[disagree, 1]  # step 1 holds the label there, some other step does not
    _, full, loss_all = model.dag(idx, model.hidden_states(idx), steps=steps)
    written = torch.where(full['length'] > 0, full['token_values'], float('nan'))
    assert step_weight_loss(full['step_weights'], full['values'], step_labels(steps, 4), written) > 0
    model.config.dag_train_positions = 0.5
    _, share, loss_share = model.dag(idx, model.hidden_states(idx), steps=steps)
    assert share['values'].size(1) < full['values'].size(1)
    # the same terms, summed over M positions against T: float32's sums may round apart by an ulp (wired_dag's
    # seed 4 does), while a label, context or number read at a wrong position moves the loss by far more
    torch.testing.assert_close(loss_share, loss_all, rtol=1e-6, atol=0)


def test_training_positions_keep_every_labelled_position():
    """train_positions: the positions with a step label come first, then those right after a number, then others."""
    model = tiny_dag(depth=2, dag_train_positions=0.25)
    length = torch.zeros(2, 32, dtype=torch.long)
    length[:, 3:5] = torch.tensor([1, 2])  # a number at tokens 3-4: position 5 is after it
    labels = torch.full((2, 32, 2), float('nan'), dtype=D)
    labels[0, [9, 20, 30], 1] = 7.0
    labels[1, 12, 0] = 3.0
    for seed in range(5):
        torch.manual_seed(seed)
        positions = model.train_positions(length, labels)
        assert positions.shape == (2, 8)
        assert {5, 9, 20, 30} <= set(positions[0].tolist()) and {5, 12} <= set(positions[1].tolist())
        assert all(len(set(row)) == 8 for row in positions.tolist())
    # more of both kinds than M = 8: every labelled position first, then after-number ones, never another
    length = torch.tensor([[1, 0] * 14 + [0] * 4])  # 14 one-token numbers: 1, 3, ..., 27 come right after one
    labels = torch.full((1, 32, 2), float('nan'), dtype=D)
    labels[0, [4, 12, 20, 31], 1] = 5.0
    for seed in range(5):
        torch.manual_seed(seed)
        row = set(model.train_positions(length, labels)[0].tolist())
        assert len(row) == 8 and {4, 12, 20, 31} <= row and row - {4, 12, 20, 31} <= set(range(1, 28, 2))


def _ddp_rank(rank, world_size, init_file):
    """One process of test_exact_under_ddp: GPT+DAG wrapped in DDP (gloo), a training step's forward and backward."""
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel as DDP
    torch.set_num_threads(1)
    dist.init_process_group('gloo', init_method=f'file://{init_file}', rank=rank, world_size=world_size)
    try:
        model = wired_dag(depth=4, seed=3, block_size=256)
        seen = {}  # what the controller was given and computed inside DDP's forward
        model.controller.register_forward_hook(lambda m, args, out: seen.update(token_values=args[1][0], out=out))
        ddp = DDP(model)
        text = 'x ' + ' y '.join(NUMBERS) + ' z ' + CHOICES_TEXT
        idx = encode(text)
        _, loss = ddp(idx[:, :-1], idx[:, 1:])
        loss.backward()
        pos = 2
        for number in NUMBERS:  # every number read bitwise exactly
            end = pos + len(number) - 1
            assert seen['token_values'][end].item() == float(number.replace(',', '').replace('k', 'e3')), number
            pos = end + 4
        assert_choices_exact(model, seen['token_values'], seen['out'])
        assert all(torch.isfinite(p.grad).all() for p in model.parameters())
    finally:
        dist.destroy_process_group()


def test_exact_under_ddp(tmp_path):
    """Exact end to end in DDP, as train.py runs it under torchrun: two processes on the CPU (gloo), the numbers
    and the learned choices' results bit for bit inside the wrapped module's training forward."""
    import torch.multiprocessing as mp
    mp.spawn(_ddp_rank, args=(2, str(tmp_path / 'init')), nprocs=2, join=True)


def views_of(model, text):
    """The position each position's DAG runs as (number_views) as model.dag reads text -> (T,) long."""
    idx = encode(text)
    with torch.no_grad():
        length = model.dag(idx, model.hidden_states(idx))[1]['length']
    return number_views(length, torch.arange(idx.size(1))[None])[0]


@pytest.mark.parametrize('mode', ['train', 'eval', 'no_grad'])
def test_a_steps_op_reads_how_its_operands_relate(mode):
    """The op logits add op_relation's row for the chosen operands: a and b the same node or not, b a token or a
    step's node. With forced operands and the op left to the model, a large bias on one op in a row picks it
    exactly where the operands relate so, through DAGGPT.dag."""
    model = wired_dag(depth=2).train(mode == 'train')
    text = '6 + 9 ='
    T, last = len(text), len(text) - 1
    s0 = scratch_index(T, 0, views_of(model, text))  # step 0's node at each position
    forced = [(text.index('6'), text.index('9'), None), (s0, s0, None)]  # two tokens; then one step's node twice
    relation = model.controller.op_relation.weight

    def ops_chosen(row=None, op=None):  # the ops of both steps at the last position, with one row's bias
        with torch.no_grad():
            relation.zero_()
            if row is not None:
                relation[row, OPS.index(op)] = 1e4
        torch.manual_seed(0)  # the same exploration noise in every call
        with torch.set_grad_enabled(mode != 'no_grad'):
            out = model.dag(encode(text), model.hidden_states(encode(text)), program=forced)[1]
        return [OPS[o] for o in out['choices'][0, last, :, 2].tolist()]
    own = ops_chosen()
    assert own[0] != 'multiply' and own[1] not in ('identity', 'max')  # so that each row's pick shows
    assert ops_chosen(0, 'multiply') == ['multiply', own[1]]
    assert ops_chosen(3, 'identity') == [own[0], 'identity'] and ops_chosen(3, 'max') == [own[0], 'max']
    assert ops_chosen(1, 'pow') == own and ops_chosen(2, 'pow') == own  # b a step's and a another, a token twice


def test_inside_a_number_the_dag_runs_as_the_position_before_it():
    """number_views: a position inside a number runs as the one before its first token (the answer being written is
    the DAG's output there, not an operand); outside numbers, and where that token is itself in a number or before
    the window, as itself."""
    length = torch.tensor([[1, 2, 0, 0, 1, 2, 3, 0, 1, 0, 1, 2]])  # "12 -3.5 7 -4" as the extractor counts tokens
    views = number_views(length, torch.arange(12)[None])[0].tolist()
    assert views == [0, 1, 2, 3, 3, 3, 3, 7, 7, 9, 9, 9]
    assert number_views(torch.tensor([[0, 1, 1, 2]]), torch.tensor([[3, 1, 2]])).tolist() == [[3, 0, 2]]


@pytest.mark.parametrize('mode', ['train', 'eval', 'no_grad'])
def test_an_answer_is_written_from_the_values_computed_before_it(mode):
    """Through DAGGPT.dag on the learned (random) choices: at every token of a number the DAG's values are those of
    the position before the number, bit for bit (in training each position draws its own
    exploration noise: there the controller runs in eval mode), and its symbols are each value's at its own index."""
    model = wired_dag(depth=4, seed=3).train(mode == 'train')
    model.controller.eval()
    text = '6 + 9 = 15 and 12,345 * 86 = 1061670\n'
    idx = encode(text)
    with torch.set_grad_enabled(mode != 'no_grad'):
        _, out, _ = model.dag(idx, model.hidden_states(idx))
    views = views_of(model, text)
    inside = [t for t in range(len(text)) if views[t] != t]
    assert len(inside) == 18 and text[views[inside[-1]]] == ' ' and text[inside[-1]] == '0'
    for t in inside:
        assert torch.equal(out['values'][0, t], out['values'][0, views[t]])
        assert out['symbols'][0, t].tolist() == render_symbol(out['values'][0, t], out['written'][0, t]).tolist()


def spelled(out, t, step=-1):
    """The answer the DAG's symbols spell from position t on (one symbol per position, up to 'end')."""
    symbols = [SYMBOLS[s] for s in out['symbols'][0, t:, step].tolist()]
    return ''.join(symbols[:symbols.index('end')]) if 'end' in symbols else None


@pytest.mark.parametrize('mode', ['train', 'eval', 'bf16', 'no_grad', 'flush'])
@pytest.mark.parametrize('prompt, program, answer', [
    ('6 + 9 = ', [('6', '9', 'add')], '15'),
    ('What is 1234567890 plus 9876543210? ', [('1234567890', '9876543210', 'add')], '11111111100'),
    ('2.5k / -4 = ', [('2.5k', '-4', 'divide')], '-625'),
    ('12,345 * 86 = ', [('12,345', '86', 'multiply')], '1061670'),
    ('0.07 - 12.25 = ', [('0.07', '12.25', 'subtract')], '-12.18'),
    ('(3 + 4) * 5 = ', [('3', '4', 'add'), (0, '5', 'multiply')], '35'),
    ('the larger of -7 and 3 less 999999999999 is ', [('-7', '3', 'max'), (0, '999999999999', 'subtract')],
     '-999999999996'),  # (no ',' after a number: the wired extractor would read it as a thousands separator)
])
def test_forced_programs_render_the_exact_answer(mode, prompt, program, answer):
    """From the characters of the numbers to the digits the DAG renders at every answer position, through
    DAGGPT.dag: the value is the float64 of the answer and the symbols spell the answer, then 'end'. 'no_grad' is
    generation's path (eval mode without gradients), where the symbols of every step are rendered in one call;
    'flush' training's with train.py's flush_denormal."""
    model = wired_dag(depth=len(program)).train(mode in ('train', 'flush'))
    text = prompt + answer + '\n'
    T = len(text)
    views = views_of(model, text)  # a step's own scratch node: that of the position its DAG runs as
    at = lambda s: prompt.index(s) + len(s) - 1 if isinstance(s, str) else scratch_index(T, s, views)  # noqa: E731
    forced = [(at(a), at(b), op) for a, b, op in program]
    bf16 = torch.autocast('cpu', dtype=torch.bfloat16, enabled=mode == 'bf16')
    judged = []  # what the step judge is told: which steps' values begin with the number written so far
    hook = model.readout.register_forward_hook(lambda module, args, output: judged.append(args[-1]))
    with bf16, torch.set_grad_enabled(mode != 'no_grad'), flush_denormal(mode == 'flush'):
        _, out, _ = model.dag(encode(text), model.hidden_states(encode(text)), program=forced)
    hook.remove()
    first = len(prompt) - 1  # the prompt's last char: the DAG holds the answer from here to the answer's last
    for t in range(first, T - 1):
        assert out['values'][0, t, -1].item() == float(answer)
        written = t - first  # answer chars already written at t
        assert spelled(out, t) == answer[written:]
        assert judged[0][0, t].tolist() == [render(v).startswith(answer[:written])
                                             for v in out['values'][0, t].tolist()]
    assert judged[0][0, first:T - 1, -1].all()


def test_no_grad_renders_the_same_symbols_and_features():
    """Generation's path (no gradients: every step's symbol rendered in one call after the steps, value features
    of the chosen value alone) against training's (per step, the chosen result's features gathered from the
    candidates'), in eval mode on the learned, random choices: the same values and symbols bit for bit, the same
    readout features (float32 cos / sin of the same float64 angles, batched differently) and logits."""
    model = wired_dag(depth=4, seed=3).eval()
    idx = encode(CHOICES_TEXT)
    _, out, _ = model.dag(idx, model.hidden_states(idx))
    with torch.no_grad():
        _, fast, _ = model.dag(idx, model.hidden_states(idx))
        logits = model(idx)[0]
    assert torch.equal(fast['values'], out['values']) and torch.equal(fast['symbols'], out['symbols'])
    assert torch.equal(fast['choices'], out['choices'])  # the scratch nodes' keys (op embedding looked up) agree
    assert len(set(out['symbols'].flatten().tolist())) > 3  # digits and signs, not 'end' alone
    torch.testing.assert_close(fast['feats'], out['feats'].detach(), rtol=0, atol=1e-6)
    torch.testing.assert_close(logits, model(idx)[0].detach(), rtol=0, atol=1e-5)


@pytest.mark.parametrize('mode', ['train', 'eval', 'bf16'])
def test_a_step_reads_the_node_an_earlier_position_computed(mode):
    """(3 + 4) * 5 as the corpus labels it: step 0 computes 3 + 4 at ')' (the position right after the 4), and
    step 1 at the answer positions multiplies that position's scratch node by 5, exactly. Only scratch nodes of
    positions right after a number (and of the position itself) can be picked: the '+' computed nothing."""
    model = wired_dag(depth=2).train(mode == 'train')
    text = '(3 + 4) * 5 = 35\n'
    T, close = len(text), text.index(')')
    forced = [(text.index('3'), text.index('4'), 'add'), (scratch_index(T, 0, close), text.index('5'), 'multiply')]
    with torch.autocast('cpu', dtype=torch.bfloat16, enabled=mode == 'bf16'):
        _, out, _ = model.dag(encode(text), model.hidden_states(encode(text)), program=forced)
    assert out['values'][0, close, 0].item() == 7.0
    first = text.index('=') + 1  # the prompt's last char
    for t in range(first, T - 1):
        assert out['values'][0, t].tolist() == [7.0, 35.0]
        # the numbers each step's program reads (the judge's input): 3 and 4, then those and 5, none twice
        assert out['distinct'][0, t].tolist() == out['leaf_counts'][0, t].tolist() == [2, 3]
        assert spelled(out, t) == '35'[t - first:]
    assert out['choices'][0, first, 1, 0].item() == scratch_index(T, 0, close)
    scratch_bias = model.controller.operand_mask(out["length"], torch.arange(T)[None])[0][..., T:2 * T]  # step 0's
    assert scratch_bias[0, first, close] == 0 and scratch_bias[0, first, first] == 0  # ')' and itself
    assert scratch_bias[0, first, text.index('+')] < -1e8 and scratch_bias[0, close, close + 1] < -1e8  # future


@pytest.mark.parametrize('mode', ['train', 'eval', 'no_grad'])
def test_each_node_counts_the_numbers_its_program_reads(mode):
    """The leaf sets and counts the step judge compares, through DAGGPT.dag: 5 + 5 reads one number twice, and
    adding 7 to that node reads two different numbers, three with the repeat; identity passes its a's leaves on."""
    model = wired_dag(depth=3).train(mode == 'train')
    text = '5 and 7 = 17\n'
    T = len(text)
    five, seven, views = text.index('5'), text.index('7'), views_of(model, text)
    forced = [(five, five, 'add'), (scratch_index(T, 0, views), seven, 'add'),
              (scratch_index(T, 1, views), five, 'identity')]
    with torch.set_grad_enabled(mode != 'no_grad'):
        _, out, _ = model.dag(encode(text), model.hidden_states(encode(text)), program=forced)
    for t in range(seven + 1, T):  # (at the 7 itself the DAG runs as the position before it: number_views)
        assert out['values'][0, t].tolist() == [10.0, 17.0, 17.0]
        assert out['distinct'][0, t].tolist() == [1, 2, 2] and out['leaf_counts'][0, t].tolist() == [2, 3, 3]


def test_the_popcount_table_is_a_long_buffer_outside_checkpoints():
    """DAGController's byte_popcount is a non-persistent buffer (so model.to(device) moves it): the set bits of each
    byte, never cast by a dtype change (bf16, model.double()), and not in the state dict, so checkpoints load with and
    without it."""
    model = tiny_dag()
    assert model.controller.byte_popcount.tolist() == [bin(i).count('1') for i in range(256)]
    assert not any('byte_popcount' in k for k in model.state_dict())
    assert model.to(torch.bfloat16).controller.byte_popcount.dtype == torch.long


def test_leaf_sets_hold_every_position_once_across_words():
    """A bit per token position, over as many int64 words as block_size needs (63 positions a word)."""
    sets = leaf_sets(0, 130, 3, 'cpu')
    assert popcount(sets).tolist() == [1] * 130 and torch.equal(leaf_sets(60, 130, 3, 'cpu'), sets[60:])
    union = functools.reduce(torch.bitwise_or, sets.unbind(0))
    assert popcount(union).item() == 130 and popcount(union & sets[[5, 70, 129]].sum(0)).item() == 3


def test_the_step_judge_sees_how_many_numbers_each_step_reads():
    """With the same embeddings, context and values, a step whose program reads fewer different numbers than its
    position's widest, or one number twice, is scored differently (the judge cannot compare the steps otherwise)."""
    readout = tiny_dag().readout
    feats = torch.randn(1, 3, 4, readout.proj.in_features // 4)
    emb, ctx = torch.randn(1, 1, 4, 16).expand(-1, 3, -1, -1), torch.randn(1, 1, 16).expand(-1, 3, -1)
    values = torch.tensor([5., 5., 5., 7.], dtype=D).expand(1, 3, 4)
    distinct = torch.tensor([[[2, 2, 2, 3], [3, 3, 3, 2], [3, 3, 3, 2]]])
    counts = torch.tensor([[[2, 2, 2, 3], [3, 3, 3, 2], [3, 3, 4, 2]]])
    weights = readout(feats, emb, ctx, values, distinct, counts, distinct > 0)[1][0]
    assert not torch.equal(weights[0], weights[1]) and not torch.equal(weights[1], weights[2])


def test_the_step_judge_sees_which_steps_follow_the_number_written():
    """With the same embeddings, context, values and leaves, a step whose value does not begin with the number
    written so far is scored differently from one that does."""
    readout = tiny_dag().readout
    feats = torch.randn(1, 2, 4, readout.proj.in_features // 4)
    emb, ctx = torch.randn(1, 1, 4, 16).expand(-1, 2, -1, -1), torch.randn(1, 1, 16).expand(-1, 2, -1)
    values, ones = torch.tensor([5., 6., 7., 8.], dtype=D).expand(1, 2, 4), torch.ones(1, 2, 4, dtype=torch.long)
    follows = torch.tensor([[[True, True, True, True], [True, True, False, True]]])
    weights = readout(feats, emb, ctx, values, ones, ones, follows)[1][0]
    assert not torch.equal(weights[0], weights[1])


def test_explain_reads_the_numbers_and_describes_every_step():
    """DAGGPT.explain on a model whose extractor reads digits exactly: the numbers' text and values, and each
    step's operands as those numbers (or earlier steps), with results equal to the DAG's own values."""
    vocab = '0123456789+= \n'
    model = tiny_dag(depth=3, tokens=list(vocab))
    with torch.no_grad():  # the digits' embeddings are their classes' one-hots; nothing else reaches the extractor
        for block in model.transformer.h:
            block.attn.c_proj.weight.zero_()
            block.mlp.c_proj.weight.zero_()
        model.transformer.wpe.weight.zero_()
        roles = [CLASSES.index('digits') if c.isdigit() else 0 for c in vocab] + [0] * (20 - len(vocab))
        model.transformer.wte.weight.copy_(torch.eye(16)[roles] * 5)
        model.value_extractor.classify.weight.zero_()
        model.value_extractor.classify.weight[:len(CLASSES)] = torch.eye(16)[:len(CLASSES)]
        model.value_extractor.classify.bias.zero_()
    idx = torch.tensor([[vocab.index(c) for c in '12+345=']])
    rows = model.explain(idx, lambda ids: ''.join(vocab[i] for i in ids))
    assert [r['token'] for r in rows] == list('12+345=') and len(rows[-1]['steps']) == 3
    assert rows[-1]['numbers'] == [('12', 12.0), ('345', 345.0)]
    assert rows[3]['numbers'] == [('12', 12.0), ('3', 3.0)]  # the number being read is visible as it stands
    _, out, _ = model.eval().dag(idx, model.hidden_states(idx))  # explain runs in eval mode (no exploration noise)
    for t, row in enumerate(rows):
        assert [v for *_, v in row['steps']] == [format(v, '.15g') for v in out['values'][0, t].tolist()]
        operands = {'1', '12', '3', '34', '345', 'step 1', 'step 2'}  # numbers as read so far, or earlier steps
        assert all(a in operands or a.startswith("'") or re.fullmatch(r"step [12] @ -\d+", a)
                   for _, a, _, _ in row['steps'])
        assert 0 < row['gate'] < 1 and row['weights'] == out['step_weights'][0, t].tolist()


def test_program_loss_teaches_the_steps_before_a_problem_its_first_value():
    # one labelled step (the answer 7) at depth 2: step 0 is taught 7 too, so the loss is the mean over both steps
    results = torch.zeros(1, 1, 1, 1, 9, dtype=D)
    results[..., 0] = 7.0
    probs = [torch.zeros(1, 1, 1, 1, 9) for _ in range(2)]
    probs[0][..., 0], probs[1][..., 0] = 0.5, 0.25
    steps = torch.full((1, 1, 8), float('nan'), dtype=D)
    steps[..., -1] = 7.0
    programs = lambda: [(results[0], probs[k][0], step_labels(steps, 2)[0, 0, k, None])  # noqa: E731
                        for k in range(2)]  # one position (M = 1), as the controller gives them
    assert program_loss(programs()).item() == pytest.approx((math.log(2) + math.log(4)) / 2)
    steps[..., -2:] = torch.tensor([3.0, 7.0], dtype=D)  # a two-step label: step 0 must compute 3, which none does
    assert program_loss(programs()).item() == pytest.approx(math.log(4))


def test_step_weight_loss_teaches_the_weight_of_the_steps_that_hold_the_label():
    nan = float('nan')
    values = torch.tensor([[[7., 7., 7., 7.], [1., 7., 2., 7.], [1., 2., 3., 4.]]], dtype=D)  # (1, 3, dag_depth 4)
    labels = torch.tensor([[[nan, nan, nan, 7.], [7., 7., 7., 7.], [nan, nan, nan, 7.]]], dtype=D)
    scores = torch.zeros(1, 3, 4, requires_grad=True)
    written = torch.tensor([[nan, 70., nan]], dtype=D)  # the number written so far: not yet the label
    loss = step_weight_loss(F.softmax(scores, -1), values, labels, written)
    # position 0: every step holds 7, position 2: none does; position 1: steps 1 and 3 do, with weight 1/4 each
    assert loss.item() == -torch.tensor(0.5).log().item()
    grad = torch.autograd.grad(loss, scores)[0]
    assert (grad[0, 1, [1, 3]] < 0).all() and (grad[0, 1, [0, 2]] > 0).all() and (grad[0, [0, 2]] == 0).all()
    assert step_weight_loss(F.softmax(scores, -1)[:, [0, 2]], values[:, [0, 2]], labels[:, [0, 2]],
                            written[:, [0, 2]]).item() == 0
    # at an answer's last token the number written is the label: a copy of it is right there, and nothing is taught
    assert step_weight_loss(F.softmax(scores, -1), values, labels, torch.full((1, 3), 7., dtype=D)).item() == 0


def test_equal_step_weights_leave_the_readout_features_as_they_are():
    readout = tiny_dag().readout
    torch.nn.init.zeros_(readout.step_score[-1].weight)  # every node scored alike
    feats, emb = torch.randn(2, 5, 4, readout.proj.in_features // 4), torch.randn(2, 5, 4, 16)
    ctx, values = torch.randn(2, 5, 16), torch.randn(2, 5, 4, dtype=D)
    ones = torch.ones(2, 5, 4, dtype=torch.long)
    dag_sem, weights = readout(feats, emb, ctx, values, ones, ones, ones > 0)
    assert torch.equal(weights, torch.full((2, 5, 4), 0.25))
    assert torch.equal(dag_sem, readout.proj(feats.flatten(2)) + emb.mean(2))
    readout = tiny_dag(depth=1).readout  # one step: nothing to weigh
    one = ones[..., :1]
    assert readout.step_score is None
    assert readout(feats[:, :, :1], emb[:, :, :1], ctx, values[..., :1], one, one, one > 0)[1] is None


def test_the_step_judge_sees_which_steps_agree():
    """The judge scores each node alone, so whether the other steps hold its value is an input: with the same
    embeddings and context, the last step alone (`...x`) and the middle two (`.xx.`) holding one value get different
    weights, and two sets of values that agree alike get the same."""
    readout = tiny_dag().readout
    feats = torch.randn(1, 3, 4, readout.proj.in_features // 4)
    emb, ctx = torch.randn(1, 1, 4, 16), torch.randn(1, 1, 16)  # the same at the three positions
    values = torch.tensor([[[5., 5., 5., 7.], [5., 7., 7., 5.], [1., 1., 1., 2.]]], dtype=D)  # (1, 3, dag_depth)
    ones = torch.ones(1, 3, 4, dtype=torch.long)
    weights = readout(feats, emb.expand(-1, 3, -1, -1), ctx.expand(-1, 3, -1), values, ones, ones, ones > 0)[1][0]
    assert not torch.equal(weights[0], weights[1]) and torch.equal(weights[0], weights[2])


def test_the_step_judge_cannot_change_the_nodes_it_judges():
    readout = tiny_dag().readout
    feats = torch.randn(2, 5, 4, readout.proj.in_features // 4)
    emb, ctx = torch.randn(2, 5, 4, 16, requires_grad=True), torch.randn(2, 5, 16, requires_grad=True)
    ones = torch.ones(2, 5, 4, dtype=torch.long)
    weights = readout(feats, emb, ctx, torch.randn(2, 5, 4, dtype=D), ones, ones, ones > 0)[1]
    emb_grad, ctx_grad, score_grad = torch.autograd.grad(
        weights[..., -1].sum(), [emb, ctx, readout.step_score[0].weight], allow_unused=True)
    assert emb_grad is None and ctx_grad is None and score_grad.abs().sum() > 0  # the judge learns, the nodes do not


def test_programs_at_the_labelled_positions_only_give_the_same_loss():
    # the CPU's compact programs (the positions with a label) and the dense ones (every position, as on a GPU)
    torch.manual_seed(0)
    B, T, N, K = 3, 5, 12, 4
    i = torch.randint(0, N, (2, B, T, K))
    v = torch.randint(-50, 50, (2, B, T, K)).double()
    p = torch.rand(2, B, T, K, requires_grad=True)
    p_op = torch.rand(B, T, len(OPS))
    node_labels = torch.where(torch.rand(B, N) < 0.3, torch.randint(-50, 50, (B, N)).double(), float('nan'))
    label = torch.where(torch.rand(B, T) < 0.4, (v[0, ..., 0] + v[1, ..., 0]), float('nan'))
    compact = DAGController.programs(i, v, p, p_op, node_labels, label, compact=True)
    dense = DAGController.programs(i, v, p, p_op, node_labels, label, compact=False)
    assert compact[0].shape[0] == (~label.isnan()).sum() and dense[0].shape[0] == B * T
    loss = program_loss([compact])
    assert loss > 0 and torch.equal(loss, program_loss([dense]))
    assert torch.equal(torch.autograd.grad(loss, p)[0], torch.autograd.grad(program_loss([dense]), p)[0])


def test_dense_programs_give_the_model_the_same_loss_as_compact_ones(monkeypatch):
    # DAGGPT.forward with steps labels: the programs of the labelled positions only (the CPU's default) and of every
    # position (the default off the CPU) give the same labelled loss and gradients, through the module path
    model = tiny_dag(depth=2).eval()
    idx = torch.randint(0, 20, (2, 8))
    with torch.no_grad():  # labels the chosen programs compute, so that the program loss is not 0
        values = model.dag(idx, model.hidden_states(idx))[1]['values']
    steps = torch.full((2, 8, 2), float('nan'), dtype=D)
    steps[:, 3] = values[:, 3]
    steps[1, 6, 1] = values[1, 6, 1]
    runs, rows, programs = [], [], DAGController.programs

    def spy(*args, compact):
        out = programs(*args, compact=compact)
        rows.append((compact, out[0].shape[0]))
        return out
    for compact in (True, False):
        monkeypatch.setattr(DAGController, 'programs', staticmethod(functools.partial(spy, compact=compact)))
        model.zero_grad()
        _, loss = model(idx, idx, steps=steps)
        loss.backward()
        runs.append((loss.detach(), [p.grad.clone() for p in model.parameters() if p.grad is not None]))
    (loss_c, grads_c), (loss_d, grads_d) = runs
    assert rows == [(True, 3), (True, 3), (False, 16), (False, 16)]  # per step: the labelled positions (step 0 taught
    # the label at (1, 6) too: filled_steps), or all
    aux_loss = model.dag(idx, model.hidden_states(idx), steps=steps)[2]  # the program loss alone: 0 if none computes
    assert aux_loss > 0 and torch.equal(loss_c, loss_d) and len(grads_c) == len(grads_d)
    # float32 gradients summed in another order (zero rows among the dense ones): equal to rounding, which is
    # relative to the largest summand (1.5e-8 here in an entry near 0 of the position embeddings' gradient, whose
    # largest entry is 0.18: one float32 ulp of it)
    assert all(torch.allclose(a, b, rtol=1e-6, atol=1e-6 * b.abs().max().item()) for a, b in zip(grads_c, grads_d))


def test_exploration_samples_the_softmax_of_the_visible_operands_and_leaves_masked_logits_alone():
    """In training a choice is a Gumbel-max sample of the softmax over the nodes operand_mask lets through: only
    they get noise (a masked logit keeps its bits), each operand side draws its own, and eval mode adds none."""
    controller = DAGController(DAGGPTConfig(n_embd=16, n_head=2, dag_depth=2)).train()
    torch.manual_seed(0)
    visible = torch.tensor([True, False, True, True, False, False])
    scores = torch.tensor([1.0, 0.5, 0.0, -1.0, 2.0, 0.0])
    logits = torch.where(visible, scores, scores + NOT_A_NUMBER).expand(2, 20000, 6)  # (a and b, positions, N)
    noisy = controller.explore(logits, visible)
    assert torch.equal(noisy[..., ~visible], logits[..., ~visible])
    assert not torch.equal(noisy[0], noisy[1])
    share = F.one_hot(noisy.argmax(-1), 6).double().mean((0, 1))
    expected = torch.zeros(6, dtype=D).masked_scatter(visible, torch.softmax(scores[visible].double(), -1))
    assert (share - expected).abs().max() < 0.01  # 40,000 draws: the standard error is below 0.0025
    assert torch.equal(controller.eval().explore(logits, visible), logits)


def test_training_choices_explore_on_the_models_own_path_and_keep_to_visible_operands():
    """DAGGPT.dag in train mode: another noise draw changes some operands (the visible ones do get noise), every
    chosen operand is one operand_mask lets through wherever any is, and eval mode chooses the same each time."""
    model = tiny_dag(depth=2, seed=3)
    idx = torch.tensor([[TINY_VOCAB.index(c) for c in '\n12+345=357\n8-5=3\n6+9=15\n7']])
    choices = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        out = model.dag(idx, model.hidden_states(idx))[1]
        choices.append(out['choices'])
    assert not torch.equal(*(c[:, :, 0, :2] for c in choices))  # step 0's operands: only their noise can move them
    T = idx.size(1)
    length = out['length']  # the numbers' lengths: the same in every draw
    views = number_views(length, torch.arange(T)[None])  # inside a number the DAG runs as the position before it
    bias = model.controller.operand_mask(length, views)[0]  # (1, T, depth T): 0: an operand may be read
    for k in range(2):
        visible = bias[..., :T * (1 + k)] == 0
        chosen = choices[0][:, :, k, :2]  # (1, T, 2) node indices
        some = visible.any(-1, keepdim=True)
        assert (visible.gather(-1, chosen) | ~some).all()
    model.eval()
    with torch.no_grad():
        a, b = (model.dag(idx, model.hidden_states(idx))[1]['choices'] for _ in range(2))
    assert torch.equal(a, b)


def test_a_labelled_training_step_compiles_as_one_graph_on_the_cpu():
    """Under torch.compile the CPU takes the GPU's path (eager_on_cpu): Gumbel noise on every logit, programs at
    every position, so the main job's training step (labels, a share of the positions) traces as one graph; the
    CPU's eager shortcuts (nonzero, a boolean index) broke it into many (48 breaks in train.py's first 150
    iterations). fullgraph=True would not tell: it traces data-dependent shapes that a default compile breaks at."""
    model = tiny_dag(depth=2, dag_train_positions=0.5).train()
    idx = torch.randint(0, 20, (2, 8))
    steps = torch.full((2, 8, 2), float('nan'), dtype=D)
    steps[:, 3, -1] = 7.0
    ops, roles = torch.full((2, 8), -1), torch.randint(-1, len(CLASSES), (2, 8))
    ops[0, 3] = OPS.index('add')
    graphs = []

    def backend(graph_module, example_inputs):  # dynamo's graphs, run as traced: no inductor, seconds
        graphs.append(graph_module)
        return graph_module.forward
    torch._dynamo.reset()
    try:
        _, loss = torch.compile(model, backend=backend)(idx, idx, roles=roles, steps=steps, ops=ops)
        loss.backward()
    finally:
        torch._dynamo.reset()  # no compiled code or guards left to later tests in this worker
    assert len(graphs) == 1
    assert torch.isfinite(loss) and model.controller.query.weight.grad.abs().sum() > 0
