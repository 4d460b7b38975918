import random
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import adder
import model as model_module


@pytest.fixture(scope='module', autouse=True)
def one_thread():
    # the adder's tensors are 4 wide: intra-op threads only spin, and are 5x slower when other tests hold the cores
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope='module')
def adder_model():
    model, _ = adder.build_model()
    return model


def full_sequence(a, b):
    """Prompt plus the true sum, least significant digit first: (33,) token list."""
    s = a + b
    return adder.encode_prompt(a, b)[0].tolist() + [(s // 10 ** i) % 10 for i in range(adder.SUM_LEN)]


def test_parameter_budget():
    model, metadata = adder.build_model()
    assert sum(p.numel() for p in model.parameters()) == 58
    assert sum(b.numel() for b in model.buffers()) == 0
    assert metadata['n_params'] == 58 and metadata['n_buffers'] == 0
    assert {'name', 'description'} <= metadata.keys()


def test_edge_cases_exact(adder_model):
    for a, b in adder.EDGE_CASES:
        assert adder.add(adder_model, a, b) == a + b, (a, b)


def test_protocol_on_a_few_hundred_random_pairs():
    r = adder.evaluate(adder.build_model, adder.add, n_random=300, seed=2025)
    assert (r['edge_correct'], r['edge_total']) == (10, 10)
    assert (r['random_correct'], r['random_total']) == (300, 300)
    assert r['accuracy'] == 1.0 and r['passed'] and r['failures'] == []
    assert (r['n_params'], r['n_buffers']) == (58, 0)


def test_evaluate_takes_a_model_and_reports_failures(adder_model):
    r = adder.evaluate(adder_model, lambda m, a, b: adder.add(m, a, b) + (a == 0), n_random=20, seed=0)
    assert r['edge_correct'] == 8  # the two edge cases with a == 0 are now wrong
    assert r['failures'][0] == (0, 0, 1, 0)


def test_add_decodes_through_the_shared_greedy_helper(adder_model, monkeypatch):
    assert adder.greedy_decode is model_module.greedy_decode
    calls = []

    def spy(model, idx, max_new_tokens):
        calls.append((model, idx.clone(), max_new_tokens))
        return model_module.greedy_decode(model, idx, max_new_tokens)

    monkeypatch.setattr(adder, 'greedy_decode', spy)
    a, b = 9999999999, 1
    assert adder.add(adder_model, a, b) == a + b
    assert len(calls) == 1
    model, idx, n = calls[0]
    assert model is adder_model and n == adder.SUM_LEN
    assert torch.equal(idx, adder.encode_prompt(a, b))
    out = model_module.greedy_decode(adder_model, idx, n)
    assert out[0].tolist() == full_sequence(a, b)


@pytest.mark.parametrize('dtype', [torch.float32, torch.float64])
def test_teacher_forced_batch_matches_the_sums(dtype):
    # one batched forward over whole sequences must predict every sum digit, as the token-by-token decode does
    model, _ = adder.build_model()
    model = model.to(dtype)
    rng = random.Random(7)
    pairs = adder.EDGE_CASES + [(rng.randint(0, adder.MAX_OPERAND), rng.randint(0, adder.MAX_OPERAND))
                                for _ in range(200)]
    seq = torch.tensor([full_sequence(a, b) for a, b in pairs])
    idx, targets = seq[:, :-1], seq[:, 1:].clone()
    targets[:, :adder.PROMPT_LEN - 1] = -1  # the prompt is not predictable
    logits, loss = model(idx, targets)
    assert logits.shape == (len(pairs), adder.PROMPT_LEN + adder.SUM_LEN - 1, 10) and logits.dtype == dtype
    assert torch.equal(logits[:, adder.PROMPT_LEN - 1:].argmax(-1), seq[:, adder.PROMPT_LEN:])
    assert loss.item() < 1e-6


def test_forward_is_causal_and_checks_length(adder_model):
    seq = torch.tensor([full_sequence(1234567890, 9876543210)])
    logits, loss = adder_model(seq)
    assert loss is None and torch.isfinite(logits).all()
    changed = seq.clone()
    changed[0, 25:] = (changed[0, 25:] + 3) % 10
    assert torch.equal(adder_model(changed)[0][:, :25], logits[:, :25])
    with pytest.raises(ValueError, match='block size'):
        adder_model(torch.zeros(1, adder_model.config.block_size + 1, dtype=torch.long))


@pytest.mark.parametrize('a, b', [(-1, 0), (0, 10 ** 10), (1.0, 2)])
def test_operands_out_of_range_are_rejected(a, b):
    with pytest.raises(ValueError, match='operand'):
        adder.encode_prompt(a, b)


def test_cli_prints_the_sum():
    root = Path(adder.__file__).resolve().parent
    out = subprocess.run([sys.executable, 'adder.py', '123', '456'], cwd=root, capture_output=True, text=True,
                         check=True, timeout=60)
    assert out.stdout.strip() == '123 + 456 = 579'
