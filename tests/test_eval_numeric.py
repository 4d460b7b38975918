"""eval_numeric.py: scoring arithmetic, batched greedy answering with oracle models, and the script end to end."""
import json
import shutil

import numpy as np
import pytest
import torch
import torch.nn as nn

import eval_numeric
import model as model_module
from conftest import run_script
from eval_numeric import answer_problems, load_problems, score
from tokenizer import load_codec

# Three prompt lengths (4, 6 and 10 chars), answers of different lengths within a length, and no prompt a prefix
# of another problem's text, so the oracle below can tell which problem a row is.
PROBLEMS = [
    {'prompt': '1+2=', 'answer': '3', 'split': 'test', 'op': 'add', 'digits': 1},
    {'prompt': '10+20=', 'answer': '30', 'split': 'test', 'op': 'add', 'digits': 2},
    {'prompt': '7*8=', 'answer': '56', 'split': 'test', 'op': 'multiply', 'digits': 1},
    {'prompt': 'max(4, 9)=', 'answer': '9', 'split': 'test', 'op': 'max', 'digits': 1},
    {'prompt': '9-30=', 'answer': '-21', 'split': 'test', 'op': 'subtract', 'digits': 2},
    {'prompt': '12+30=', 'answer': '42', 'split': 'extrap', 'op': 'add', 'digits': 2},
    {'prompt': '5*6=', 'answer': '30', 'split': 'extrap', 'op': 'multiply', 'digits': 1},
]
VOCAB = sorted(set(''.join(p['prompt'] + p['answer'] for p in PROBLEMS) + '\n'))


def encode(s):
    return [VOCAB.index(c) for c in s]


def decode(ids):
    return ''.join(VOCAB[i] for i in ids)


class Oracle(nn.Module):
    """A lookup "model": finds the problem whose prompt ("\n" first) starts each row and emits its answer char by char
    (position = tokens generated so far), then `after` forever ("\n9999..." by default)."""

    def __init__(self, problems, answer=lambda p: p['answer'], after='\n9'):
        super().__init__()
        self.table = [(encode('\n' + p['prompt']), encode(answer(p) + after)) for p in problems]

    def forward(self, idx, targets=None):
        B, T = idx.shape
        logits = torch.zeros(B, T, len(VOCAB))
        for b, row in enumerate(idx.tolist()):
            prompt, text = next((p, t) for p, t in self.table if row[:len(p)] == p)
            logits[b, -1, text[min(T - len(prompt), len(text) - 1)]] = 1.0
        return logits, None


def test_score_counts():
    answers = ['3', '31', '56', '9', '-21', '42', '']  # wrong: 10+20 and 5*6
    s = score(PROBLEMS, answers)
    assert s['overall'] == {'acc': 5 / 7, 'n': 7, 'correct': 5}
    assert s['by_split'] == {'test': {'acc': 0.8, 'n': 5, 'correct': 4}, 'extrap': {'acc': 0.5, 'n': 2, 'correct': 1}}
    assert s['by_op'] == {'add': {'acc': 2 / 3, 'n': 3, 'correct': 2}, 'multiply': {'acc': 0.5, 'n': 2, 'correct': 1},
                          'max': {'acc': 1.0, 'n': 1, 'correct': 1}, 'subtract': {'acc': 1.0, 'n': 1, 'correct': 1}}
    assert s['by_digits'] == {'1': {'acc': 0.75, 'n': 4, 'correct': 3}, '2': {'acc': 2 / 3, 'n': 3, 'correct': 2}}
    assert json.loads(json.dumps(s)) == s
    assert score(PROBLEMS, [' 3'] + answers[1:])['overall']['correct'] == 4  # exact match: no stripping
    with pytest.raises(ValueError, match='7 problems but 6 answers'):
        score(PROBLEMS, answers[:-1])


def test_answer_problems_uses_shared_greedy_decode(monkeypatch):
    assert eval_numeric.greedy_decode is model_module.greedy_decode
    calls = []

    def spy(model, idx, max_new_tokens, stop_token=None, use_cache=False):
        calls.append((tuple(idx.shape), max_new_tokens, stop_token))
        return model_module.greedy_decode(model, idx, max_new_tokens, stop_token, use_cache)
    monkeypatch.setattr(eval_numeric, 'greedy_decode', spy)

    oracle = Oracle(PROBLEMS)
    oracle.train()
    answers = answer_problems(oracle, encode, decode, PROBLEMS, batch_size=2)
    assert answers == [p['answer'] for p in PROBLEMS]  # cut at "\n", back in the problems' order
    assert score(PROBLEMS, answers)['overall']['acc'] == 1.0
    assert oracle.training, "the caller's training flag is restored"
    # by prompt length, "\n" included (5: 1+2, 7*8, 5*6; 6: 9-30; 7: 10+20, 12+30; 11: max), batch_size rows at
    # a time, each for the longest answer in the batch + 2 tokens, stopping early at "\n"
    nl = VOCAB.index('\n')
    assert calls == [((2, 5), 4, nl), ((1, 5), 4, nl), ((1, 6), 5, nl), ((2, 7), 4, nl), ((1, 11), 3, nl)]


@pytest.mark.parametrize('answer, after', [(lambda p: '', '\n'),  # "\n" at once: empty answers
                                           (lambda p: p['answer'], '9')],  # right digits but never a "\n"
                         ids=['newline_at_once', 'no_newline'])
def test_answer_problems_wrong_models_score_zero(answer, after):
    answers = answer_problems(Oracle(PROBLEMS, answer, after), encode, decode, PROBLEMS, batch_size=4)
    assert score(PROBLEMS, answers)['overall'] == {'acc': 0.0, 'n': 7, 'correct': 0}


def test_load_problems(tmp_path):
    path = tmp_path / 'problems.jsonl'
    path.write_text(''.join(json.dumps(p) + '\n' for p in PROBLEMS))
    assert load_problems(path) == PROBLEMS
    assert [p['prompt'] for p in load_problems(path, split='extrap')] == ['12+30=', '5*6=']
    assert [p['prompt'] for p in load_problems(path, max_problems=2)] == ['1+2=', '10+20=', '12+30=', '5*6=']
    with pytest.raises(ValueError, match="no problems with split 'val'"):
        load_problems(path, split='val')
    with pytest.raises(FileNotFoundError, match='python data/numeric/prepare.py'):
        load_problems(tmp_path / 'missing.jsonl')
    path.write_text(json.dumps({'prompt': '1+1=', 'answer': '2'}) + '\n')
    with pytest.raises(ValueError, match=r"line 1: .*missing \['split', 'op', 'digits'\]"):
        load_problems(path)


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    """A working directory with a tiny numeric corpus (40 test, 20 extrap, 20 phrasing problems) and a 20-iteration
    GPT in out/."""
    work = tmp_path_factory.mktemp('eval_numeric')
    run_script('data/numeric/prepare.py', '--out_dir', work / 'data' / 'numeric', '--n_train=2000', '--n_val=200',
               '--n_test=40', '--n_extrap=20', '--n_phrasing=20', cwd=work)
    run_script('train.py', '--dataset=numeric', '--device=cpu', '--compile=False', '--n_layer=1', '--n_head=2',
               '--n_embd=32', '--block_size=64', '--batch_size=8', '--max_iters=20', '--eval_interval=20',
               '--eval_iters=2', '--gradient_accumulation_steps=1', '--out_dir=out', cwd=work)
    return work


def test_over_block_counts_the_problems_cropped_while_answering():
    """A problem is cropped when '\\n' + prompt + answer is longer than block_size: greedy decoding then cuts the
    prompt's start before the last token (the answer's end) is written."""
    problems = [{'prompt': '12 + 3 = ', 'answer': '15', 'split': 'test'},  # '\n12 + 3 = 15': 12 chars
                {'prompt': '1 + 2 = ', 'answer': '3', 'split': 'extrap'}]  # 10 chars
    encode = lambda s: [ord(c) for c in s]  # noqa: E731
    assert eval_numeric.over_block(problems, encode, 12) == {}
    assert eval_numeric.over_block(problems, encode, 11) == {'test': 1}
    assert eval_numeric.over_block(problems, encode, 9) == {'test': 1, 'extrap': 1}


def test_script_end_to_end(trained):
    proc = run_script('eval_numeric.py', '--out_dir=out', '--device=cpu', cwd=trained)
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert set(result) == {'overall', 'by_split', 'by_kind', 'by_op', 'by_digits', 'by_steps', 'checkpoint',
                           'iter_num', 'n_params', 'dag_depth', 'over_block', 'by_phrasing'}
    assert result['overall']['n'] == 80 and 0 <= result['overall']['acc'] <= 1
    assert {k: t['n'] for k, t in result['by_split'].items()} == {'test': 40, 'extrap': 20, 'phrasing': 20}
    assert set(result['by_op']) == {'add', 'subtract', 'multiply', 'divide', 'log', 'pow', 'max', 'min',
                                    'identity', 'multi'}
    assert {'test one op', 'test chain', 'phrasing one op'} <= set(result['by_kind'])
    for group in ('by_split', 'by_kind', 'by_op', 'by_digits', 'by_steps'):
        assert sum(t['n'] for t in result[group].values()) == 80
        assert sum(t['correct'] for t in result[group].values()) == result['overall']['correct']
    assert result['iter_num'] == 20 and result['dag_depth'] == 0 and result['n_params'] > 0
    assert sum(t['n'] for t in result['by_phrasing'].values()) == 20 and len(result['by_phrasing']) > 1
    assert '-- by op' in proc.stdout and '-- phrasing split by held-out template' in proc.stdout

    proc = run_script('eval_numeric.py', '--out_dir=out', '--device=cpu', '--split=extrap', '--max_problems=5',
                      cwd=trained)
    by_split = json.loads(proc.stdout.strip().splitlines()[-1])['by_split']
    assert list(by_split) == ['extrap'] and by_split['extrap']['n'] == 5


def test_script_errors(trained):
    proc = run_script('eval_numeric.py', '--out_dir=out', '--device=cpu', '--problems=nowhere.jsonl', cwd=trained,
                      check=False)
    assert proc.returncode != 0 and 'python data/numeric/prepare.py' in proc.stderr
    encode_chars, decode_chars = load_codec(str(trained / 'data' / 'numeric' / 'meta.pkl'))
    bad = [dict(PROBLEMS[0], prompt='1+2=€')]  # the vocabulary is printable ASCII
    with pytest.raises(ValueError, match=r"\['€'\] are not in the vocabulary"):
        answer_problems(Oracle(PROBLEMS), encode_chars, decode_chars, bad)


def test_length_problems():
    """AdderBoard's protocol (the adder's own edge cases and random pairs) and the operand-length grid."""
    from adder import EDGE_CASES, random_pairs
    problems = eval_numeric.length_problems()
    adder = [p for p in problems if p['split'] == 'adder']
    assert len(adder) == 10010 and adder[1] == {'prompt': '9999999999 + 1 = ', 'answer': '10000000000',
                                                  'split': 'adder', 'op': 'add', 'digits': 10}
    a, b = random_pairs()[0]
    assert adder[10]['prompt'] == f'{a} + {b} = ' and len(EDGE_CASES) == 10
    grid = [p for p in problems if p['split'] == 'grid']
    cells = {(p['op'], p['digits']) for p in grid}
    assert ('add', 12) in cells and ('multiply', 8) in cells and ('multiply', 9) not in cells  # 9 digits: > 2^53
    for p in grid:
        x, symbol, y = p['prompt'][:-3].split(' ')
        assert len(x) == len(y) == p['digits'] and symbol == eval_numeric.GRID_OPS[p['op']][0]
        assert int(p['answer']) == eval_numeric.GRID_OPS[p['op']][1](int(x), int(y)) and abs(int(p['answer'])) < 2 ** 53
    assert eval_numeric.length_problems() == problems  # deterministic
    table = eval_numeric.format_grid(problems, [p['answer'] if p['op'] == 'add' else '' for p in problems])
    rows = table.splitlines()
    assert rows[1].split() == ['1', '100.0%', '0.0%', '0.0%'] and rows[12].split()[-1] == '-'


def test_prose_loss_is_the_mean_over_every_window():
    """prose_loss: the mean cross-entropy of every non-overlapping block_size window (the partial one dropped),
    the same whatever the batch size, in eval mode, restoring the training flag."""
    torch.manual_seed(0)
    gpt = model_module.GPT(model_module.GPTConfig(block_size=8, vocab_size=11, n_layer=1, n_head=1, n_embd=8,
                                                  dropout=0.5))
    ids = torch.randint(0, 11, (45,)).tolist()  # 5 windows of 8 tokens + 1 target each, 4 tokens left over
    gpt.eval()
    logits, _ = gpt(torch.tensor(ids[:40]).view(5, 8), torch.tensor(ids[1:41]).view(5, 8))
    expected = torch.nn.functional.cross_entropy(logits.view(-1, 11), torch.tensor(ids[1:41])).item()
    gpt.train()
    assert abs(eval_numeric.prose_loss(gpt, ids, 8, batch_size=2) - expected) < 1e-6
    assert abs(eval_numeric.prose_loss(gpt, ids, 8, batch_size=64) - expected) < 1e-6
    assert gpt.training
    with pytest.raises(ValueError, match='fewer than block_size'):
        eval_numeric.prose_loss(gpt, ids[:8], 8)


def test_script_prints_the_prose_loss_of_a_mixture(trained, tmp_path):
    """With data/<dataset>/val_prose.bin (prepare.py --prose) the script prints the val loss on the prose alone."""
    work = tmp_path / 'work'
    shutil.copytree(trained, work)
    encode_chars, _ = load_codec(str(work / 'data' / 'numeric' / 'meta.pkl'))
    prose_path = work / 'data' / 'numeric' / 'val_prose.bin'
    np.asarray(encode_chars('First Citizen:\nBefore we proceed any further, hear me speak.\n\n' * 4),
               dtype=np.uint16).tofile(prose_path)
    proc = run_script('eval_numeric.py', '--out_dir=out', '--device=cpu', '--max_problems=2', cwd=work)
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert 0 < result['prose_val_loss'] < 10 and 'prose val loss: ' in proc.stdout
    prose_path.write_bytes(b'\x01\x00' * 10)  # 10 tokens, shorter than a block
    proc = run_script('eval_numeric.py', '--out_dir=out', '--device=cpu', cwd=work, check=False)
    assert proc.returncode != 0 and 'fewer than block_size + 1 = 65' in proc.stderr


class LabelOracle(nn.Module):
    """A stand-in for DAGGPT in chain_nodes: its DAG's step k at position char + 1 + shift (the text follows a '\\n')
    holds the label the training loss teaches there (prepare.step_rows' row, column MAX_STEPS - D + k), and every
    choice reads token node 0."""

    def __init__(self, problems, shift=0, dag_depth=4):
        super().__init__()
        from types import SimpleNamespace
        self.config = SimpleNamespace(dag_depth=dag_depth, block_size=256)
        self.rows = {p['text']: p for p in problems}
        self.shift = shift

    def hidden_states(self, idx):
        return idx

    def dag(self, idx, h):
        from data.numeric.prepare import MAX_STEPS, step_rows
        p = self.rows[decode_ascii(idx[0, 1:].tolist())]
        D, T = self.config.dag_depth, idx.size(1)
        values = torch.full((1, T, D), float('nan'), dtype=torch.float64)
        for char, row in step_rows(p)[:-1]:
            pos = char + 1 + self.shift
            if pos < T:
                values[0, pos] = torch.from_numpy(row[MAX_STEPS - D:])
        return None, {'values': values, 'choices': torch.zeros(1, T, D, 3, dtype=torch.long)}, None


def encode_ascii(s):
    return [ord(c) for c in s]


def decode_ascii(ids):
    return ''.join(map(chr, ids))


def test_chain_nodes_reads_the_steps_the_loss_teaches():
    """chain_nodes checks each op node at the position and step whose label the auxiliary loss uses: an oracle
    holding exactly those labels is right on every node, one shifted by a position is not."""
    problems = eval_numeric.chain_problems(n=40)
    assert problems == eval_numeric.chain_problems(n=40) and all(p['op'] == 'multi' for p in problems)
    heights = [max(h for _, h, _ in p['closes']) for p in problems]
    assert min(heights) == 2 and max(heights) >= 3
    nodes = eval_numeric.chain_nodes(LabelOracle(problems), encode_ascii, problems)
    assert len(nodes) == sum(p['steps'] for p in problems)  # one per op node
    assert all(n['right'] and n['held'] and n['tokens_only'] for n in nodes)
    assert any(n['own_position'] for n in nodes) and not all(n['own_position'] for n in nodes if n['height'] > 1)
    shifted = eval_numeric.chain_nodes(LabelOracle(problems, shift=1), encode_ascii, problems)
    assert sum(n['right'] for n in shifted) < len(shifted) / 2
    assert [n['step'] for n in shifted] == [n['step'] for n in nodes]
    report = eval_numeric.chain_report(problems, [p['answer'] for p in problems], nodes)
    assert report['answers']['2']['acc'] == 1 and report['nodes']['1']['acc'] == 1
    assert report['held'] == report['nodes'] and sum(t['n'] for t in report['by_step'].values()) == len(nodes)
    assert all(t['acc'] == 1 for t in report['by_step'].values()) and 'height 2, step 2' in report['by_step']
    # a node's step is its height's place below the tree's top, taken as at least 3 high (prepare.ALIGN_HEIGHT):
    # a node of height h at step h in trees up to 3 high, and the root of a taller one at the last step
    heights = {i: max(3, max(h for _, h, _ in p['closes'])) for i, p in enumerate(problems)}
    assert all(n['step'] == 4 - heights[n['problem']] + n['height'] - 1 for n in nodes)
    assert report['own_position']['n'] + report['earlier']['n'] == sum(n['height'] > 1 for n in nodes)
    assert report['wrong, tokens only']['n'] == 0
    assert 'height 2' in eval_numeric.format_chains(report)


class AnswerOracle(nn.Module):
    """A stand-in for DAGGPT in answer_steps: the steps in `holding` hold each problem's answer at the positions
    that predict its characters (the prompt's last char on, after the '\\n'), but the last of them with `drop`;
    the other steps hold -1."""

    def __init__(self, problems, holding, drop=False, dag_depth=4):
        super().__init__()
        from types import SimpleNamespace
        self.config = SimpleNamespace(dag_depth=dag_depth, block_size=256)
        self.problems = {p['prompt'] + p['answer']: p for p in problems}
        self.holding, self.drop = holding, drop

    def hidden_states(self, idx):
        return idx

    def dag(self, idx, h):
        p = self.problems[decode_ascii(idx[0, 1:].tolist())]
        values = torch.full((1, idx.size(1), self.config.dag_depth), -1.0, dtype=torch.float64)
        first, n = len(p['prompt']), len(p['answer']) - self.drop
        values[0, first:first + n, self.holding] = float(p['answer'])
        return None, {'values': values}, None


def test_answer_steps_names_the_steps_that_hold_the_answer():
    """answer_steps reads the steps at exactly the positions that write the answer: a step holding it at all of them
    is 'x', one that misses the last is '.', and chain_report tallies the answers by that pattern."""
    problems = eval_numeric.chain_problems(n=6)
    assert eval_numeric.answer_steps(AnswerOracle(problems, [1, 3]), encode_ascii, problems) == ['.x.x'] * 6
    assert eval_numeric.answer_steps(AnswerOracle(problems, [3], drop=True), encode_ascii, problems) == ['....'] * 6
    too_long = [dict(problems[0], prompt='(' * 300 + problems[0]['prompt'])]
    assert eval_numeric.answer_steps(AnswerOracle(too_long, [3]), encode_ascii, too_long) == [None]
    answers = [p['answer'] for p in problems[:4]] + ['0', '0']
    report = eval_numeric.chain_report(problems, answers, [], ['...x'] * 3 + ['xxxx'] * 3)
    assert report['answer_steps'] == {'xxxx': {'acc': 1 / 3, 'n': 3, 'correct': 1},
                                      '...x': {'acc': 1.0, 'n': 3, 'correct': 3}}
    assert 'steps ...x' in eval_numeric.format_chains(report)


def test_script_chains_suite(trained):
    proc = run_script('eval_numeric.py', '--out_dir=out', '--device=cpu', '--suite=chains', cwd=trained)
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result['overall']['n'] == 300 and set(result['by_op']) == {'multi'}
    assert sum(t['n'] for t in result['chains']['answers'].values()) == 300
    assert result['chains']['nodes'] == {}  # a plain GPT has no DAG nodes to check
    assert '-- chains: exact answers by tree height' in proc.stdout


def test_chain_nodes_runs_through_a_real_dag():
    """The same check through DAGGPT.dag itself (a tiny random model: few nodes right, but every op node is
    checked, a plain choice of token nodes is told from a scratch node's, and the model's mode is restored)."""
    from dag_model import DAGGPT, DAGGPTConfig, computes
    from data.numeric.prepare import close_positions
    torch.manual_seed(0)
    model = DAGGPT(DAGGPTConfig(block_size=128, vocab_size=128, n_layer=1, n_head=2, n_embd=16, dag_depth=4),
                   [chr(i) for i in range(128)]).train()
    problems = eval_numeric.chain_problems(n=10)
    nodes = eval_numeric.chain_nodes(model, encode_ascii, problems)
    assert model.training and len(nodes) == sum(p['steps'] for p in problems)
    held = eval_numeric.answer_steps(model, encode_ascii, problems)
    assert model.training and len(held) == 10 and all(len(x) == 4 and set(x) <= {'x', '.'} for x in held)
    assert all(isinstance(n['right'], bool) and isinstance(n['tokens_only'], bool) for n in nodes)
    p = problems[nodes[0]['problem']]
    idx = torch.tensor([encode_ascii('\n' + p['text'])])
    with torch.no_grad():
        _, out, _ = model.eval().dag(idx, model.hidden_states(idx))
    char, h, value = close_positions(p)[0]
    k = 4 - max(3, max(g for _, g, _ in p['closes'])) + h - 1
    steps = computes(out['values'][0, char + 1], torch.tensor(value, dtype=torch.float64))  # as chain_nodes reads
    assert nodes[0]['step'] == k and nodes[0]['right'] == steps[k].item() and nodes[0]['held'] == steps.any().item()
    assert nodes[0]['tokens_only'] == bool((out['choices'][0, char + 1, k, :2] < idx.size(1)).all())


def test_score_by_held_out_phrasing():
    phrased = [{'prompt': '1 and 2 make ', 'answer': '3', 'split': 'phrasing', 'op': 'add', 'digits': 1,
                'template': '{a} and {b} make '},
               {'prompt': '3 and 4 make ', 'answer': '7', 'split': 'phrasing', 'op': 'add', 'digits': 1,
                'template': '{a} and {b} make '},
               {'prompt': 'Work out 2 * 5. ', 'answer': '10', 'split': 'phrasing', 'op': 'multiply', 'digits': 1,
                'template': 'Work out {a} * {b}. '},
               {'prompt': 'Work out 7. ', 'answer': '7', 'split': 'phrasing', 'op': 'identity', 'digits': 1,
                'template': 'Work out {a}. '},
               {'prompt': 'Work out 2 * (1 + 2). ', 'answer': '6', 'split': 'phrasing', 'op': 'multi', 'digits': 1,
                'steps': 2, 'template': 'Work out {a}. '}]
    s = score(PROBLEMS + phrased, ['3', '30', '56', '9', '-21', '42', '30'] + ['3', 'and', '10', '7', '5'])
    assert s['by_phrasing'] == {'{a} and {b} make ': {'acc': 0.5, 'n': 2, 'correct': 1},
                                'Work out {a} * {b}. ': {'acc': 1.0, 'n': 1, 'correct': 1},
                                'Work out {a}. ': {'acc': 1.0, 'n': 1, 'correct': 1},
                                '(chains) Work out {a}. ': {'acc': 0.0, 'n': 1, 'correct': 0}}
    assert "50.00%     1/2    '{a} and {b} make '" in eval_numeric.format_table(s)
    assert 'by_phrasing' not in score(PROBLEMS, ['3'] * 7)  # no phrasing split, no section
