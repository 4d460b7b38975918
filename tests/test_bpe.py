"""GPT+DAG on GPT-2 BPE (issue 10): reading numbers that span several tokens, and writing answers in GPT-2's
chunks, through the module path training and generation use (DAGGPT.dag, DAGGPT.forward, cached decoding), in
both tokenizations. The GPT-2 ranks come from ../shared/data."""
import pickle
import random
import re

import numpy as np
import pytest
import torch

from conftest import run_script, shared_file
from dag_model import (CLASSES, NO_OP, OPS, DAGGPT, DAGGPTConfig, first_bpe_token, has_multi_digit_tokens, next_tokens,
                       number_tables)
from model import greedy_decode
from tokenizer import gpt2_encoding, newline_ids

D = torch.float64


@pytest.fixture(scope='module')
def enc():
    return gpt2_encoding(shared_file('gpt2', 'gpt2.tiktoken'))


@pytest.fixture(scope='module')
def gpt2_tokens(enc):
    return [enc.decode_single_token_bytes(i).decode('utf-8', errors='replace') for i in range(enc.n_vocab)]


@pytest.fixture(scope='module')
def tables(gpt2_tokens):
    return number_tables(gpt2_tokens, 50304)


def test_tables_know_the_digit_tokens(gpt2_tokens, tables):
    ids = {t: i for i, t in enumerate(gpt2_tokens)}
    assert tables['digit_value'][ids[' 10000']] == 10000 and tables['digit_len'][ids[' 10000']] == 5
    assert tables['digit_value'][ids['007']] == 7 and tables['digit_len'][ids['007']] == 3  # leading zeros count
    assert not tables['is_digits'][ids['route']] and not tables['is_digits'][ids['k']]
    assert tables['is_digits'].sum() == 1691  # GPT-2's tokens of 1..16 digits, with or without a leading space
    assert [gpt2_tokens[i] for i in tables['sign_ids']] == ['-', ' -', '.']
    assert has_multi_digit_tokens(gpt2_tokens) and not has_multi_digit_tokens(list('0123456789+= \n'))


def test_torch_bpe_of_digit_runs_is_tiktokens(enc, tables):
    """The first token of GPT-2's BPE of random digit runs (1-17 digits), with and without a space before."""
    rng = random.Random(0)
    runs = [''.join(rng.choice('0123456789') for _ in range(rng.randint(1, 17))) for _ in range(1500)]
    runs += ['12345', '48213', '10000', '0' * 16, '1111', '2025', '7']
    digits = torch.zeros(len(runs), 17, dtype=torch.long)
    for i, r in enumerate(runs):
        digits[i, :len(r)] = torch.tensor([int(c) for c in r])
    n = torch.tensor([len(r) for r in runs])
    for space in (False, True):
        got = first_bpe_token(digits, n, torch.full((len(runs),), space), tables['bpe_keys'], tables['bpe_ids'])
        want = [enc.encode_ordinary((' ' if space else '') + r)[0] for r in runs]
        assert got.tolist() == want
    assert first_bpe_token(digits[:1], torch.tensor([0]), torch.tensor([False]), tables['bpe_keys'],
                           tables['bpe_ids']).item() == -1


@pytest.mark.parametrize('answer', ['12345', '-48213.5', '0.25', '10000', '907221', '166375000000000', '-0.000001',
                                    '0', '123456789.123456'])
def test_next_tokens_write_the_canonical_chunks(enc, gpt2_tokens, tables, answer):
    """After each canonical token of an answer written after a space (" 123", "45"), the next token is the next
    canonical one, then nothing; with nothing written yet, both the spaced and the unspaced first token."""
    value = float(answer)
    chunks = [gpt2_tokens[i] for i in enc.encode_ordinary(' ' + answer)]
    written = 0
    for k, chunk in enumerate(chunks + [None]):
        ids = next_tokens(torch.tensor([[[value]]], dtype=D), torch.tensor([[written]]), tables)[0, 0, 0]
        if k == 0:
            assert gpt2_tokens[ids[1]] == chunk and gpt2_tokens[ids[0]] == gpt2_tokens[enc.encode_ordinary(answer)[0]]
        else:
            assert (gpt2_tokens[ids[0]] if ids[0] >= 0 else None) == chunk and ids[1] == -1
        written += len(chunk.strip()) if chunk else 0


# -----------------------------------------------------------------------------
# reading, through DAGGPT.dag: a model whose hidden state at position t is the one-hot of the role the test gives
# token t (position embeddings, the blocks' residual branches off), and whose extractor's classifier is the
# identity, so the classes are exactly those roles (within the vocabulary's mask) and the values are the
# vocabulary's digits put together by read_numbers

def role_wired_dag(tokens, vocab_size, write=False, depth=1):
    torch.manual_seed(0)
    C = 16
    cfg = DAGGPTConfig(block_size=64, vocab_size=vocab_size, n_layer=1, n_head=2, n_embd=C, dropout=0.0, bias=False,
                       dag_depth=depth, dag_write_tokens=write)
    model = DAGGPT(cfg, tokens)
    with torch.no_grad():
        for block in model.transformer.h:
            block.attn.c_proj.weight.zero_()
            block.mlp.c_proj.weight.zero_()
        model.transformer.wte.weight.zero_()
        model.value_extractor.classify.weight.zero_()
        model.value_extractor.classify.weight[:len(CLASSES)] = torch.eye(C)[:len(CLASSES)] * 10
        model.value_extractor.classify.bias.zero_()
    return model.eval()


def read(model, ids, roles):
    """The values model.dag reads at each token of ids (list of int), each token's role given by name."""
    with torch.no_grad():
        model.transformer.wpe.weight.zero_()
        model.transformer.wpe.weight[:len(roles), :len(CLASSES)] = torch.eye(len(CLASSES))[
            [CLASSES.index(r) for r in roles]]
    idx = torch.tensor([ids])
    _, out, _ = model.dag(idx, model.hidden_states(idx))
    return out['token_values'][0].tolist(), out


# (text, the role of each GPT-2 token (for a run of chunks continuing the first: 'run'), the role of each character
# ('o'ther, 'n'ew_digits, 'd'igits, 's'ep, 'p'oint, 'k', 'm'inus), the value read at the last token, and the
# characters of the number written by then, in GPT-2 tokens and in characters: a space inside a number is a
# character of its own, a separator, but in GPT-2 a part of the next token)
READINGS = [
    ('12 345', ['new_digits', 'digits'], 'ndsddd', 12345.0, (5, 6)),  # one number across tokens, split by a space
    ('12 345', ['new_digits', 'new_digits'], 'ndondd', 345.0, 3),  # two numbers: the second starts afresh
    ('route 66', ['other', 'other'], 'oooooooo', 0.0, 0),  # not a quantity
    ('3 k', ['new_digits', 'k'], 'nsk', 3000.0, (2, 3)),
    ('2.5k', ['new_digits', 'point', 'digits', 'k'], 'npdk', 2500.0, 4),
    ('1,700', ['new_digits', 'sep', 'digits'], 'nsddd', 1700.0, 5),
    ('-7.25', ['minus', 'digits', 'point', 'digits'], 'mdpdd', -7.25, 5),
    ('(-4', ['minus', 'digits'], 'omd', -4.0, 2),
    ('12345.0625', ['new_digits', 'digits', 'point', 'digits', 'digits'], 'nddddpdddd', 12345.0625, 10),
    (' 9007199254740991', 'run', 'on' + 'd' * 15, 9007199254740991.0, 16),  # 2^53 - 1, across six tokens
]
LETTER = {'o': 'other', 'n': 'new_digits', 'd': 'digits', 's': 'sep', 'p': 'point', 'k': 'k', 'm': 'minus'}


@pytest.mark.parametrize('text, roles, _, value, written', READINGS)
def test_reads_numbers_across_bpe_tokens_exactly(enc, gpt2_tokens, text, roles, _, value, written):
    ids = enc.encode_ordinary(text)
    roles = ['new_digits'] + ['digits'] * (len(ids) - 1) if roles == 'run' else roles
    assert len(ids) == len(roles), [gpt2_tokens[i] for i in ids]
    values, out = read(role_wired_dag(gpt2_tokens, 50304), ids, roles)
    written = written[0] if isinstance(written, tuple) else written
    assert values[-1] == value and out['written'][0, -1].item() == written


@pytest.mark.parametrize('text, _, chars, value, written', READINGS)
def test_reads_the_same_numbers_one_character_a_token(text, _, chars, value, written):
    from data.numeric.prepare import ALPHABET
    values, out = read(role_wired_dag(list(ALPHABET), len(ALPHABET)), [ALPHABET.index(c) for c in text],
                       [LETTER[c] for c in chars])
    written = written[1] if isinstance(written, tuple) else written
    assert values[-1] == value and out['written'][0, -1].item() == written


@pytest.mark.parametrize('text, chars, numbers', [  # chars: each character's role, as in READINGS
    ('Take 6k: ', 'ookoodkoo', [6000.0]),
    ('Work out 6k. ', 'oookooooodkoo', [6000.0]),
    ('2 and 6k make ', 'dooooodkoookoo', [2.0, 6000.0]),
    ('Take 6 k: ', 'ookoodskoo', [6000.0]),  # a k two tokens after the digits is still a suffix
])
def test_a_k_far_from_digits_is_no_number(text, chars, numbers):
    """A classifier that calls every k a 'k' suffix reads only the numbers in the text: the k of "Take", "Work" or
    "make" follows no digits within K_REACH tokens (the main job's model read it as a number 0 in 36% of the
    held-out phrasings' prompts). The same one token at a time through the cache DAGGPT.generate uses."""
    from data.numeric.prepare import ALPHABET
    model = role_wired_dag(list(ALPHABET), len(ALPHABET))
    ids = [ALPHABET.index(c) for c in text]
    values, out = read(model, ids, [LETTER[c] for c in chars])
    length = out['length'][0].tolist() + [0]
    assert [values[t] for t in range(len(ids)) if 0 < length[t] >= length[t + 1]] == numbers  # where numbers end
    cache = model.new_kv_cache(1, len(ids))
    with torch.no_grad():
        cached = [model.dag(idx, model.hidden_states(idx, cache.trunk), cache=cache)[1]['token_values'][0, 0].item()
                  for idx in torch.tensor([ids]).split(1, 1)]
    assert cached == values


# -----------------------------------------------------------------------------
# writing, through DAGGPT.dag and the logit path DAGGPT.forward uses

@pytest.mark.parametrize('prompt, a, b, op, answer', [
    ('What is 48213 plus 111?', '48213', '111', 'add', '48324'),  # "48" "213" and "111" -> " 483" "24"
    ('12345 - 12346 =', '12345', '12346', 'subtract', '-1'),  # "123" "45" -> " -" "1"
    ('999 times 1001 is', '999', '1001', 'multiply', '999999'),  # -> " 999" "999"
    ('2.5k / 4 =', '2.5k', '4', 'divide', '625'),
    ('0.07 - 12.25 =', '0.07', '12.25', 'subtract', '-12.18'),
])
def test_forced_program_writes_the_answer_in_gpt2_tokens(enc, gpt2_tokens, prompt, a, b, op, answer):
    """Teacher forcing the canonical tokens of prompt + " " + answer: at the prompt's last token and at every
    answer token, the DAG's next token is the next canonical one, and with the write bias large the logits'
    argmax is that token (the answer's chunks differ from the operands')."""
    text = prompt + ' ' + answer + '\n'
    ids = enc.encode_ordinary(text)
    chunks = [gpt2_tokens[i] for i in ids]
    roles = []
    for k, chunk in enumerate(chunks):
        stripped = chunk.strip()
        prev = chunks[k - 1] if k else ''
        if stripped.isdigit():
            joined = prev in ('-', ' -', '(-', '.', ',') or (prev.strip().isdigit() and not chunk.startswith(' '))
            roles.append('digits' if joined else 'new_digits')
        elif stripped in ('-', '(-') and k + 1 < len(chunks) and chunks[k + 1].isdigit():  # a sign: "-" "7"
            roles.append('minus')
        elif stripped == '.' and prev.strip().isdigit():
            roles.append('point')
        elif stripped == 'k' and prev.strip().isdigit():
            roles.append('k')
        else:
            roles.append('other')
    model = role_wired_dag(gpt2_tokens, 50304, write=True)
    n_prompt = len(enc.encode_ordinary(prompt))
    text_upto = lambda k: ''.join(chunks[:k + 1])  # noqa: E731

    def end_of(number):  # the token at which the prompt's number ends
        start = prompt.index(number)
        return next(k for k in range(n_prompt) if len(text_upto(k)) >= start + len(number))
    with torch.no_grad():
        model.token_write.weight.zero_()
        model.token_write.bias.copy_(torch.tensor([50.0, 100.0]))  # the spaced first token wins over the unspaced
        model.transformer.wpe.weight.zero_()
        model.transformer.wpe.weight[:len(roles), :len(CLASSES)] = torch.eye(len(CLASSES))[
            [CLASSES.index(r) for r in roles]]
    idx = torch.tensor([ids])
    h = model.hidden_states(idx)
    _, out, _ = model.dag(idx, h, program=[(end_of(a), end_of(b), op)])
    logits = model.write_tokens(model.lm_head(h), h, out['next_tokens'])
    for t in range(n_prompt - 1, len(ids) - 2):  # the last answer token predicts '\n': the DAG says 'end'
        assert out['values'][0, t, -1].item() == float(answer)
        assert logits[0, t].argmax().item() == ids[t + 1], (t, chunks[t + 1])
    assert out['next_tokens'][0, len(ids) - 2, -1].tolist() == [-1, -1]  # the answer is complete: 'end'


@pytest.mark.parametrize('share', [1.0, 0.5])
def test_bpe_model_trains_and_decodes_the_same_with_and_without_the_cache(enc, gpt2_tokens, share):
    """A random GPT+DAG on GPT-2 tokens with the write path: finite loss and gradients for every parameter (also
    when a training step runs the DAG at a share of the positions), and cached greedy decoding gives the tokens of
    uncached decoding, also past block_size."""
    torch.manual_seed(0)
    cfg = DAGGPTConfig(block_size=24, vocab_size=50304, n_layer=1, n_head=2, n_embd=16, dropout=0.0, bias=False,
                       dag_depth=2, dag_write_tokens=True, dag_train_positions=share)
    model = DAGGPT(cfg, gpt2_tokens)
    idx = torch.tensor([enc.encode_ordinary('What is 12 345 plus 6? 12351\n1,700 - 2.5k = -800\n')[:24]])
    _, loss = model(idx[:, :-1], idx[:, 1:])
    loss.backward()
    assert torch.isfinite(loss) and all(p.grad is not None and torch.isfinite(p.grad).all()
                                        for p in model.parameters())
    model.eval()
    prompt = idx[:, :6]
    cached = greedy_decode(model, prompt, 30, use_cache=True)
    assert torch.equal(cached, greedy_decode(model, prompt, 30, use_cache=False))


def test_prepare_writes_the_corpus_in_gpt2_tokens(tmp_path, enc, gpt2_tokens):
    """prepare.py --tokenizer=gpt2: the same problems as GPT-2 ids, no meta.pkl, token roles whose numbers
    re-read to the problems' values, and answer spans from the token before each answer to its last token."""
    out = tmp_path / 'numeric_gpt2'
    run_script('data/numeric/prepare.py', '--tokenizer=gpt2', '--tiktoken_file', shared_file('gpt2', 'gpt2.tiktoken'),
               '--n_train=300', '--n_val=30', '--n_test=20', '--n_extrap=10', '--n_phrasing=10', '--out_dir', out,
               cwd=tmp_path)
    assert not (out / 'meta.pkl').exists()
    ids = np.fromfile(out / 'train.bin', dtype=np.uint16)
    roles = np.fromfile(out / 'train_roles.bin', dtype=np.uint8)
    steps_of = np.fromfile(out / 'train_steps_of.bin', dtype=np.int32)
    steps = np.load(out / 'train_steps.npy')
    ops = np.fromfile(out / 'train_ops.bin', dtype=np.uint8)
    assert len(ids) == len(roles) == len(steps_of) == len(ops) and len(steps) >= 300
    named = ops != NO_OP  # an op at the token that ends its right operand's first number (or its ',' / '.')
    assert named.sum() >= 200 and (roles[named] != 0).all() and (ops[named] < len(OPS)).all()
    text = enc.decode(ids.tolist())
    lines = text.splitlines()
    assert len(lines) == 300 and enc.encode_ordinary(text) == ids.tolist()
    # read every number back from the token roles, with the tables and recurrence the model uses
    model = role_wired_dag(gpt2_tokens, 50304)
    first = 0
    newlines = np.flatnonzero(ids == enc.encode_ordinary('\n')[0])
    for end in newlines[:20]:  # the first 20 problems: the answer's span and value, and a close token's row
        row = steps_of[end - 1]  # the answer's last token
        span = np.flatnonzero(steps_of[first:end] == row) + first
        assert span.size and np.array_equal(span, np.arange(span[0], end))  # one run, up to the answer's end
        # the answer, from the token that holds its first char (in "...)=-1164.306" GPT-2 merges the prompt's "=" and
        # the answer's "-" into one token "=-", so that token's text starts before the answer)
        tail = enc.decode(ids[span[1]:end].tolist())
        answer_text = re.search(r'-?\d+(\.\d+)?$', tail)[0]
        assert float(answer_text) == steps[row, -1]
        assert len(enc.decode(ids[span[1] + 1:end].tolist())) < len(answer_text) <= len(tail.strip())
        closes = np.flatnonzero(steps_of[first:span[0]] >= 0) + first  # inside the prompt: where ops close
        assert (roles[closes - 1] != 0).all()  # right after a number's last token (or its ',' / '.')
        assert (steps[steps_of[span[0]]] == steps[row])[~np.isnan(steps[row])].all()
        seq = ids[first:end].tolist()
        values, _ = read(model, seq, [CLASSES[r] for r in roles[first:end]])
        assert values[-1] == steps[row, -1]
        first = end + 1


def test_prose_mixture_in_gpt2_tokens(tmp_path, enc):
    """prepare --tokenizer=gpt2 --prose: the character mixture's text as GPT-2 ids, the val prose alone in
    val_prose.bin, and prose tokens labelled as text (the digit token " 12" as digits) answering nothing."""
    from data.numeric import prepare as prep
    prose = tmp_path / 'prose.txt'
    prose.write_text("MENENIUS:\nI tell you, 12 friends.\n\nAll:\nSpeak, speak.\n\nSecond Citizen:\nOne word.\n")
    sizes = dict(n_train=30, n_val=10, n_test=10, n_extrap=10, n_phrasing=10, prose=str(prose))
    prep.prepare(str(tmp_path / 'char'), **sizes)
    prep.prepare(str(tmp_path / 'bpe'), tokenizer='gpt2', tiktoken_file=shared_file('gpt2', 'gpt2.tiktoken'), **sizes)
    for split in ('train', 'val'):
        chars = ''.join(prep.ALPHABET[i] for i in np.fromfile(tmp_path / 'char' / f'{split}.bin', dtype=np.uint16))
        ids = np.fromfile(tmp_path / 'bpe' / f'{split}.bin', dtype=np.uint16).tolist()
        assert enc.decode(ids) == chars and ids == enc.encode_ordinary(chars)
    ids = np.fromfile(tmp_path / 'bpe' / 'train.bin', dtype=np.uint16)
    roles = np.fromfile(tmp_path / 'bpe' / 'train_roles.bin', dtype=np.uint8)
    steps_of = np.fromfile(tmp_path / 'bpe' / 'train_steps_of.bin', dtype=np.int32)
    start = enc.decode(ids.tolist()).index('MENENIUS')
    first = len(enc.encode_ordinary(enc.decode(ids.tolist())[:start]))
    paragraph = list(range(first, first + len(enc.encode_ordinary("MENENIUS:\nI tell you, 12 friends.\n\n"))))
    assert [CLASSES[roles[i]] for i in paragraph if enc.decode([int(ids[i])]) == ' 12'] == ['digits']
    assert sum(roles[i] != 0 for i in paragraph) == 1 and (steps_of[paragraph] == -1).all()
    val_prose = np.fromfile(tmp_path / 'bpe' / 'val_prose.bin', dtype=np.uint16).tolist()
    assert enc.decode(val_prose) == "Second Citizen:\nOne word.\n\n"


def test_newline_ids_of_a_character_vocabulary_and_of_gpt2(tmp_path):
    """The tokens train.py's line_windows start windows near: the characters' '\\n', GPT-2's 198 alone."""
    with open(tmp_path / 'meta.pkl', 'wb') as f:
        pickle.dump({'vocab_size': 3, 'itos': {0: 'a', 1: '\n', 2: 'b'}, 'stoi': {'a': 0, '\n': 1, 'b': 2}}, f)
    assert newline_ids(str(tmp_path / 'meta.pkl')) == [1]
    assert newline_ids(None, shared_file('gpt2', 'gpt2.tiktoken')) == [198]
