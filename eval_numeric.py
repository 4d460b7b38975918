"""
Exact-match accuracy of a trained model (GPT or GPT+DAG checkpoint in out_dir) on the numeric corpus's held-out
problems (data/<dataset>/problems.jsonl, written by data/numeric/prepare.py).

Each prompt is encoded with the dataset's character vocabulary and answered by greedy decoding with the shared
`model.greedy_decode` (the one loop every model in the project is scored with); the text generated up to the first
"\n" must equal the problem's "answer" exactly. Problems are batched by prompt length, so a batch is a (B, T) tensor
with no padding, and each batch decodes (longest answer + 2) tokens. A prompt longer than block_size minus that
room is cropped to the last block_size tokens by greedy_decode itself, so such a model sees a cut prompt.

Prints a table of accuracy overall, by split (test / extrap / phrasing), by op, by number of digits and steps, and
for the phrasing split by held-out template (which new wordings the model answers), then, as the last
line, one JSON object with the same numbers (see `score`) plus checkpoint, iter_num, n_params, dag_depth and
over_block (per split, the problems that do not fit block_size with their answer: see over_block). On a
mixture of prose and problems (data/numeric/prepare.py --prose=PATH, which writes val_prose.bin) it also prints
the val loss on the prose alone (prose_loss), 'prose_val_loss' in the JSON.

$ python eval_numeric.py --out_dir=out-numeric
$ python eval_numeric.py --out_dir=out-numeric --split=extrap --max_problems=100 --show_errors=10
$ python eval_numeric.py --out_dir=out-numeric --suite=length   # 10-digit adds (AdderBoard), length grid
$ python eval_numeric.py --out_dir=out-numeric --suite=chains   # multi-step: by tree height, where programs break

As a library: load_problems, length_problems, chain_problems, answer_problems, chain_nodes, answer_steps, prose_loss,
over_block, score, chain_report, format_table, format_grid, format_chains.
"""
import json
import os
import random
import sys
import time

import numpy as np
import torch
from tqdm import tqdm

from model import greedy_decode

_PROBLEM_KEYS = ('prompt', 'answer', 'split', 'op', 'digits')  # what each line of problems.jsonl must have


def load_problems(path, split='', max_problems=0):
    """The problems of a problems.jsonl file as dicts (prompt, answer, split, op, digits, ...), in file order.

    split '' keeps every split, else only that one ('test' or 'extrap'); max_problems > 0 keeps the first
    max_problems of each split. Raises FileNotFoundError (naming the prepare command) for a missing file, and
    ValueError naming the line for a line that is not JSON, lacks prompt, answer, split, op or digits, has an
    empty prompt or a prompt or answer that is not a string; and for an empty selection."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no problems file at {path}: generate it with python data/numeric/prepare.py "
                                f"(or pass --problems=PATH to a problems.jsonl)")
    problems, kept = [], {}
    with open(path) as f:
        for line_no, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                p = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{path} line {line_no}: not a JSON object ({e}); regenerate the file with "
                                 f"python data/numeric/prepare.py") from e
            missing = [k for k in _PROBLEM_KEYS if not isinstance(p, dict) or k not in p]
            if missing or not p['prompt']:
                raise ValueError(f"{path} line {line_no}: a problem needs {list(_PROBLEM_KEYS)} and a non-empty "
                                 f"prompt, missing {missing or ['prompt text']}; regenerate it with "
                                 f"python data/numeric/prepare.py")
            for key in ('prompt', 'answer'):
                if not isinstance(p[key], str):
                    raise ValueError(f"{path} line {line_no}: {key!r} must be a string (the exact text), got "
                                     f"{p[key]!r}; write it in quotes, e.g. \"{key}\": \"{p[key]}\"")
            if split and p['split'] != split:
                continue
            if max_problems and kept.get(p['split'], 0) >= max_problems:
                continue
            kept[p['split']] = kept.get(p['split'], 0) + 1
            problems.append(p)
    if not problems:
        raise ValueError(f"no problems{f' with split {split!r}' if split else ''} in {path}; "
                         f"the file has splits such as 'test' and 'extrap'")
    return problems


@torch.no_grad()
def answer_problems(model, encode, decode, problems, batch_size=256, device='cpu', progress=False, bpe=False):
    """The model's answer (str) to each problem, in the order of problems, by greedy decoding.

    model: any nn.Module whose forward(idx (B, T)) returns (logits (B, T or 1, vocab_size), _), already on device;
    it runs in eval mode and its training flag is restored after. encode: str -> list[int], decode: list[int] -> str.
    Each prompt is preceded by "\n", as every problem is in the training text. Prompts of equal token length are
    decoded together, batch_size at a time, for (longest answer in the batch + 2)
    tokens; an answer is the generated text up to its first "\n". A row that never emits "\n" returns all its
    generated text, which is longer than the expected answer and so never an exact match. progress: a tqdm
    bar (problems answered) on stderr. A model with a KV cache (new_kv_cache) decodes with it.

    bpe: the codec is GPT-2's, where the space before an answer is part of the answer's first token ("= 15" is
    " =", " 15"): a prompt's trailing spaces are cut from it and must start the generated text, and the answer
    is what follows them (a prompt ending in a lone " " token would read as no training text does)."""
    texts = ['\n' + p['prompt'] for p in problems]  # in the corpus every problem follows a newline
    cut = [t[len(t.rstrip(' ')):] if bpe else '' for t in texts]  # the spaces the answer's first token holds
    prompts = [encode(t[:len(t) - len(c)]) for t, c in zip(texts, cut)]
    newline = encode('\n')[0]  # an answer ends there: a batch stops once every row has written it
    by_length = {}
    for i, ids in enumerate(prompts):
        by_length.setdefault(len(ids), []).append(i)
    answers = [None] * len(problems)
    was_training = model.training
    model.eval()
    bar = tqdm(total=len(problems), desc='answering', unit='problem', disable=not progress, leave=False)
    try:
        for length in sorted(by_length):
            rows = by_length[length]
            for start in range(0, len(rows), batch_size):
                batch = rows[start:start + batch_size]
                idx = torch.tensor([prompts[i] for i in batch], dtype=torch.long, device=device)  # (B, T)
                max_new_tokens = max(len(encode(problems[i]['answer'])) for i in batch) + 2
                generated = greedy_decode(model, idx, max_new_tokens, stop_token=newline,
                                          use_cache=hasattr(model, "new_kv_cache"))[:, length:].tolist()
                for i, ids in zip(batch, generated):
                    text = decode(ids).split('\n', 1)[0]
                    answers[i] = text[len(cut[i]):] if text.startswith(cut[i]) else text
                bar.update(len(batch))
    finally:
        bar.close()
        model.train(was_training)
    return answers


@torch.no_grad()
def prose_loss(model, ids, block_size, batch_size=64, device='cpu'):
    """The mean next-token cross-entropy (nats, a float) of model on the token ids (1-D np.ndarray or list of
    ints: a mixture's val_prose.bin), over its consecutive non-overlapping windows of block_size tokens (every
    token but the first is a target once; the last partial window is dropped), in eval mode (restored after).
    model: forward(x, targets) -> (logits, mean loss), as GPT and GPT+DAG. Deterministic, unlike train.py's
    random eval batches. Raises ValueError for fewer than block_size + 1 tokens."""
    ids = torch.as_tensor(np.asarray(ids, dtype=np.int64))
    n = (len(ids) - 1) // block_size
    if n < 1:
        raise ValueError(f"{len(ids)} prose tokens, fewer than block_size + 1 = {block_size + 1}: prepare the "
                         f"mixture with more prose (--prose=PATH)")
    x, y = ids[:n * block_size].view(n, block_size), ids[1:n * block_size + 1].view(n, block_size)
    was_training = model.training
    model.eval()
    total = 0.0
    try:
        for i in range(0, n, batch_size):
            xb, yb = x[i:i + batch_size].to(device), y[i:i + batch_size].to(device)
            total += model(xb, yb)[1].item() * len(xb)
    finally:
        model.train(was_training)
    return total / n


def _tally(correct):
    n = len(correct)
    return {'acc': sum(correct) / n if n else 0.0, 'n': n, 'correct': sum(correct)}


GRID_OPS = {'add': ('+', lambda a, b: a + b), 'subtract': ('-', lambda a, b: a - b),
            'multiply': ('*', lambda a, b: a * b)}


def length_problems(grid_lengths=range(1, 13), per_cell=100, seed=2025):
    """Length-extrapolation problems, phrased as the corpus's "{a} + {b} = " (dicts as in problems.jsonl):

    split 'adder': AdderBoard's protocol, its 10 edge cases then 10,000 pairs of operands up to 9999999999 drawn
    with random.Random(2025) (adder.EDGE_CASES, adder.random_pairs); split 'grid': for each op of GRID_OPS and
    each operand length L in grid_lengths, per_cell problems whose two operands have exactly L digits and whose
    answer is below 2^53 (float64 holds it; a cell where none is, such as 9-digit products, is left out), drawn
    with random.Random(f'grid:{seed}')."""
    from adder import EDGE_CASES, random_pairs
    problems = [dict(prompt=f'{a} + {b} = ', answer=str(a + b), split='adder', op='add',
                     digits=max(len(str(a)), len(str(b)))) for a, b in EDGE_CASES + random_pairs()]
    rng = random.Random(f'grid:{seed}')
    for op, (symbol, fn) in GRID_OPS.items():
        for L in grid_lengths:
            lo, hi = (0 if L == 1 else 10 ** (L - 1)), 10 ** L - 1
            if abs(fn(lo, lo)) >= 2 ** 53 and abs(fn(lo, hi)) >= 2 ** 53:
                continue
            cell = []
            while len(cell) < per_cell:
                a, b = rng.randint(lo, hi), rng.randint(lo, hi)
                if abs(fn(a, b)) < 2 ** 53:
                    cell.append(dict(prompt=f'{a} {symbol} {b} = ', answer=str(fn(a, b)), split='grid', op=op,
                                     digits=L))
            problems += cell
    return problems


def chain_problems(n=300, seed=2025, max_digits=4, max_ops=4):
    """n multi-step problems of the test distribution (data/numeric/prepare.make_problem with op 'multi', 2..max_ops
    ops), drawn afresh with random.Random(f'chains:{seed}'): make_problem's dicts, which also say where each op
    node closes (close_positions). Not checked against the training prompts: a chain of three or more random numbers
    repeats one with negligible chance."""
    from data.numeric.prepare import make_problem
    rng = random.Random(f'chains:{seed}')
    return [make_problem(rng, 'test', max_digits, op='multi', max_ops=max_ops) for _ in range(n)]


def _dag_passes(model, encode, problems, texts, device='cpu'):
    """GPT+DAG's DAG over each problem's text (texts(p), fed after a '\n' as in training), in eval mode, without
    gradients: yields (index, problem, the DAG's dict (DAGGPT.dag)); a text longer than block_size is skipped, and
    the model's mode is restored."""
    was_training = model.training
    model.eval()
    try:
        for i, p in enumerate(problems):
            ids = encode('\n' + texts(p))
            if len(ids) > model.config.block_size:
                continue
            idx = torch.tensor([ids], dtype=torch.long, device=device)
            with torch.no_grad():
                _, out, _ = model.dag(idx, model.hidden_states(idx))
            yield i, p, out
    finally:
        model.train(was_training)


def chain_nodes(model, encode, problems, device='cpu'):
    """Where GPT+DAG's programs break, teacher-forced in eval mode: for every op node of every problem (dicts of
    chain_problems), whether the DAG step the auxiliary loss teaches its value computes it at its close char (step
    k of dag_depth D is taught the label row's column MAX_STEPS - D + k: prepare.label_columns, the node of height
    h in a tree of height H at step D - max(H, ALIGN_HEIGHT) + h - 1; in a tree higher than D the lowest nodes have
    no step and count as wrong). The text is fed after a '\n', as in training; a problem longer than block_size is
    skipped. model: a DAGGPT on device; encode: a character codec (char i of the text is token i + 1).

    Returns a list of dicts {'problem': index in problems, 'height', 'step': the step taught the node (None where
    it has none), 'right' (bool), 'held': some step at the close char computes it, 'own_position': the node's
    right child is an op that closes at the same char (a - (b * c): the parent must read an earlier step of its
    own position), 'tokens_only': both operands the taught step chose are token nodes (no scratch node read)}."""
    from data.numeric.prepare import MAX_STEPS, close_positions, label_columns
    from dag_model import computes
    D = model.config.dag_depth
    nodes = []
    for i, p, out in _dag_passes(model, encode, problems, lambda p: p['text'], device):
        closes, T = close_positions(p), out['values'].size(1)
        for (char, h, value), column in zip(closes, label_columns(closes)):
            k, pos = column - (MAX_STEPS - D), char + 1
            steps = computes(out['values'][0, pos], torch.tensor(value, dtype=torch.float64)).tolist()
            nodes.append({'problem': i, 'height': h, 'step': k if k >= 0 else None,
                          'right': k >= 0 and steps[k], 'held': any(steps),
                          'tokens_only': k >= 0 and bool((out['choices'][0, pos, k, :2] < T).all()),
                          'own_position': any(c == char and g < h for c, g, _ in closes)})
    return nodes


def answer_steps(model, encode, problems, device='cpu'):
    """Which DAG steps hold the answer while it is written, teacher-forced in eval mode: for each problem (dicts
    with prompt and answer), a string of dag_depth characters, 'x' where the step computes the answer at every
    position that predicts one of its characters (the prompt's last char to the answer's next-to-last), '.' where
    not; None where prompt and answer pass block_size. (In the chains suite, answers whose last step alone holds
    them were never written right while the readout counted the steps' votes, NOTES.md, twenty-sixth session; with
    the step judge 7 of 30 on seed 1337, and all 30 with the readout told to read the last step: thirty-eighth; with
    the judge told how many numbers each step's program reads, 14 of 31: thirty-ninth.)"""
    from dag_model import computes
    found = [None] * len(problems)
    for i, p, out in _dag_passes(model, encode, problems, lambda p: p['prompt'] + p['answer'], device):
        first = len(encode(p['prompt']))  # the prompt's last token, after the '\n'
        values = out['values'][0, first:first + len(encode(p['answer']))]  # (answer tokens, dag_depth)
        held = computes(values, torch.tensor(float(p['answer']), dtype=torch.float64)).all(0)
        found[i] = ''.join('x' if h else '.' for h in held.tolist())
    return found


def chain_report(problems, answers, nodes, steps=()):
    """The chains suite's figures: {'answers': {str(tree height): T} exact match of answers by the height of the
    problem's tree, 'nodes': {str(height): T} op nodes right at their close char (chain_nodes), 'by_step':
    {'height h, step k': T} the same by the step taught the node, 'held': {str(height): T} nodes that some step of
    their close char computes, 'own_position' and 'earlier': the nodes of height >= 2 whose composite child closes at
    their own char / only before it, 'wrong, tokens only': the wrong nodes of height >= 2 that read no scratch node,
    'answer_steps': {steps: T} exact answers by which steps hold the answer while it is written (steps, a list as
    answer_steps gives, one per problem; none: empty)}, T as in score."""
    heights = [max(h for _, h, _ in p['closes']) for p in problems]
    by_height = {}
    for H, p, a in zip(heights, problems, answers):
        by_height.setdefault(H, []).append(a == p['answer'])
    report = {'answers': {str(H): _tally(by_height[H]) for H in sorted(by_height)}, 'nodes': {}, 'by_step': {},
              'held': {}}
    for h in sorted({n['height'] for n in nodes}):
        report['nodes'][str(h)] = _tally([n['right'] for n in nodes if n['height'] == h])
        report['held'][str(h)] = _tally([n['held'] for n in nodes if n['height'] == h])
    for h, k in sorted({(n['height'], n['step']) for n in nodes if n['step'] is not None}):
        report['by_step'][f'height {h}, step {k}'] = _tally([n['right'] for n in nodes
                                                             if (n['height'], n['step']) == (h, k)])
    parents = [n for n in nodes if n['height'] >= 2]
    report['own_position'] = _tally([n['right'] for n in parents if n['own_position']])
    report['earlier'] = _tally([n['right'] for n in parents if not n['own_position']])
    report['wrong, tokens only'] = _tally([n['tokens_only'] for n in parents if not n['right']])
    by_steps = {}
    for held, p, a in zip(steps, problems, answers):
        if held is not None:
            by_steps.setdefault(held, []).append(a == p['answer'])
    report['answer_steps'] = {held: _tally(by_steps[held]) for held in sorted(by_steps, reverse=True)}
    return report


def format_chains(report):
    """chain_report's dict as a readable text table."""
    lines = []

    def row(label, t):
        lines.append(f"{label:34s} {100 * t['acc']:6.2f}%  {t['correct']:>5d}/{t['n']}")

    def table(title, tallies, label):  # a title line, then a row per entry of tallies, labelled label.format(key)
        lines.append(title)
        for key, t in tallies.items():
            row(label.format(key), t)
    table('-- chains: exact answers by tree height', report['answers'], '  height {}')
    table('-- op nodes right at their close char (teacher-forced), by height', report['nodes'], '  height {}')
    row('  height >= 2, child at its own char', report['own_position'])
    row('  height >= 2, child closed earlier', report['earlier'])
    row('  of the wrong ones: read no scratch', report['wrong, tokens only'])
    table('-- the same by the step taught the node', report['by_step'], '  {}')
    table('-- op nodes that some step of their close char computes', report['held'], '  height {}')
    if report['answer_steps']:
        table("-- exact answers by the steps that hold the answer while it is written ('x': step k does)",
              report['answer_steps'], '  steps {}')
    return '\n'.join(lines)


def format_grid(problems, answers):
    """Exact match of the 'grid' problems as a table: one row per operand length, one column per op."""
    cells = {}
    for p, a in zip(problems, answers):
        if p['split'] == 'grid':
            cells.setdefault((p['digits'], p['op']), []).append(a == p['answer'])
    lines = ['digits ' + ''.join(f'{op:>10s}' for op in GRID_OPS)]
    for L in sorted({L for L, _ in cells}):
        lines.append(f'{L:6d} ' + ''.join(f"{100 * sum(c) / len(c):9.1f}%" if (c := cells.get((L, op))) else
                                          f"{'-':>10s}" for op in GRID_OPS))
    return '\n'.join(lines)


def over_block(problems, encode, block_size):
    """{split: how many of its problems do not fit block_size with their answer} (splits with none left out): the
    tokens of '\n' + prompt + answer number more than block_size, so greedy decoding crops the prompt's start
    before the answer is written out, and an expression cut at its start is right only by chance. block_size caps a
    model's score there: 4-op chains of 5-6 digit operands (the extrap split) often pass 64 characters."""
    counts = {}
    for p in problems:
        if len(encode('\n' + p['prompt'] + p['answer'])) > block_size:
            counts[p['split']] = counts.get(p['split'], 0) + 1
    return counts


def score(problems, answers):
    """Exact-match accuracy of answers (list[str]) to problems (dicts with answer, split, op, digits).

    Returns {'overall': T, 'by_split': {split: T}, 'by_kind': {'<split> one op' or '<split> chain': T},
    'by_op': {op: T}, 'by_digits': {str(digits): T}, 'by_steps': {str(steps): T}} where each T
    is {'acc': float in [0, 1], 'n': int, 'correct': int}; splits and ops in order of first appearance, digits in
    increasing order (as strings, so the dict survives a JSON round trip unchanged). When problems of the
    'phrasing' split name their 'template' (prepare.py's held-out wordings), also 'by_phrasing': {template: T},
    in order of first appearance, a chain's template marked '(chains) ' ("Work out {a}. " is both). Raises
    ValueError when the two lists differ in length."""
    if len(problems) != len(answers):
        raise ValueError(f"score: {len(problems)} problems but {len(answers)} answers")
    hits = [a == p['answer'] for p, a in zip(problems, answers)]
    result = {'overall': _tally(hits)}
    for name, key in (('by_split', 'split'), ('by_kind', 'kind'), ('by_op', 'op'), ('by_digits', 'digits'),
                      ('by_steps', 'steps')):
        groups = {}
        for p, hit in zip(problems, hits):
            steps = p.get('steps', 1)  # a problem without 'steps' is one step
            kind = f"{p['split']} {'chain' if steps > 1 else 'one op'}"
            groups.setdefault(steps if key == 'steps' else kind if key == 'kind' else p[key], []).append(hit)
        order = sorted(groups) if key in ('digits', 'steps') else groups
        result[name] = {str(k): _tally(groups[k]) for k in order}
    phrasings = {}  # the held-out phrasings one by one: which wordings the model answers and which it does not
    for p, hit in zip(problems, hits):
        if p['split'] == 'phrasing' and 'template' in p:  # a wording shared by a single op and chains: apart
            phrasings.setdefault(('(chains) ' if p.get('steps', 1) > 1 else '') + p['template'], []).append(hit)
    if phrasings:
        result['by_phrasing'] = {t: _tally(h) for t, h in phrasings.items()}
    return result


def format_table(scores):
    """The scores dict of `score` as a readable text table: accuracy and correct/total per group."""
    lines = [f"{'':16s} {'acc':>7s}  correct/total"]

    def row(label, t):
        lines.append(f"{label:16s} {100 * t['acc']:6.2f}%  {t['correct']:>7d}/{t['n']}")
    row('overall', scores['overall'])
    for name, label in (('by_split', 'split'), ('by_kind', 'split and kind'), ('by_op', 'op'), ('by_digits', 'digits'),
                        ('by_steps', 'steps')):
        lines.append(f"-- by {label}")
        for k, t in scores[name].items():
            row(f"  {k}", t)
    if 'by_phrasing' in scores:
        lines.append("-- phrasing split by held-out template ({a}, {b}: the operands)")
        for k, t in scores['by_phrasing'].items():
            lines.append(f"  {100 * t['acc']:6.2f}%  {t['correct']:>4d}/{t['n']:<4d} {k!r}")
    return '\n'.join(lines)


if __name__ == '__main__':
    from checkpoint import load_checkpoint, model_from_checkpoint
    from configurator import check_device, check_rules, configure
    from tokenizer import dataset_dir, load_codec

    # -----------------------------------------------------------------------------
    out_dir = 'out'  # evaluates out_dir/ckpt.pt
    suite = 'heldout'  # 'heldout': problems.jsonl; 'length': AdderBoard's 10-digit protocol and a grid of operand
                       # lengths 1..12 for + - * (length_problems), phrased "a + b = ", with the grid printed as a table;
                       # 'chains': 300 fresh multi-step test problems (chain_problems), answers by tree height and,
                       # for GPT+DAG, where its programs break (chain_nodes, teacher-forced)
    problems = ''  # problems.jsonl to score; '' = data/<dataset>/problems.jsonl, dataset from the checkpoint's config
    split = ''  # '' = every split, or 'test' / 'extrap'
    max_problems = 0  # 0 = all; else the first max_problems of each split (deterministic)
    batch_size = 256  # problems decoded together (within one prompt length)
    device = 'cuda' if torch.cuda.is_available() else 'cpu'  # 'cpu', 'cuda', 'cuda:0', ...
    show_errors = 5  # print this many wrong answers (prompt, expected, got)
    tiktoken_file = ''  # a GPT-2 BPE checkpoint with no network: a local gpt2.tiktoken ranks file
    seed = 1337
    # -----------------------------------------------------------------------------
    configure(globals())
    check_device(device, 'float32')
    torch.manual_seed(seed)
    SUITES = {'heldout': lambda: load_problems(problems, split, max_problems), 'length': length_problems,
              'chains': chain_problems}
    check_rules('eval_numeric.py', [
        (suite in SUITES, f"unknown suite {suite!r}: use 'heldout' (problems.jsonl), 'length' (10-digit adds, length "
                          f"grid) or 'chains' (multi-step problems)"),
        (batch_size >= 1, f"--batch_size={batch_size}: decode at least 1 problem at a time"),
        (max_problems >= 0, f"--max_problems={max_problems}: use 0 for every problem, or a number per split"),
        (show_errors >= 0, f"--show_errors={show_errors}: use a number of wrong answers >= 0"),
    ])

    ckpt_path = os.path.join(out_dir, 'ckpt.pt')
    try:
        checkpoint = load_checkpoint(ckpt_path, map_location=device)
        model = model_from_checkpoint(checkpoint)
        dataset = checkpoint.get('config', {}).get('dataset', '')
        data_dir = dataset_dir(dataset) if dataset else ''  # never a path out of data/
    except (FileNotFoundError, ValueError) as e:
        sys.exit(f"eval_numeric.py: {e}")
    model.to(device)
    if not problems:
        if not dataset:
            sys.exit(f"{ckpt_path} does not name its dataset: pass --problems=PATH to a problems.jsonl")
        problems = os.path.join(data_dir, 'problems.jsonl')
    # the vocabulary the model was trained with; a checkpoint with no dataset uses the one next to the problems
    meta_path = os.path.join(data_dir or os.path.dirname(problems), 'meta.pkl')
    try:
        held_out = SUITES[suite]()
        encode, decode = load_codec(meta_path, tiktoken_file)
        for p in held_out:  # a character outside the vocabulary is named here, not deep in the decoding loop
            encode(p['prompt'] + p['answer'])
    except (FileNotFoundError, ValueError, RuntimeError) as e:
        sys.exit(f"eval_numeric.py: {e}")

    t0 = time.time()
    answers = answer_problems(model, encode, decode, held_out, batch_size, device, progress=True,
                              bpe=not os.path.exists(meta_path))
    dt = time.time() - t0
    result = score(held_out, answers)
    result.update(checkpoint=ckpt_path, iter_num=checkpoint.get('iter_num'), n_params=model.get_num_params(),
                  dag_depth=checkpoint['model_args'].get('dag_depth', 0),
                  over_block=over_block(held_out, encode, model.config.block_size))
    prose_path = os.path.join(data_dir, 'val_prose.bin') if data_dir else ''
    if suite == 'heldout' and os.path.isfile(prose_path):  # a mixture of prose and problems: the prose's own loss
        try:
            result['prose_val_loss'] = prose_loss(model, np.fromfile(prose_path, dtype=np.uint16),
                                                  checkpoint['model_args']['block_size'], device=device)
        except ValueError as e:
            sys.exit(f"eval_numeric.py: {prose_path}: {e}")

    print(f"{ckpt_path}: iter {result['iter_num']}, {result['n_params']:,} params, dag_depth {result['dag_depth']}; "
          f"{len(held_out)} problems from {problems if suite == 'heldout' else f'the {suite} suite'} in {dt:.1f}s")
    wrong = [(p, a) for p, a in zip(held_out, answers) if a != p['answer']]
    for p, a in wrong[:show_errors]:
        print(f"wrong ({p['split']}, {p['op']}): {p['prompt']!r} expected {p['answer']!r} got {a!r}")
    print(format_table(result))
    if result['over_block']:
        print(f"longer than block_size={model.config.block_size} with their answer (the prompt's start is cropped "
              f"while answering): " + ', '.join(f"{n} {split}" for split, n in result['over_block'].items()))
    if 'prose_val_loss' in result:
        print(f"prose val loss: {result['prose_val_loss']:.4f} ({prose_path}, every window of block_size tokens)")
    if suite == 'length':
        print('-- exact match by operand length (both operands), grid')
        print(format_grid(held_out, answers))
    if suite == 'chains':
        bpe = not os.path.exists(meta_path)  # close chars index characters: the node check needs a character codec
        dag = hasattr(model, 'dag') and not bpe
        nodes = chain_nodes(model, encode, held_out, device) if dag else []
        if not nodes:
            print('(no op nodes checked: the check needs a GPT+DAG checkpoint with a character vocabulary)')
        steps = answer_steps(model, encode, held_out, device) if dag else []
        result['chains'] = chain_report(held_out, answers, nodes, steps)
        print(format_chains(result['chains']))
    print(json.dumps(result))
