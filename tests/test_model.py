import pytest
import torch

from model import GPT, GPTConfig, greedy_decode


def tiny_gpt(block_size=32, vocab_size=50, seed=0, **kw):
    torch.manual_seed(seed)
    cfg = dict(block_size=block_size, vocab_size=vocab_size, n_layer=2, n_head=2, n_embd=16, dropout=0.0, bias=True)
    cfg.update(kw)
    return GPT(GPTConfig(**cfg)).eval()


def test_forward_shapes_and_loss():
    model = tiny_gpt()
    idx = torch.randint(0, 50, (3, 10))
    logits, loss = model(idx, idx)
    assert logits.shape == (3, 10, 50)
    # an untrained model predicts close to uniform: loss near ln(vocab_size)
    assert abs(loss.item() - torch.log(torch.tensor(50.0)).item()) < 0.5
    logits, loss = model(idx)
    assert logits.shape == (3, 1, 50) and loss is None
    full, _ = model(idx, idx)
    torch.testing.assert_close(logits[:, 0], full[:, -1])


def test_ignore_index_and_too_long_input():
    model = tiny_gpt()
    idx = torch.randint(0, 50, (2, 8))
    targets = idx.clone()
    targets[:, :4] = -1
    _, loss_masked = model(idx, targets)
    logits, _ = model(idx, idx)
    expected = torch.nn.functional.cross_entropy(logits[:, 4:].reshape(-1, 50), idx[:, 4:].reshape(-1))
    torch.testing.assert_close(loss_masked, expected)
    with pytest.raises(ValueError, match="block size"):
        model(torch.zeros((1, 33), dtype=torch.long))


def test_causality():
    model = tiny_gpt()
    idx = torch.randint(0, 50, (1, 20))
    logits, _ = model(idx, idx)
    for t in range(19):
        changed = idx.clone()
        changed[0, t + 1:] = (changed[0, t + 1:] + 7) % 50
        logits2, _ = model(changed, changed)
        torch.testing.assert_close(logits2[0, :t + 1], logits[0, :t + 1])
        assert not torch.allclose(logits2[0, t + 1:], logits[0, t + 1:])


@pytest.mark.parametrize('new_tokens', [20, 60])  # within block_size, and past it (window cropping)
def test_kv_cache_generation_equals_uncached(new_tokens):
    model = tiny_gpt()
    idx = torch.randint(0, 50, (3, 7))
    cached = model.generate(idx, new_tokens, temperature=0, use_cache=True)
    uncached = model.generate(idx, new_tokens, temperature=0, use_cache=False)
    assert cached.shape == (3, 7 + new_tokens)
    assert torch.equal(cached, uncached)
    assert torch.equal(cached, greedy_decode(model, idx, new_tokens))


def test_generated_tokens_can_be_trained_on():
    # generation runs under torch.inference_mode; its tokens must still be usable where autograd runs
    model = tiny_gpt()
    idx = torch.randint(0, 50, (2, 5))
    for out in (model.generate(idx, 6, temperature=0), greedy_decode(model, idx, 6)):
        assert not out.is_inference()
        model.train()
        _, loss = model(out[:, :-1].contiguous(), out[:, 1:].contiguous())
        loss.backward()
        model.eval()
    assert model.lm_head.weight.grad is not None


def test_kv_cache_chunked_prefill_matches_full_forward():
    model = tiny_gpt()
    idx = torch.randint(0, 50, (2, 12))
    cache = model.new_kv_cache(2, 32)
    model(idx[:, :5], kv_cache=cache)
    logits_chunk, _ = model(idx[:, 5:], kv_cache=cache)
    assert cache.pos == 12
    logits_full, _ = model(idx)
    torch.testing.assert_close(logits_chunk[:, -1], logits_full[:, -1], atol=1e-5, rtol=1e-5)


def test_sampling_respects_top_k_and_seed():
    model = tiny_gpt()
    idx = torch.zeros((4, 1), dtype=torch.long)
    torch.manual_seed(1)
    a = model.generate(idx, 10, temperature=1.0, top_k=1)
    assert torch.equal(a, model.generate(idx, 10, temperature=0))  # top_k=1 is greedy
    torch.manual_seed(2)
    b = model.generate(idx, 10, temperature=1.0, top_k=None)
    torch.manual_seed(2)
    assert torch.equal(b, model.generate(idx, 10, temperature=1.0, top_k=None))


def test_crop_block_size():
    model = tiny_gpt(block_size=32)
    idx = torch.randint(0, 50, (2, 16))
    before, _ = model(idx, idx)
    model.crop_block_size(16)
    assert model.config.block_size == 16
    assert model.transformer.wpe.weight.shape == (16, 16)
    after, _ = model(idx, idx)
    torch.testing.assert_close(before, after)
    with pytest.raises(ValueError):
        model(torch.zeros((1, 17), dtype=torch.long))
    with pytest.raises(ValueError, match="smaller"):
        model.crop_block_size(64)


def test_num_params_and_optimizer_groups():
    model = tiny_gpt()
    total = sum(p.numel() for p in model.parameters())
    assert model.get_num_params(non_embedding=False) == total
    assert model.get_num_params() == total - 32 * 16
    opt = model.configure_optimizers(0.1, 1e-3, (0.9, 0.95), 'cpu')
    decay, nodecay = opt.param_groups
    assert all(p.dim() >= 2 for p in decay['params']) and decay['weight_decay'] == 0.1
    assert all(p.dim() < 2 for p in nodecay['params']) and nodecay['weight_decay'] == 0.0
    stats = {}
    idx = torch.randint(0, 32, (2, 8))
    _, loss = model(idx, idx, stats=stats)
    assert list(stats) == ['lm_loss'] and stats['lm_loss'] == loss  # the plain GPT's only diagnostic


def test_estimate_mfu_uses_given_peak():
    model = tiny_gpt()
    assert model.estimate_mfu(1, 1.0, peak_flops=None) is None  # CPU: no known peak
    mfu = model.estimate_mfu(4, 0.5, peak_flops=1e9)
    N, L, H, Q, T = model.get_num_params(), 2, 2, 8, 32
    assert mfu == pytest.approx((6 * N + 12 * L * H * Q * T) * T * 4 / 0.5 / 1e9)


def test_from_pretrained_local_hf_dir_matches_transformers(tmp_path):
    transformers = pytest.importorskip('transformers')
    torch.manual_seed(0)
    hf_config = transformers.GPT2Config(vocab_size=97, n_positions=48, n_embd=32, n_layer=2, n_head=4,
                                        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
    hf = transformers.GPT2LMHeadModel(hf_config).eval()
    hf.save_pretrained(tmp_path)
    model = GPT.from_pretrained(str(tmp_path)).eval()
    assert model.config.block_size == 48 and model.config.vocab_size == 97
    idx = torch.randint(0, 97, (2, 20))
    with torch.no_grad():
        expected = hf(idx).logits
        logits, _ = model(idx, idx)
    assert (logits - expected).abs().max().item() < 1e-4


def test_from_pretrained_rejects_unknown_name():
    with pytest.raises(ValueError, match="neither"):
        GPT.from_pretrained('gpt3-not-a-model')


def test_greedy_decode_stops_once_every_row_has_the_stop_token():
    torch.manual_seed(2)  # greedy rows of this random model: 6 6 6 6 3 3 3 ..., so stops at 6 and at 3 are early
    model = GPT(GPTConfig(block_size=16, vocab_size=8, n_layer=1, n_head=2, n_embd=16, dropout=0.0)).eval()
    idx = torch.randint(0, 8, (4, 3))
    full = greedy_decode(model, idx, 12)
    stopped_early = 0
    for stop in range(8):
        early = greedy_decode(model, idx, 12, stop_token=stop)
        assert torch.equal(early, full[:, :early.size(1)])  # the same tokens, cut
        generated = early[:, 3:]
        if early.size(1) < full.size(1):
            assert (generated == stop).any(1).all() and not (generated[:, :-1] == stop).any(1).all()
            stopped_early += 1
    assert stopped_early > 0
