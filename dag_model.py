"""
GPT+DAG: a GPT whose hidden states drive a small differentiable DAG of arithmetic, run at every position.

Read top to bottom in the order data flows (SPEC.md names the parts):

  h (B, T, n_embd)      the plain GPT up to its final layer norm (model.GPT.hidden_states): the token nodes'
                        embeddings
  value extractor       h -> one value per token (B, T), float64: a learned classifier says what each token is
                        (digits that continue a number or start a new one, a thousands separator, a decimal
                        point, a 'k' suffix right after digits, a minus sign, or not part of a number), the
                        vocabulary says which digits a token holds ("7", GPT-2's " 345"), and an exact linear
                        recurrence turns both into the number that ends at that token ("12,345" -> 12345,
                        "12" " 345" -> 12345)
  context block         a Block: h -> the context (B, T, n_embd) the DAG's operand queries and op heads read
  DAG controller        dag_depth steps; at position t step k attends over the nodes of tokens <= t and the
                        scratch nodes of steps < k at positions <= t (its own, and those of the positions
                        right after a number, where "(3 + 4)" is computed at ")"), picks two operands (a query
                        per step) and one of the nine ops (a head per step, plus the op as read where the right
                        operand starts: ' * 5'), and
                        appends a new node (a float64 value and an embedding). Inside a number the DAG
                        runs as the position before it (number_views): the number being written is its
                        output, so every digit of an answer comes from the values computed before the first
  readout               every scratch value -> bounded features -> embedding (the scalar-to-embedding
                        projection, a weight matrix per step), each step's weighted by how far a small MLP
                        trusts it (from the node, the context, which steps agree, how many of the numbers
                        each step's program reads and whether its value begins with the number written so
                        far), plus the nodes' mean embedding: dag_sem
  gate                  h + sigmoid(gate(h)) * dag_sem -> lm_head -> logits
  token write           with dag_write_tokens (BPE): + a learned bias on the logit of the token that continues
                        each step's value as the tokenizer chunks it ("48324" -> " 483", "24")

What this design gets right where its public ancestor did not (SPEC.md, "What a better DAG must get right"):
- Per position and causal, vectorised over T: position t only sees nodes of tokens <= t and scratch nodes of
  positions <= t. Step k runs at every position at once and reads steps < k anywhere before, so an expression is
  computed where its parts close: 3 + 4 at the ")" of "(3 + 4) * 5" (step 0), then 7 * 5 after the 5 (step 1),
  each a single op on the last numbers and nodes read, not a parse of the whole expression at the answer.
- Choices are hard in the forward pass, so a program is real arithmetic (3 + 4 is 7, not a blend of nine ops),
  and straight-through in the backward pass: the gradient of a choice is that of the expected bounded features
  of the exact results of the candidates (all nine ops, and the top dag_topk operands of each side), taken where
  the other choices are the hard ones. No
  gradient ever flows through an op's value, so no op can produce a NaN gradient; the executor runs in float64
  outside autocast with guarded denominators, logarithms of magnitudes floored at TINY and results clamped to
  +-MAX_VALUE, so no value is NaN or inf whatever the input.
- Bounded readout: a value enters the embeddings only as sign, squashed log-magnitude, Fourier features
  cos/sin(2 pi v / 10^i) (its decimal digits, after xVal, Golkar et al. 2023, and FoNE, Zhou et al. 2025), and the
  symbol its canonical decimal string has at the current number position (an Abacus-style index, McLeish et al.
  2024: how many characters of the number being written precede this token), so that writing the answer digit
  by digit is a lookup, also for numbers longer than any seen in training.
- Exact end to end: the extractor reads numbers from its hard choices, a straight-through estimator's forward
  value is the hard choice bit for bit (hard + (soft - soft.detach())), and nothing soft ever reaches a value,
  so "12,345" is 12345.0, 6 + 9 is 15.0 and renders "15", in train and eval mode and under autocast.
- An optional auxiliary loss teaches the DAG quickly where the numbers are known (dag_value_loss; the numeric
  corpus writes the labels): cross-entropy on the role of each character in a number (the role sequence fixes
  every value exactly), and, where the text states a result, the likelihood of each step's programs (op and
  operands among its candidates) that compute that step's sub-expression: a multi-step expression such as
  (3 + 4) * 5 is taught as a program, 3 + 4 at the second-to-last step and (...) * 5 at the last, the node that
  should hold 7 read as 7 in those programs whatever it holds yet (DAGController.programs); and the op named
  next to each right operand ("*" at the 9 of "2664 / (148 * 9)"), where a step reads its op (the anchor). It is
  off for plain text.
- Every parameter gets a gradient from the language-model loss alone, so DDP needs no find_unused_parameters.
- Optionally cheaper training (dag_train_positions < 1): most of the DAG's cost is per position, and the
  positions that need it are few (where a number has just been read, where a result is written), so a training
  step can run the DAG at those and a random share of the rest only (DAGGPT.train_positions); evaluation and
  generation run every position.

Tried and left out (the main job, 750 iterations, seed 1337; NOTES.md): a gated write-back of the last step's next
symbol straight into the logits (after Dietz & Klakow 2025): test 83.1% / extrap 79.5% against 85.4% / 80.1%
without it, and 100% against 99.8% on 510 10-digit additions; an MLP of (context, step, previous node) in place of
context + step_emb[k] for each step's choices: test 81.7%, multi-step 7.3% against 8.0%, and ~15% slower. (Nor
did a corpus with a third of its problems multi-step help: 8.0%.) Until issue 8's later work one query and one
op head served every step, the step told only by an embedding added to the context: that shifts each step's
logits by a constant, so the steps of a position all ran the same program (the last two steps of a chain chose
the same op in 72 of 74 two-step test chains). A query and an op head per step alone: test 82.3% against 86.2%,
one op 90.8% against 94.7% (the steps before a single op, never taught, fed noise to the readout); with those
steps taught the first sub-expression's value too (program_loss): 85.9%, 94.8%; with the op read at the right
operand as well: 89.4%, 98.5%, extrap 87.6% against 82.4%. Chains stay low (7%): the last step still repeats
the inner step's operands and op in most chains.
Cut for cost (issue 9; 3 seeds, 750 iterations, NOTES.md): a second context Block (one for the operand queries,
one for the op heads) and the readout's self-attention across a position's nodes (its Linear ran on dag_depth x
the tokens). Without them test / extrap / phrasing are 91.0 / 90.8 / 55.8% against 91.2 / 89.6 / 55.9%, with
1.58M parameters instead of 1.81M and a training step 17% shorter (cached decoding as fast as before). Then the
node-embed Block between the trunk and the extractor (the DAG reads the trunk's h itself): 91.0 / 90.0 / 57.6%,
1.40M parameters, the step 3.1x the GPT's -> 2.85x. Then the readout's Block (dag_sem is now per position): 1.20M
parameters, the step 3.0x -> 2.6x (bench.py; 3.1x -> 2.8x with the labels), the same accuracy over 6 seeds of the
main job (at 1,500 iterations of README's chains recipe the Block was worth ~4 points of held-out phrasings, 2
seeds; NOTES.md, tenth session). The context Block stays: without it single ops fell on all 4 seeds run; and
neither half can go (thirty-third session): without its MLP the step is 9% shorter and test chains fell on all 4 seeds
run (-4.3 points), without its attention 5% shorter and no figure rose on either of 2 seeds. Not
cheaper on 2 CPU cores (NOTES.md, ninth session): scoring only the nodes the mask lets through (the gathers cost
what the smaller tensors save); and lower on the seeds run: the readout's symbol of the chosen value only (no
candidates' symbols), argmax choices in training. Teacher forcing (scratch nodes holding their labels in the
forward pass of training) taught the steps to copy what holds a label in training and not at evaluation (two
variants, two seeds each: held-out phrasings 5-23 points lower): the labels reach only the programs the loss scores.

Tokenisation (issue 10): one code path for a character vocabulary (the numeric corpus, shakespeare_char) and
GPT-2 BPE. Reading: the classifier decides what a token is in context ("12" " 345" is one number or two; " 66" in
"route 66" is no quantity), tables built once from the tokens' text (number_tables, DAGGPT.set_vocabulary) say which
digits it holds, and the recurrence puts chunks together exactly (m <- 10^len(chunk) m + chunk). Writing: in a
character vocabulary the readout's symbol names the next character; in BPE a digit token holds 1-16 digits, so the
DAG names the next *token*: its value's canonical string, from the characters already written on, split as GPT-2's
BPE splits it (first_bpe_token: tiktoken's merge loop on tensors, tested against tiktoken), and a learned bias
raises that token's logit (DAGGPT.write_tokens; before the answer's first token both " 483" and "483" are named,
and the language model knows whether a space comes). A logit path needs no input per vocabulary token and is exact
for chunkings never seen in training; a symbol the readout embeds would need an embedding per digit token.
Cached generation (DAGCache) keeps the trunk's and the context Block's keys and values and every token's node, so a
new token runs one position.
"""

import math
import re
from dataclasses import dataclass

import torch
import torch.nn as nn
from torch.nn import functional as F

from model import GPT, Block, GPTConfig, KVCache

OPS = ('add', 'subtract', 'multiply', 'divide', 'log', 'pow', 'max', 'min', 'identity')
NO_OP = 255  # the ops labels' 'no op named here' (data/numeric's {split}_ops.bin, np.uint8)
# a dataset's auxiliary labels, {split}_<file> beside its {split}.bin (data/numeric/prepare.py writes them, train.py
# reads them: see DAGGPT.dag for what each holds)
LABEL_FILES = {'roles': 'roles.bin', 'steps_of': 'steps_of.bin', 'steps': 'steps.npy', 'ops': 'ops.bin'}
MAX_VALUE = 2.0 ** 53  # every DAG value is clamped to [-MAX_VALUE, MAX_VALUE]: float64 holds every integer up to here
TINY = 1e-12  # floor of |x| under a logarithm and of a denominator's magnitude

# What the value extractor can say a token is. A token made of digits (optionally after one space, as GPT-2's " 345")
# is 'digits' (it continues the number before it: "12" " 345" -> 12345, "-" "7" -> -7), 'new_digits' (it starts a
# number) or 'other' ("route 66" is no quantity); any other token is 'other', 'sep' (a thousands separator, or the
# space in "12 345"), 'point', 'k' (x 1000) or 'minus' (the sign that starts a negative number). Which digits a token
# holds comes from the vocabulary (number_tables), never from the classifier, so the arithmetic of putting chunks
# together is exact whatever the tokenizer's chunking; the classifier only decides what a token is in context.
CLASSES = ('other', 'digits', 'new_digits', 'sep', 'point', 'k', 'minus')
DIGIT_TOKEN_CLASSES = ('other', 'digits', 'new_digits')  # the classes a token of digits may take; others the rest
DIGIT_TOKEN = re.compile(r' ?[0-9]+')  # a token of digits (fullmatch): "7", "345", " 10000"
MAX_TOKEN_DIGITS = 16  # longer digit tokens are read as 'other' (GPT-2's longest has 16)

FOURIER_PERIODS = tuple(10.0 ** i for i in range(-2, 15))  # 0.01 ... 1e14: the digits from hundredths up
N_VALUE_FEATURES = 2 + 2 * len(FOURIER_PERIODS)
SYMBOLS = tuple('0123456789') + ('-', '.', 'end')  # what a position of a canonical decimal string can hold
MAX_FRAC_DIGITS = 9  # decimals a rendered value keeps (the corpus writes at most this many)
SIGNIFICANT_DIGITS = 15  # digits a rendered value keeps: every 15-digit decimal survives a float64 round trip
POW10 = [10 ** i for i in range(19)]
MAX_RANK = 16  # recency ranks the controller tells apart (numbers back from a position); older ones share one
LEAF_BITS = 63  # token positions per int64 word of a node's leaf set (the sign bit unused)
BYTE_POPCOUNT = torch.tensor([bin(i).count('1') for i in range(256)])  # set bits of each byte value
MAX_COVER_GAP = 3  # how many fewer numbers than its position's widest step a node reads, as the judge tells apart


@dataclass
class DAGGPTConfig(GPTConfig):
    dag_depth: int = 4  # DAG steps (new nodes) per position; 0 would be a plain GPT (use GPT)
    dag_topk: int = 4  # operand candidates per side whose results the backward pass weighs
    dag_key_dim: int = 0  # dimensions of the operand queries and node keys; 0: n_embd (32 instead of the main job's
    # 128: a training step 16% shorter, chains 2.5 and held-out phrasings 5 points lower over 6 seeds; NOTES.md)
    dag_window: int = 24  # longest number, in tokens, the value extractor reads
    dag_value_loss: float = 0.1  # weight of the auxiliary loss when forward() is given roles / steps
    dag_write_tokens: bool = False  # a logit path for each step's next token (BPE: digit tokens hold several digits)
    dag_train_positions: float = 1.0  # share of the positions a training step runs the DAG at (train_positions)


# -----------------------------------------------------------------------------
# numerics: the nine ops, the features of a value, and its canonical decimal string

def safe_denominator(x):
    """x with magnitudes below TINY pushed to +-TINY, keeping the sign (0 becomes +TINY)."""
    return torch.where(x.abs() < TINY, torch.where(x < 0, -TINY, TINY), x)


def dag_ops(a, b):
    """All nine ops on float64 operands a, b (broadcastable) -> (..., 9), in the order of OPS; never NaN or inf.

    log(a, b) is the logarithm of |a| in base |b|; pow(a, b) is |a|^b, negative for a < 0 and an odd integer b.
    add, subtract, multiply, max, min and identity are exact wherever float64 is (|result| < 2^53)."""
    a = a.clamp(-MAX_VALUE, MAX_VALUE)
    b = b.clamp(-MAX_VALUE, MAX_VALUE)
    log_a = torch.log(a.abs().clamp(min=TINY))
    log_b = torch.log(b.abs().clamp(min=TINY))
    log_ratio = log_a / safe_denominator(log_b)
    # pow in linear space where it cannot overflow (exact for integer powers), else saturated
    fits = b * log_a < math.log(MAX_VALUE)
    base = torch.where(b < 0, a.abs().clamp(min=TINY), a.abs())
    magnitude = torch.where(fits, torch.pow(base, torch.where(fits, b, torch.zeros_like(b))), MAX_VALUE)
    odd = (b == torch.round(b)) & (torch.remainder(torch.round(b), 2) == 1)
    power = torch.where((a < 0) & odd, -magnitude, magnitude)
    a, b = torch.broadcast_tensors(a, b)
    out = torch.stack([a + b, a - b, a * b, a / safe_denominator(b), log_ratio.expand_as(a), power.expand_as(a),
                       torch.maximum(a, b), torch.minimum(a, b), a])  # ops first: contiguous writes, 1.4x faster
    return torch.nan_to_num_(out, nan=0.0).clamp_(-MAX_VALUE, MAX_VALUE).movedim(0, -1)


def value_features(v):
    """Bounded features of float64 values v (...) -> float32 (..., N_VALUE_FEATURES): sign, log10(1+|v|)/16,
    and cos, sin of 2 pi v / p for p in FOURIER_PERIODS (v - p floor(v / p) in float64, then scaled: congruent to
    v mod p, exact for integers v and p below 2^53, and 7x faster than torch.remainder's fmod)."""
    v = v.clamp(-MAX_VALUE, MAX_VALUE)
    periods = torch.tensor(FOURIER_PERIODS, dtype=torch.float64, device=v.device)
    x = v[..., None]
    angle = (torch.addcmul(x, periods, torch.floor(x * (1 / periods)), value=-1) * (2 * math.pi / periods)).float()
    return torch.cat([torch.sign(v).float()[..., None], (torch.log10(1 + v.abs()) / 16).float()[..., None],
                      torch.cos(angle), torch.sin(angle)], dim=-1)


def canonical_parts(v):
    """The parts of the canonical decimal string of float64 v (...) (render_symbol's), each long (...): neg (1 where
    it starts with '-'), integer (the integer part), fraction (the first frac_room fractional digits, trailing zeros
    too, as one integer), frac_room and n_int (the integer part's digits, 1 for 0). v is rounded to
    SIGNIFICANT_DIGITS significant digits and at most MAX_FRAC_DIGITS decimals."""
    a = v.abs().clamp(max=MAX_VALUE)
    pow10 = torch.tensor(POW10, device=v.device)
    # the decimal exponent of a: floor(log10 a), by comparisons (exact where a is the double of a power of 10)
    # (a binary search over the powers of 10, exact comparisons: the same as counting those <= a, and cheaper)
    powers = torch.tensor([10.0 ** k for k in range(-MAX_FRAC_DIGITS + 1, 16)], dtype=torch.float64, device=v.device)
    exponent = torch.searchsorted(powers, a.contiguous(), right=True) - MAX_FRAC_DIGITS
    frac_room = (SIGNIFICANT_DIGITS - 1 - exponent).clamp(0, MAX_FRAC_DIGITS)
    n = torch.round(a * pow10[frac_room].double()).long()  # all the digits, as one integer (< 10^16)
    integer, fraction = n // pow10[frac_room], n % pow10[frac_room]  # fraction: frac_room digits, trailing zeros too
    # digits of the integer part (1 for 0); the bounds a tensor of their own: PyTorch 2.11's inductor (CUDA) could
    # not lower searchsorted on a slice of pow10 (NotImplementedError: SliceView), so GPT+DAG did not compile
    n_int = 1 + torch.searchsorted(torch.tensor(POW10[1:16], device=v.device), integer, right=True)
    neg = ((v < 0) & (n > 0)).long()
    return neg, integer, fraction, frac_room, n_int


def render_symbol(v, j):
    """The symbol at index j of the canonical decimal string of v -> long (...) indexing SYMBOLS.

    v float64 (...), j long (..., broadcastable). The canonical string is the numeric corpus's answer format:
    an optional '-', the integer digits, and a '.' with the fractional digits, no trailing zeros, no '-0'.
    Index len(string) and beyond is 'end'. v is rounded to SIGNIFICANT_DIGITS significant digits and at most
    MAX_FRAC_DIGITS decimals: every decimal with that many digits is recovered exactly from the float64 nearest
    to it (0.1 + 0.2 renders "0.3"), as Python's repr does."""
    neg, integer, fraction, frac_room, n_int = canonical_parts(v)
    pow10 = torch.tensor(POW10, device=v.device)
    p = j - neg  # index after the sign
    int_digit = (integer // pow10[(n_int - 1 - p).clamp(0, 18)]) % 10
    q = p - n_int - 1  # index into the fractional digits
    rest = (frac_room - q).clamp(0, 18)  # fractional digits from index q on
    frac_digit = (fraction // pow10[(rest - 1).clamp(0, 18)]) % 10
    # a fractional digit is written while a nonzero one is left from it on (no trailing zeros)
    in_fraction = (q >= 0) & (q < frac_room) & (fraction % pow10[rest] != 0)
    end = torch.full_like(int_digit, SYMBOLS.index('end'))
    out = torch.where(in_fraction, frac_digit, end)
    out = torch.where((p == n_int) & (fraction > 0), SYMBOLS.index('.'), out)
    out = torch.where((p >= 0) & (p < n_int), int_digit, out)
    return torch.where((neg == 1) & (j == 0), SYMBOLS.index('-'), out)


def canonical_prefix(v, n):
    """The number its first n characters spell, of the canonical decimal string of float64 v (...) (render_symbol's),
    n long (..., broadcastable) -> float64 (...), as read_numbers reads a number written so far: "-35" of "-357" is
    -35, "3." of "3.25" is 3, "3.2" is 3.2 (the same division, so the same bits). Where n runs past the integer
    digits of a value with no fraction the whole value is returned (the string ends there; as past the last
    fractional digit, where "3.50" of 3.5 reads 3.5): a caller that compares it with a longer number written is
    told they agree only in those rare cases."""
    neg, integer, fraction, frac_room, n_int = canonical_parts(v)
    pow10 = torch.tensor(POW10, device=v.device)
    p = n - neg  # characters after the sign
    q = torch.minimum((p - n_int - 1).clamp(min=0), frac_room)  # fractional digits among them
    mantissa = integer // pow10[(n_int - p).clamp(0, 18)] * pow10[q] + fraction // pow10[frac_room - q]
    return (1 - 2 * neg) * mantissa.double() / pow10[q].double()


def gumbel_noise(shape, device):
    """Standard Gumbel samples -log(-log u) of the given shape, float32, u uniform clamped to [1e-9, 1 - 1e-9]
    (so |g| < 21). In place after one draw: the same bits as the out-of-place formula, fewer passes."""
    return torch.rand(shape, device=device).clamp_(1e-9, 1 - 1e-9).log_().neg_().log_()


def straight_through(hard, soft):
    """The forward value of hard, bit for bit, with the gradient of soft (same shape, float).

    Written hard + (soft - soft.detach()): the bracket is exactly 0 in the forward pass. The tempting
    hard + soft - soft.detach() rounds twice, and in float32 its "1" is 1 +- 6e-8 in about a fifth of the rows,
    which made "6 + 9" read as 14.9999999 (issue 8)."""
    return hard + (soft - soft.detach())


def eager_on_cpu(x):
    """Whether tensor x is on the CPU outside torch.compile: only there do the shortcuts whose size depends on the
    data (a boolean index, nonzero) pay. On a GPU they make the host wait; under torch.compile they break the graph
    (without the breaks bench.py's compiled step ratio to the GPT went 1.87x -> 1.73-1.76x on the CPU, NOTES.md)."""
    return x.device.type == 'cpu' and not torch.compiler.is_compiling()


def one_hot_argmax(logits):
    """(..., K) -> (the hard one-hot of the argmax (..., K) float32, the softmax (..., K) float32)."""
    soft = F.softmax(logits.float(), dim=-1)
    return F.one_hot(soft.argmax(-1), soft.size(-1)).to(soft.dtype), soft


def linear_scan(a, b, window):
    """x_t = a_t * x_{t-1} + b_t along dim 1 with x_{-1} = 0, summing only the last `window` terms.

    a >= 0, b (B, T) -> x (B, T), same dtype; vectorised over T as a windowed sum of suffix products. A suffix
    product that overflows is taken as 1e200 (the sum then saturates, and callers clamp), and one that meets a 0
    after overflowing is 0, as it is exactly: never NaN."""
    W = min(window, a.size(1))
    A = F.pad(a, (W - 1, 0)).unfold(1, W, 1)  # (B, T, W): a_{t-W+1} ... a_t
    Bw = F.pad(b, (W - 1, 0)).unfold(1, W, 1)
    # the weight of b_s in x_t is the product of a_r for s < r <= t: a reversed cumulative product, shifted
    suffix = torch.cumprod(torch.flip(A, [-1]), dim=-1)
    weights = torch.flip(torch.cat([torch.ones_like(suffix[..., :1]), suffix[..., :-1]], dim=-1), [-1])
    return (Bw * torch.nan_to_num(weights, nan=0.0, posinf=1e200)).sum(-1)


# -----------------------------------------------------------------------------
# the vocabulary's numbers: which digits each token holds, and GPT-2's BPE of a run of digits

TABLES = ('digit_value', 'digit_len', 'is_digits', 'bpe_keys', 'bpe_ids', 'sign_ids')  # number_tables' keys
KEY_SHIFT = 2 ** 54  # a digit string's key: its value + KEY_SHIFT * (its length + 32 if it starts with a space)


def digit_key(value, length, space):
    """The lookup key (int64) of a digit string: value (< 10^16) int64, length (digits) int64, space bool (...)."""
    return value + KEY_SHIFT * (length + 32 * space.long())


def number_tables(tokens, vocab_size):
    """What the DAG knows of a vocabulary, from each token's text (tokens: list of str by id, at most vocab_size;
    ids past the list hold no digits) -> a dict of tensors:
    'digit_value' (V,) float64 and 'digit_len' (V,) long: the integer a token of digits spells and its number of
    digits (0 for any other token); 'is_digits' (V,) bool; 'bpe_keys' (V,) int64 sorted and 'bpe_ids' (V,) long:
    digit_key of every token of digits, or of a lone space (with the int64 maximum for the rest), and its id;
    'sign_ids' (3,) long: the ids of '-', ' -' and '.' (-1 where the vocabulary lacks one).

    Built once from the tokenizer (a character vocabulary's itos, or GPT-2's tokens decoded one by one). The ids
    double as BPE merge ranks: in GPT-2 (tiktoken) a token's id is its rank."""
    if len(tokens) > vocab_size:
        raise ValueError(f"{len(tokens)} tokens do not fit vocab_size={vocab_size}")
    value, length, key = torch.zeros(vocab_size, dtype=torch.float64), torch.zeros(vocab_size, dtype=torch.long), \
        torch.full((vocab_size,), torch.iinfo(torch.long).max)
    for i, text in enumerate(tokens):
        digits = text.lstrip(' ')
        if DIGIT_TOKEN.fullmatch(text) and len(digits) <= MAX_TOKEN_DIGITS:
            value[i], length[i] = int(digits), len(digits)
        if length[i] > 0 or text == ' ':
            key[i] = digit_key(int(digits or 0), len(digits), torch.tensor(text.startswith(' ')))
    order = torch.argsort(key)
    sign_ids = torch.tensor([tokens.index(t) if t in tokens else -1 for t in ('-', ' -', '.')])
    return {'digit_value': value, 'digit_len': length, 'is_digits': length > 0, 'bpe_keys': key[order],
            'bpe_ids': order, 'sign_ids': sign_ids}


def has_multi_digit_tokens(tokens):
    """Whether a vocabulary (list of str) has tokens of several digits (GPT-2's "123"): then GPT+DAG needs
    dag_write_tokens to write an answer, since the character symbols of the readout name one digit at a time."""
    return any(DIGIT_TOKEN.fullmatch(t) and len(t.strip()) > 1 for t in tokens)


def first_bpe_token(digits, n, space, keys, ids):
    """The first token BPE makes of a run of digits: digits (N, L) long (0-9, the first n (N,) valid), space (N,)
    bool (the run follows a space in the same pre-token, as GPT-2's " 12345") -> token id (N,) long (-1 for an
    empty run). keys, ids: number_tables' 'bpe_keys' and 'bpe_ids'.

    BPE as tiktoken runs it (byte_pair_merge): start from single characters and merge, one at a time, the
    adjacent pair whose concatenation is the token of lowest rank (the leftmost on a tie) until no pair is a
    token. Vectorised over N; at most L merges. With a character vocabulary nothing merges."""
    N, L = digits.shape
    P = L + 1  # slot 0 is the space, slots 1..L the digits
    slot = torch.arange(P, device=digits.device)
    end = (n + 1)[:, None]  # (N, 1): one past the last slot
    first = torch.where(space, 0, 1)[:, None]
    starts = (slot >= first) & (slot < end)  # (N, P): where a part begins
    prefix = torch.zeros(N, P, dtype=torch.long, device=digits.device)  # prefix[:, i] = int(digits[:, :i])
    for i in range(L):
        prefix[:, i + 1] = prefix[:, i] * 10 + digits[:, i]
    pow10 = torch.tensor(POW10, device=digits.device)

    def part_end(starts):  # (N, P): the slot where the part starting at each slot ends (the next start, or end)
        idx = torch.where(starts, slot, P)
        after = torch.flip(torch.cummin(torch.flip(idx, [1]), 1).values, [1])  # min of idx[s:]
        return torch.minimum(torch.cat([after[:, 1:], torch.full_like(after[:, :1], P)], 1), end)

    def lookup(a, c):  # token id of the span of slots [a, c) (-1 if none), a, c (N, P)
        lo = a.clamp(min=1)
        length = (c - lo).clamp(0, MAX_TOKEN_DIGITS)
        value = prefix.gather(1, (c - 1).clamp(0, L)) - prefix.gather(1, (lo - 1).clamp(0, L)) * pow10[length]
        k = digit_key(value, length, (a == 0) & space[:, None])
        pos = torch.searchsorted(keys, k).clamp(max=keys.numel() - 1)
        return torch.where(keys[pos] == k, ids[pos], -1)

    big = torch.iinfo(torch.long).max
    for _ in range(L):
        b = part_end(starts)  # the next part's start
        c = torch.minimum(b.gather(1, b.clamp(max=P - 1)), end)  # and its end
        merged = torch.where(starts & (b < end), lookup(slot.expand(N, P), c), -1)
        rank, a = torch.where(merged >= 0, merged, big).min(1)
        if (rank == big).all():
            break
        b_a = b.gather(1, a[:, None]).clamp(max=P - 1)  # the start the best merge removes (kept where none merges)
        starts = starts.scatter(1, b_a, starts.gather(1, b_a) & (rank == big)[:, None])
    first_end = part_end(starts).gather(1, first)
    token = lookup(first, first_end)[:, 0]
    return torch.where(n > 0, token, -1)


CANONICAL_CHARS = 20  # the longest canonical string: '-', 16 integer digits, '.', and the rest of 15 significant


def next_tokens(values, written, tables):
    """The token that starts the rest of each value's canonical decimal string, after written (B, T) long chars of
    it: values (B, T, D) float64 -> ids (B, T, D, 2) long, -1 where none ('end', or the second column where
    written > 0). Column 0 writes the rest with no space before it; column 1, for written == 0 only, with one
    (" 15" after "= " in GPT-2, where the space joins the number's first token: "-" becomes " -").

    The canonical string is render_symbol's; a run of digits is split as the tokenizer's BPE splits it
    (first_bpe_token): "12345" is written "123" then "45", and after "123" the next token is "45"."""
    B, T, D = values.shape
    j = written[:, :, None, None] + torch.arange(CANONICAL_CHARS, device=values.device)  # (B, T, 1, W)
    sym = render_symbol(values[..., None], j).flatten(0, 2)  # (N, W)
    run = torch.cumprod((sym < 10).long(), 1).sum(1)  # digits from the first position on
    digits = sym.clamp(max=9)
    ids = []
    for space in (False, True):
        flag = torch.full_like(run, space, dtype=torch.bool)
        digit_token = first_bpe_token(digits, run, flag, tables['bpe_keys'], tables['bpe_ids'])
        sign = tables['sign_ids'][1 if space else 0]
        token = torch.where(run > 0, digit_token, torch.where(sym[:, 0] == SYMBOLS.index('-'), sign, -1))
        if not space:
            token = torch.where(sym[:, 0] == SYMBOLS.index('.'), tables['sign_ids'][2], token)
        ids.append(token)
    ids = torch.stack(ids, -1).view(B, T, D, 2)
    return torch.where((written[:, :, None, None] > 0) & (torch.arange(2, device=values.device) == 1), -1, ids)


# -----------------------------------------------------------------------------
# the DAG's modules, in the order data flows through them

def read_numbers(y, digit_value, digit_len, window):
    """Class choices y (B, T, |CLASSES|) float64, hard one-hots (values are exact only for exact ones), and each
    token's digits from the vocabulary (number_tables): digit_value (B, T) float64, digit_len (B, T) float64 ->
    (the value of the number ending at each token (B, T) float64, its length so far in tokens (B, T) float64, and
    in characters of its text (B, T) float64 (a digit, '.', ',', 'k' or '-' one each), 0 outside numbers).

    An exact linear recurrence per quantity: the mantissa (digits: m_t = 10^len m_{t-1} + digits), the minus sign,
    the decimal point and the fractional digits after it, the 'k' suffixes; a value is sign * mantissa *
    10^(3 k - fractional digits). 'new_digits' and 'minus' start a number, 'digits', 'sep', 'point' and 'k'
    continue it, 'other' ends it."""
    c = dict(zip(CLASSES, y.unbind(-1)))
    pow10 = torch.tensor([10.0 ** i for i in range(23)], dtype=y.dtype, device=y.device)  # exact to 10^22
    scale = lambda n: pow10[n.round().long().clamp(0, 22)]  # noqa: E731
    continues = c['digits'] + c['sep'] + c['point'] + c['k']
    has_digits = c['digits'] + c['new_digits']
    # six recurrences in one scan (stacked along the batch), then the one that reads in_fraction
    a = torch.stack([c['digits'] * scale(digit_len) + c['sep'] + c['point'] + c['k']] + [continues] * 5)
    b = torch.stack([has_digits * digit_value, c['minus'], c['point'], c['k'], 1 - c['other'],
                     has_digits * digit_len + c['sep'] + c['point'] + c['k'] + c['minus']])
    mantissa, negative, in_fraction, thousands, tokens, chars = \
        linear_scan(a.flatten(0, 1), b.flatten(0, 1), window).view(b.shape).unbind(0)
    negative, in_fraction = negative.clamp(0, 1), in_fraction.clamp(0, 1)
    frac_digits = linear_scan(continues, has_digits * digit_len * in_fraction, window)
    # mantissa * 1000^k / 10^frac: the integer product is exact, and one division rounds once, so "12.25" is
    # the float64 nearest 12.25, as Python's float("12.25") (10.0 ** -2 would round twice)
    value = (1 - 2 * negative) * mantissa * scale(3 * thousands) / scale(frac_digits)
    return value.clamp(-MAX_VALUE, MAX_VALUE), tokens, chars


NOT_A_NUMBER = -1e9  # operand logit bias of a token that ends no number: picked only before any number is seen
FUTURE = -2e9  # operand logit bias of a future token: below NOT_A_NUMBER, so never picked
FORCE = 1e4  # logit added to a forced choice (taken from a masked one): exp(-1e4) is 0 in float32
OPS_LABEL_WEIGHT = 0.25  # of the ops labels' cross-entropy in the auxiliary loss: at 1 the single ops on long
# operands paid for the chains' gain (extrap one op 99.2 -> 98.3%, 6 seeds; NOTES.md, thirteenth session)
K_REACH = 2  # a 'k' suffix follows a token of digits within this many tokens ("5k", "3 k"). Without the rule the
# extractor read the k of "Work", "Take" or "make" (words the numeric corpus never shows) as a number 0 in 36% of the
# held-out phrasings' prompts, which shifted every recency rank (NOTES.md, twenty-eighth session)
N_CHOICES = 3  # distributions a step's straight-through features average: operand a, operand b, op


class ValueExtractor(nn.Module):
    """Node embeddings e (B, T, n_embd) and each token's digits from the vocabulary (digit_value (B, T) float64,
    digit_len (B, T) long; see number_tables) -> the value of the number ending at each token (B, T) float64,
    its length so far in tokens (B, T) long and in characters (B, T) long (0 for a token outside numbers), the
    class choices (B, T, |CLASSES|) (straight-through one-hots: their gradient reaches the classifier through the
    controller's class embedding and the auxiliary role loss), their logits, and the logits (B, T, 10) of a second
    head that names a token's last digit (for the auxiliary loss only: the classes no longer say which digit a
    token is, and without this signal the main job lost ~9 points, NOTES.md). A token of digits can only be
    'other', 'digits' or 'new_digits', any other token none of these two, and 'k' only within K_REACH tokens after
    a token of digits (masked logits: `near_digits`). Values are clamped to +-MAX_VALUE; tokens older than `window`
    are lost."""

    def __init__(self, config):
        super().__init__()
        self.classify = nn.Linear(config.n_embd, len(CLASSES) + 10)  # the classes, then the last digit
        self.window = config.dag_window
        allowed = torch.tensor([[c == 'other' or c not in DIGIT_TOKEN_CLASSES for c in CLASSES],  # other tokens
                                [c in DIGIT_TOKEN_CLASSES for c in CLASSES],  # tokens of digits
                                [c == 'other' or c not in DIGIT_TOKEN_CLASSES + ('k',) for c in CLASSES]])  # other
        # tokens with no digits within K_REACH tokens before them
        self.register_buffer('mask', FORCE * allowed.float() - FORCE, persistent=False)  # (3, |CLASSES|): 0 or -FORCE

    @staticmethod
    def near_digits(digit_len, cache=None):
        """(B, T) bool: whether one of the K_REACH tokens before each token holds digits (a token before the
        sequence, or before a cropped window, counts as one). Only there can a token be a 'k' suffix ("5k", "3 k")."""
        before = digit_len[:, :0] if cache is None or cache.window is None else cache.window[2][:, -K_REACH:]
        before = F.pad(before > 0, (K_REACH - before.size(1), 0), value=True)  # (B, K_REACH)
        seq = torch.cat([before, digit_len[:, :-1] > 0], 1)  # (B, K_REACH + T - 1): the tokens before each
        return seq.unfold(1, K_REACH, 1).any(-1)  # token t's window: tokens t - K_REACH .. t - 1

    def forward(self, e, digit_value, digit_len, cache=None):
        """With a cache (DAGCache), e holds the new positions only; the numbers are read over them and the
        2 (window - 1) cached positions before them (the count of fractional digits is a windowed scan of
        a windowed scan), exactly as over the whole sequence."""
        class_logits, digit_logits = self.classify(e).split([len(CLASSES), 10], -1)
        kind = torch.where(digit_len > 0, 1, torch.where(self.near_digits(digit_len, cache), 0, 2))  # mask's rows
        class_logits = class_logits + self.mask[kind]  # (B, T, |CLASSES|)
        hard, soft = one_hot_argmax(class_logits)
        T = e.size(1)
        window = (hard, digit_value, digit_len) if cache is None else cache.extend_window(hard, digit_value, digit_len)
        context = 2 * (self.window - 1) + T
        value, tokens, chars = read_numbers(window[0][:, -context:].double(), window[1][:, -context:].double(),
                                            window[2][:, -context:].double(), self.window)
        return (value[:, -T:], tokens[:, -T:].long(), chars[:, -T:].long(), straight_through(hard, soft),
                class_logits, digit_logits)


def leaf_sets(start, end, words, device):
    """Token positions start..end-1, each as a leaf set of its own: (end - start, words) int64, bit p % LEAF_BITS of
    word p // LEAF_BITS."""
    p = torch.arange(start, end, device=device)[:, None]
    bits = torch.bitwise_left_shift(torch.ones_like(p), p % LEAF_BITS)
    return torch.zeros(end - start, words, dtype=torch.long, device=device).scatter_(1, p // LEAF_BITS, bits)


def popcount(x, table=BYTE_POPCOUNT):
    """The number of set bits of int64 x (..., words), over the last dim -> (...) long. table: BYTE_POPCOUNT, best
    on x's device (DAGController keeps a copy as a buffer: a GPU then gets no host-to-device copy per call)."""
    return table.to(x.device)[x.contiguous().view(torch.uint8).long()].sum(-1)


def number_ends(length):
    """Number lengths in tokens (B, T) long (the value extractor's) -> (B, T) bool: the tokens that end a number
    (the next token does not continue it; the sequence's last token counts as ending one if it is in one)."""
    return (length > 0) & (F.pad(length[:, 1:], (0, 1)) <= length)


def after_number(length):
    """(B, T) bool: the positions right after a number ends (where a sub-expression's last operand has just been
    read, so a step there can compute it: see DAGController.operand_mask)."""
    return F.pad(number_ends(length)[:, :-1], (1, 0))


def number_views(length, positions):
    """Number lengths (B, Tk) long (in tokens) and query positions (B, Tq) long -> the position each query's DAG
    runs as (B, Tq) long: inside a number, the position right before its first token, where a non-number token is
    (the view its first character was decided at: the number being written is the DAG's output there, not an
    operand); elsewhere, and where the token before is in a number or before the window, the query's own."""
    start = positions - length.gather(1, positions)  # the token before the number (the query itself outside one)
    before = length.gather(1, start.clamp(min=0))
    return torch.where((start >= 0) & (before == 0), start, positions)


def scratch_index(T, j, position=None):
    """The node index (as in DAGController's choices and programs) of step j's scratch node at a position: an int,
    or positions (T,) long, or None for every position's own (a (T,) long tensor, to force "step j of this
    position"; a position inside a number reads those of the position it runs as: number_views). T: the number of
    token nodes."""
    return T * (1 + j) + (torch.arange(T) if position is None else position)


class DAGController(nn.Module):
    """Runs dag_depth steps at every position. Inputs, for the Tq positions being computed: token node embeddings
    (B, Tq, n_embd), token values (B, Tq) float64, number lengths in tokens (B, Tq) long and in characters
    (written, (B, Tq) long: the Abacus index), the extractor's class choices (B, Tq, |CLASSES|), the context
    (B, Tq, n_embd) that the operand queries and op heads read. Tq is the whole sequence in training; in cached
    generation (cache, a DAGCache) only the new positions, and the nodes of earlier ones come from the cache. A
    position inside a number runs as the position before it (number_views: its context, and the nodes visible
    there), so its values are that position's (in training with exploration noise of its own); only its symbols
    are its own, rendered at its own Abacus index. Without that the steps re-read the answer being written as an
    operand, and a chain's answer right at its first digit was lost at a later one (over seeds 1337-1344 test
    chains 65.8 -> 69.4%, held-out phrasings 70.7 -> 71.7%, the chains suite 191.9 -> 199.2 of 300; the step and
    cached decoding cost the same: NOTES.md, forty-first session).
    With positions (B, M) long (a training step's share: DAGGPT.train_positions; no cache, no program) the steps
    run at those positions only, the outputs below are theirs (M in place of Tq), and a step reads the token nodes
    of every position but the scratch nodes of those M only, numbered T + j M + m (step j's node at positions[:, m]).
    Optionally a program that forces the choices: one (a, b, op) per step, a and b indexing the nodes (token
    positions 0..T-1, then step j's scratch node at position s at T (1 + j) + s: scratch_index; an int, or a (T,)
    tensor of one node per position), op a name in OPS or None (the model's own); forced choices must be visible
    from the position that reads them (a test and debugging aid); and labels (B, Tq, dag_depth) float64 (training,
    no cache: what each step should compute at each position, NaN where unknown, as step_labels gives), to also
    return the candidate programs the auxiliary loss scores (`programs`).

    Returns a dict: 'values' the scratch values (B, Tq, dag_depth) float64, exactly the chosen op on the chosen
    operands' values; 'feats' their readout features (B, Tq, dag_depth, N_VALUE_FEATURES + |SYMBOLS|); 'emb' the
    scratch nodes' embeddings (B, Tq, dag_depth, n_embd); 'choices' (B, Tq, dag_depth, 3) long, the node indices
    of the two operands (token positions 0..Tk-1, then step j's node at position s at Tk (1 + j) + s, Tk the
    number of tokens seen: T in training, the tokens so far in cached generation) and the OPS index of the op;
    'symbols'
    (B, Tq, dag_depth) long, the SYMBOLS index each value renders at the current number position; 'anchor_logits'
    (B, Tq, 9) float32, the op as read at each position (what a step whose right operand is there adds to its op
    logits; the auxiliary loss's ops labels teach it); 'distinct' (B, Tq, dag_depth) long, how many different
    tokens each scratch node's program reads, and 'leaf_counts' (the same shape), how many with repeats
    (`program_leaves`); with with_stats,
    'stats' (diagnostics, see DAGGPT.forward); with labels, 'programs': per step, at M positions (on the CPU those
    where its label is known: `programs`), (the results of every op on every pair of candidate operands (M, K, K, 9)
    float64, the probability the step gives each (M, K, K, 9), the labels (M,) float64).

    A step, in the order it runs (`step`): operand logits over the visible nodes (`operand_logits`), the
    exploration sample and the top-K candidates of each operand (`choose`), the op (the step's own head plus
    the op read at the right operand's anchor: an operator is written next to its right operand, " * 5",
    "max(3, 5", "Subtract 5 from", so a token's context names the op that takes it; a scratch node is anchored
    where its own left operand is, so "* (398 * 2)" reads the outer '*' at "398"; a scratch node's key is its
    value, op and step plus the key of its position's token, which says where it was computed; plus a learned
    row for how the two chosen operands relate, the same node or not and b a token or a step's node, since
    identity, max(x, x) and min(x, x) pass a value on), the candidate
    results (`candidate_results`), their straight-through value features (`features`), the new node (`new_node`) and the
    tokens its program reads (`program_leaves`). After the last step, every step's symbol at once (`symbol_features`: no
    step reads them)."""

    def __init__(self, config):
        super().__init__()
        C = config.n_embd
        self.depth, self.topk = config.dag_depth, config.dag_topk
        self.leaf_words = -(-config.block_size // LEAF_BITS)  # int64 words of a node's leaf set
        self.register_buffer('byte_popcount', BYTE_POPCOUNT.clone(), persistent=False)  # moves with the model
        self.scratch_emb = nn.Embedding(config.dag_depth, C)  # which step made a scratch node (in its key)
        # Each step reads its own direction of the context: a query per step and operand, an op head per step. (A
        # step embedding added to one shared context only shifts every step's logits by a constant, so all steps
        # of a position chose the same program and chains could not be computed: issue 8.)
        self.key_dim = dk = config.dag_key_dim or C
        self.query = nn.Linear(C, self.depth * 2 * dk)
        self.key = nn.Linear(C, dk)
        self.rank_emb = nn.Embedding(MAX_RANK, dk)  # recency of a number among the numbers before a position
        self.scratch_rank_emb = nn.Embedding(MAX_RANK, dk) if self.depth > 1 else None  # of a scratch node's position
        self.op_head = nn.Linear(C, self.depth * len(OPS))
        self.op_anchor = nn.Linear(C, len(OPS))  # the op as read at a step's right operand (see `step`)
        self.op_emb = nn.Embedding(len(OPS), C)
        self.value_embed = nn.Linear(N_VALUE_FEATURES, C)  # scalar-to-embedding of a node's value
        self.class_embed = nn.Linear(len(CLASSES), C, bias=False)  # what the extractor says a token is
        # the op as the chosen operands suggest it (see `step`): a the same node as b or not, b a token or a step's
        self.op_relation = nn.Embedding(4, len(OPS))

    def forward(self, node_emb, values, length, written, classes, ctx, program=None,
                cache=None, with_stats=False, labels=None, positions=None):
        # values enter only as bounded features; the class choices carry the LM loss's gradient to the extractor
        token_keys = self.key(node_emb + self.value_embed(value_features(values.detach())) + self.class_embed(classes))
        anchor_logits = new_anchor_logits = self.op_anchor(ctx).float()  # (B, Tq, 9)
        start = 0 if cache is None or cache.nodes is None else cache.nodes[0].size(1)  # the tokens seen before
        leaves = leaf_sets(start, start + values.size(1), self.leaf_words, values.device).expand(values.size(0), -1, -1)
        if cache is not None:  # the nodes of every position so far: (B, Tk, ...)
            token_keys, values, length, anchor_logits, leaves, ctx = cache.extend_nodes(
                token_keys, values.detach(), length, anchor_logits, leaves, ctx)
        Tk = token_keys.size(1)
        scratch_everywhere = positions is None  # a scratch node at every position, else at the queries' only
        if scratch_everywhere:  # the queries are the last Tq positions (all of them, or a cache's new ones)
            positions = torch.arange(Tk - written.size(1), Tk, device=ctx.device).expand(ctx.size(0), -1)
        else:  # a training step's share of the positions: their Abacus index and labels
            written = gather_positions(written, positions)
            labels = gather_positions(labels, positions) if labels is not None else None
        views = number_views(length, positions)  # where each query's DAG looks from
        ctx = gather_positions(ctx, views)
        B, Tq, C = ctx.shape
        masks = self.operand_mask(length, views, None if scratch_everywhere else positions)
        own_keys = token_keys[:, -Tq:] if scratch_everywhere else gather_positions(token_keys, positions)
        # every step's two operand queries (B, Tq, 2, dk), each from its own slice of the weight: every gradient
        # stays contiguous (sliced after one Linear, the rank logits' backward matmul took a strided gradient, 4.3 ms
        # instead of 1.0 of a ~280 ms training step; the same values, NOTES.md)
        weight, bias = self.query.weight.view(self.depth, -1, C), self.query.bias.view(self.depth, -1)
        queries = [F.linear(ctx, weight[k], bias[k]).view(B, Tq, 2, self.key_dim) for k in range(self.depth)]
        rank_table = self.rank_emb.weight if self.depth == 1 else \
            torch.cat([self.rank_emb.weight, self.scratch_rank_emb.weight])  # the rank indices of operand_mask
        rank_logits = [q @ rank_table.T for q in queries]  # (B, Tq, 2, 2 MAX_RANK) each
        op_logits = self.op_head(ctx).float().view(B, Tq, self.depth, len(OPS))  # every step's op logits
        # the nodes, per kind (the tokens, then each step's scratch nodes): keys (B, Tk, dk), values (B, Tk)
        # float64, and the token each node's op is read at (B, Tk) long (a token its own, a scratch node its left
        # operand's anchor); every position's scratch nodes are nodes of the later positions' later steps
        nodes = {'keys': [token_keys], 'values': [values.detach()],
                 'anchors': [torch.arange(Tk, device=values.device).expand(B, Tk)],
                 'leaves': [leaves],
                 'counts': [torch.ones(B, Tk, dtype=torch.long, device=values.device)]}
        if labels is not None:  # what each node should hold, per kind (a token's value is its own: no label)
            nodes['labels'] = [torch.full_like(values, float('nan'), dtype=torch.float64)]
        # one view per step: unbind's backward stacks the steps' gradients once (a slice [:, :, k] filled a
        # full-size zero gradient for every step, ~9 ms of a 250 ms training step)
        per_step = lambda x: x.movedim(2, 0).unbind(0)  # noqa: E731: (B, Tq, dag_depth, ...) -> (B, Tq, ...) each
        ctx = dict(masks=masks, queries=queries, rank_logits=rank_logits,
                   op_logits=per_step(op_logits), anchor_logits=anchor_logits, program=program,
                   labels=per_step(labels) if labels is not None else None)
        steps = []
        for k in range(self.depth):
            step = self.step(k, nodes, **ctx)
            node = (self.key(step['emb']) + own_keys, step['value'], step['anchor_a'], step['leaves'], step['count'])
            if cache is not None:
                node = cache.extend_scratch(k, node)
            for name, x in zip(('keys', 'values', 'anchors', 'leaves', 'counts'), node):
                nodes[name].append(x)
            if labels is not None:
                nodes['labels'].append(ctx['labels'][k])
            steps.append(step)
        out = {'values': torch.stack([s['value'] for s in steps], -1),
               'feats': torch.stack([s['feats'] for s in steps], 2),
               'emb': torch.stack([s['emb'] for s in steps], 2),
               'choices': torch.stack([s['choice'] for s in steps], 2), 'anchor_logits': new_anchor_logits,
               'distinct': popcount(torch.stack([s['leaves'] for s in steps], 2), self.byte_popcount),
               'leaf_counts': torch.stack([s['count'] for s in steps], -1)}
        # every step's symbols in one call (no step reads them, only the readout); a step with fewer than dag_topk
        # operand candidates (fewer nodes) padded with candidates of weight 0
        pad = lambda x: F.pad(x, (0, len(OPS) + 2 * self.topk - x.size(-1)))  # noqa: E731
        candidates = [torch.stack([pad(s[name]) for s in steps], 2) for name in ('results', 'weights')] \
            if torch.is_grad_enabled() else (out['values'][..., None], None)
        symbol_feats, out['symbols'] = self.symbol_features(*candidates, out['choices'][..., 2], written)
        out['feats'] = torch.cat([out['feats'], symbol_feats], -1)
        if with_stats:  # diagnostics, only when the caller logs them
            out['stats'] = self.diagnostics(steps, out['values'])
        if labels is not None:
            out['programs'] = [s['programs'] for s in steps]
        return out

    def operand_mask(self, length, positions, scratch_positions=None):
        """Number lengths of every token so far (B, Tk) and the positions the queries run as (B, Tq) long
        (number_views) -> for each query and every node (the Tk token nodes, then the scratch nodes of each step but
        the last, numbered as the choices are: S of them a step, one at every position (S = Tk), or with
        scratch_positions (B, S) long one at each of those positions (a training step's share)): the operand logit
        bias (B, Tq, Tk + (dag_depth - 1) S) float32 and the recency rank (the same shape) long.
        A token node: bias 0 for a number's last token, NOT_A_NUMBER for other past tokens, FUTURE for future
        ones; rank among numbers, capped at MAX_RANK - 1: 0 for the number at the query position itself, 2 for
        the last one that ended before it, 3 for the one before that, ... (1 is never used: the count of numbers
        ended from the node to the query, plus one; "the second-to-last number" is one learned direction,
        whatever the numbers' lengths). A scratch node: bias 0 at the query position itself and at the positions
        right after a number ends (where a sub-expression's last operand has just been read: "(3 + 4)" is
        computed at ")"), else as for the tokens; its rank is its position's (0 itself, 1 right after the last
        number, ...), offset by MAX_RANK (an embedding of its own). Step k reads the first Tk + k S columns."""
        Tk = length.size(1)
        pos = positions[:, :, None]  # (B, Tq, 1): each query's position
        node = torch.arange(Tk, device=length.device)[None, None, :]  # (1, 1, Tk)
        ends_before = number_ends(length)  # (B, Tk)
        is_self = node == pos  # (B, Tq, Tk)
        own_ends = (length.gather(1, positions) > 0)[:, :, None]  # the query's own token may still be ending one
        ends = torch.where(is_self, own_ends, ends_before[:, None, :])  # (B, Tq, Tk)
        bias = torch.where(node <= pos, torch.where(ends, 0.0, NOT_A_NUMBER), FUTURE)
        seen = F.pad(torch.cumsum(ends_before.long(), dim=1)[:, :-1], (1, 0))  # (B, Tk): numbers ended before t
        rank = (seen.gather(1, positions)[:, :, None] - seen[:, None, :] + (~is_self).long()).clamp(0, MAX_RANK - 1)
        after_end = after_number(length)[:, None, :] | is_self  # (B, Tq, Tk)
        scratch_bias = torch.where(node <= pos, torch.where(after_end, 0.0, NOT_A_NUMBER), FUTURE)
        scratch_rank = rank + MAX_RANK
        if scratch_positions is not None:  # the columns of the positions that have scratch nodes
            columns = scratch_positions[:, None, :].expand(-1, positions.size(1), -1)
            scratch_bias, scratch_rank = scratch_bias.gather(2, columns), scratch_rank.gather(2, columns)
        return (torch.cat([bias] + [scratch_bias] * (self.depth - 1), -1),
                torch.cat([rank] + [scratch_rank] * (self.depth - 1), -1))

    def step(self, k, nodes, masks, queries, rank_logits, op_logits, anchor_logits, program, labels=None):
        """DAG step k at every query position: choose two operands among the visible nodes and an op, execute them
        exactly, and make the new node. nodes: the keys, values, anchors, leaf sets and leaf counts of the tokens and of
        the k earlier steps' scratch nodes (see forward); masks: operand_mask's; per step (sequences of dag_depth):
        queries (B, Tq, 2, dk) (dk = dag_key_dim), rank_logits (B, Tq, 2, 2 MAX_RANK), op_logits (B, Tq, 9);
        anchor_logits (B, Tk, 9). Returns a dict of the step's value (B, Tq) float64, feats (its value features), emb,
        choice (see forward), its leaves and count (`program_leaves`), its candidates' results and weights (see
        features) and what diagnostics and the auxiliary loss need. Both operands are chosen at once, along a leading
        dim of 2 (a, then b). With labels (per step, (B, Tq) float64) also the programs the auxiliary loss scores
        (`programs`)."""
        forced = program[k] if program is not None else None
        keys, node_values = torch.cat(nodes['keys'], 1), torch.cat(nodes['values'], -1)  # (B, N, dk), (B, N)
        bias, rank = (m[..., :node_values.size(-1)] for m in masks)  # (B, Tq, N) each
        logits = self.operand_logits(queries[k], keys, rank_logits[k].movedim(2, 0), bias, rank)  # (2, B, Tq, N)
        if forced:  # a node index per side: an int, or a (T,) tensor of one per position
            one_hots = [F.one_hot(torch.as_tensor(n, device=logits.device), logits.size(-1)) for n in forced[:2]]
            logits = logits + FORCE * torch.stack(torch.broadcast_tensors(*one_hots)).view(2, 1, -1, logits.size(-1))
        with_probs = torch.is_grad_enabled() or labels is not None  # what only the backward pass and the loss read
        visible = bias == 0 if self.training else None  # the nodes whose exploration noise can matter
        i, p, v = self.choose(logits, node_values[None, :, None].expand_as(logits), with_probs, visible)
        (i_a, i_b), (v_a, v_b), (p_a, p_b) = i, v, p if with_probs else (None, None)  # (B, Tq, K) each
        anchors = torch.cat(nodes['anchors'], -1)  # (B, N)
        anchor = anchors.gather(-1, i_b[..., 0])[..., None]  # (B, Tq, 1): where b's op is read
        # how the chosen operands relate (forward's docstring): without it the op heads of answer positions learned
        # a bias toward the ops that pass a value on (identity problems, chains' roots computed earlier), and "3 - 5
        # = " took max(3, 5): of the 100 one-digit a - b, 74 of 800 wrong over seeds 1337-1344, 1 with it (NOTES.md)
        n_tokens = nodes['values'][0].size(-1)  # the token nodes come first; scratch nodes are numbered after them
        relation = 2 * (i_a[..., 0] == i_b[..., 0]) + (i_b[..., 0] >= n_tokens)  # (B, Tq) long, 0..3
        op_logits = op_logits[k] + anchor_logits.gather(1, anchor.expand(-1, -1, len(OPS))) + self.op_relation(relation)
        if forced and forced[2] is not None:
            op_logits = op_logits + FORCE * F.one_hot(torch.tensor(OPS.index(forced[2])), len(OPS))
        p_op = F.softmax(op_logits, dim=-1) if with_probs else None  # (B, Tq, 9)
        op_hard = self.explore(op_logits).argmax(-1)  # (B, Tq)
        results = self.candidate_results(v_a, v_b, op_hard)  # (B, Tq, 9 + 2K)
        value = results[..., :len(OPS)].gather(-1, op_hard[..., None]).squeeze(-1)  # (B, Tq) float64, exact
        weights = torch.cat([p_op, p_a, p_b], dim=-1) if with_probs else None
        mixed = self.features(results, weights, op_hard, value)
        leaves, count = self.program_leaves(torch.cat(nodes['leaves'], 1), torch.cat(nodes['counts'], -1),
                                            i_a[..., 0], i_b[..., 0], op_hard)
        step = {'value': value, 'feats': mixed, 'emb': self.new_node(k, mixed, op_hard, p_op),
                'results': results, 'weights': weights,
                'choice': torch.stack([i_a[..., 0], i_b[..., 0], op_hard], -1), 'operand_logits': logits,
                'anchor_a': anchors.gather(-1, i_a[..., 0]),  # (B, Tq): the new node's anchor, its a's
                'leaves': leaves, 'count': count}
        if labels is not None:
            step['programs'] = self.programs(i, v, p, p_op, torch.cat(nodes['labels'], -1), labels[k])
        return step

    @staticmethod
    def program_leaves(leaves, counts, a, b, op_hard):
        """The tokens the new node's program reads, from its operands a, b (B, Tq) long (node indices) and op
        (B, Tq): its leaf set (B, Tq, words) int64 (a bit per token position, leaf_sets; the union of its operands'
        sets, a's alone for identity) and its leaf count (B, Tq) long (their sum: a token read twice counts twice),
        from every node's, leaves (B, N, words) and counts (B, N). What the step judge compares (DAGReadout)."""
        ab = torch.cat([a, b], 1)  # (B, 2 Tq): one gather for both sides (generation runs these ops per token)
        leaves_a, leaves_b = leaves.gather(1, ab[..., None].expand(-1, -1, leaves.size(-1))).chunk(2, 1)
        count_a, count_b = counts.gather(1, ab).chunk(2, 1)
        has_b = op_hard != OPS.index('identity')
        return leaves_a | leaves_b * has_b[..., None], count_a + count_b * has_b

    @staticmethod
    def programs(i, v, p, p_op, node_labels, label, compact=None):
        """What the auxiliary loss scores, at M positions: every op on every pair of candidate operands, (their
        results (M, K, K, 9) float64, the probability the step gives each (M, K, K, 9), the step's labels (M,)
        float64). i, v, p: the candidates (`choose`), their values and probabilities (2, B, Tq, K) (a, then b);
        p_op (B, Tq, 9); node_labels (B, N) float64, what each node should hold (NaN where unknown); label (B, Tq)
        float64, the step's own (NaN where none). compact (default: eager_on_cpu) keeps only the positions where
        the label is known (~a fifth of the numeric corpus's: ~3% of a CPU training step); else M = B Tq, since
        picking them (a boolean index) would make the host wait for a GPU and break torch.compile's graph.

        A candidate is read as its label where it has one other than the step's own, else as its value. So a parent
        is scored on reading the node that should hold its child, right or not yet (early in training, and under the
        exploration sample, most children are wrong: NOTES.md, eleventh session); a node labelled with the step's own
        value keeps its computed one, so copying an earlier step earns only what that step computed (with labels
        there, steps learned to copy: NOTES.md, twelfth session). The forward pass reads the computed values only."""
        B, Tq = label.shape
        batch = torch.arange(B, device=label.device)[:, None].expand(B, Tq)
        if compact is None:
            compact = eager_on_cpu(label)
        if compact:
            rows = ~label.isnan()  # (B, Tq)
            i, v, p = i[:, rows], v[:, rows], p[:, rows]  # (2, M, K) each
            label, p_op, batch = label[rows], p_op[rows], batch[rows]  # (M,), (M, 9), (M,)
        else:
            i, v, p = i.flatten(1, 2), v.flatten(1, 2), p.flatten(1, 2)
            label, p_op, batch = label.flatten(), p_op.flatten(0, 1), batch.flatten()
        lab = node_labels[batch[:, None], i]  # (2, M, K)
        v = torch.where(lab.isnan() | (lab == label[:, None]), v, lab)
        return (dag_ops(v[0, :, :, None], v[1, :, None, :]),
                p[0, :, :, None, None] * p[1, :, None, :, None] * p_op[:, None, None, :], label)

    @staticmethod
    def operand_logits(q, keys, rank_logits, bias, rank):
        """Queries q (B, Tq, 2, dk) (operand a's, then b's) -> logits (2, B, Tq, N) float32 over the N nodes (keys
        (B, N, dk): the tokens', then each earlier step's scratch nodes'): a dot-product with their keys, plus the
        recency rank's embedding (rank_logits (2, B, Tq, 2 MAX_RANK), the queries against the rank embeddings, read
        at rank (B, Tq, N)), plus the bias (B, Tq, N) (operand_mask's)."""
        B, Tq, _, dk = q.shape
        # one (2 Tq, dk) x (dk, N) product per row (broadcasting the keys over the two queries copied them)
        scores = (q.reshape(B, 2 * Tq, dk) @ keys.transpose(1, 2)).view(B, Tq, 2, -1).movedim(2, 0)
        ranks = rank_logits.gather(-1, rank.expand(2, *rank.shape))
        return ((scores + ranks) / math.sqrt(dk) + bias).float()

    def choose(self, logits, node_values, with_probs=True, visible=None):
        """Operand logits (..., N) -> the top-K candidate nodes (..., K) long, sorted by the exploration sample so
        that index 0 is the hard choice; their probabilities renormalised over the K (..., K); their values (..., K)
        float64 (of node_values (..., N)). visible (..., N) bool, broadcastable: the nodes operand_mask lets through
        (see `explore`). Without with_probs (generation: only the backward pass and the auxiliary loss read them) the
        probabilities are None."""
        K = min(self.topk, logits.size(-1))
        i = self.explore(logits, visible).topk(K, dim=-1).indices
        if not with_probs:
            return i, None, node_values.gather(-1, i)
        # the softmax renormalised over the K candidates is the softmax of their logits: no softmax over all N nodes
        return i, F.softmax(logits.gather(-1, i), dim=-1), node_values.gather(-1, i)

    @torch.no_grad()
    def explore(self, logits, visible=None):
        """The logits (..., N) the hard choices are taken from: in training, with Gumbel noise, so that the choice
        is a sample of the softmax and other programs get tried (the straight-through Gumbel-softmax of Jang et
        al. 2017); in eval mode, the logits themselves (argmax). With visible (bool, broadcastable to the last
        dims of logits; the first dims are drawn apart), only those entries get noise: a masked operand's logit
        sits at NOT_A_NUMBER or FUTURE, where float32's spacing (64, 128) swallows any Gumbel sample (|g| < 21),
        so its noise changed nothing; a sixth of the nodes are visible, and the CPU's random numbers were ~5% of
        a training step (NOTES.md). Eager on the CPU only (eager_on_cpu), as `programs`' compact rows."""
        if not self.training:
            return logits
        if visible is None or not eager_on_cpu(logits):  # nonzero would stall a GPU's host, break compile's graph
            return logits - gumbel_noise(logits.shape, logits.device)
        visible = visible.expand(logits.shape[logits.dim() - visible.dim():])
        where = visible.flatten().nonzero().squeeze(1)
        out = logits.clone(memory_format=torch.contiguous_format)
        rows = out.view(-1, visible.numel())  # (the leading dims, the entries visible covers): a row per draw
        rows.index_add_(1, where, -gumbel_noise((rows.size(0), where.numel()), logits.device))
        return out

    @staticmethod
    def candidate_results(v_a, v_b, op_hard):
        """Candidate operand values v_a, v_b (B, Tq, K) float64 (index 0: the chosen ones) and the chosen op
        (B, Tq) -> (B, Tq, 9 + 2K) float64: every op on the chosen operands, then the chosen op on each candidate
        of one side with the other side's choice. Their features' expectation, where the other two choices are
        one-hot, is what the backward pass differentiates (the choices' straight-through gradient). With
        gradients off, only the first 9."""
        if not torch.is_grad_enabled():  # no backward pass: the chosen operands' results are all that is used
            return dag_ops(v_a[..., 0], v_b[..., 0])
        # one call for the 2K pairs: each candidate a with the chosen b, then the chosen a with each candidate b
        a = torch.cat([v_a, v_a[..., :1].expand_as(v_b)], -1)  # (B, Tq, 2K)
        b = torch.cat([v_b[..., :1].expand_as(v_a), v_b], -1)
        every = dag_ops(a, b)  # (B, Tq, 2K, 9); the pair at 0 is the chosen one
        chosen_op = every.gather(-1, op_hard[:, :, None, None].expand(*every.shape[:3], 1)).squeeze(-1)
        return torch.cat([every[:, :, 0], chosen_op], dim=-1)

    @staticmethod
    def features(results, weights, op_hard, value):
        """The value features of the step's value (B, Tq, N_VALUE_FEATURES) (after xVal, Golkar et al. 2023, and
        FoNE, Zhou et al. 2025). Forward: the chosen result's features; backward: the gradient of the expected
        features of the candidates (results (B, Tq, 9 + 2K) weighted by the op and operand probabilities, weights
        (B, Tq, 9 + 2K), each of the N_CHOICES groups summing to 1): the choices' straight-through gradient.
        With gradients off, the chosen value's features alone."""
        if not torch.is_grad_enabled():
            return value_features(value)
        feats = value_features(results)  # (B, Tq, 9 + 2K, N_VALUE_FEATURES)
        # the chosen result is results[..., op_hard] (the first 9 are every op on the chosen operands): its features
        hard = feats.gather(2, op_hard[:, :, None, None].expand(-1, -1, 1, feats.size(-1))).squeeze(2)
        soft = (weights[..., None, :] @ feats).squeeze(-2) / N_CHOICES  # a matmul: 3x faster than * and sum
        return straight_through(hard, soft)

    @staticmethod
    def symbol_features(results, weights, op_hard, written):
        """The symbol each step's value renders at the current number position (an Abacus-style index, McLeish
        et al. 2024: written (B, Tq) characters of the number already written) as the readout's one-hot features
        (B, Tq, dag_depth, |SYMBOLS|), straight-through as in `features` (every step's candidates at once:
        results and weights (B, Tq, dag_depth, 9 + 2K), op_hard (B, Tq, dag_depth)), and the SYMBOLS index
        (B, Tq, dag_depth) long. With gradients off, results holds the chosen values only (B, Tq, dag_depth, 1)
        and weights is None: their one-hots."""
        symbols = render_symbol(results, written[..., None, None])  # (B, Tq, dag_depth, 9 + 2K)
        if weights is None:
            return F.one_hot(symbols[..., 0], len(SYMBOLS)).float(), symbols[..., 0]
        chosen = symbols.gather(-1, op_hard[..., None]).squeeze(-1)
        # each candidate's weight added into its symbol's bin: the weighted sum of their one-hots
        soft = torch.zeros(*symbols.shape[:3], len(SYMBOLS), device=symbols.device).scatter_add(-1, symbols, weights)
        return straight_through(F.one_hot(chosen, len(SYMBOLS)).float(), soft / N_CHOICES), chosen

    def new_node(self, k, mixed, op_hard, p_op):
        """The scratch node's embedding (B, Tq, C): its value's features, the op that made it (straight-through:
        the chosen op's embedding forward, the op distribution's gradient backward; p_op None: the embedding
        alone, the same bits) and the step that made it."""
        op = self.op_emb(op_hard) if p_op is None else \
            straight_through(F.one_hot(op_hard, len(OPS)).float(), p_op) @ self.op_emb.weight
        return self.value_embed(mixed) + op + self.scratch_emb.weight[k]

    @torch.no_grad()
    def diagnostics(self, steps, values):
        """Cheap diagnostics as tensors (no host sync): each op's share of the choices (9,), the mean operand-choice
        entropy (nats) and the largest |value|, over every position and step."""
        op_usage = sum(F.one_hot(s['choice'][..., 2], len(OPS)).float().mean((0, 1)) for s in steps) / len(steps)
        entropy = sum(-(p * p.clamp(min=1e-12).log()).sum(-1).mean()
                      for s in steps for p in F.softmax(s['operand_logits'], dim=-1))
        return {'op_usage': op_usage, 'operand_entropy': entropy / (2 * len(steps)),
                'max_abs_value': values.abs().max()}


class DAGCache:
    """What cached generation keeps of earlier positions (GPT+DAG's counterpart of model.KVCache): the trunk's
    KVCache, the context Block's, and per token the extractor's class choices (B, T, |CLASSES|)
    float32 with the token's digits (value and count, (B, T) each: the number-reading window) and the controller's
    token nodes: keys (B, T, dag_key_dim), values (B, T) float64, number lengths (B, T) long, op anchor logits
    (B, T, 9), leaf sets (B, T, words) int64 and the context (B, T, n_embd) (a position inside a number runs as an
    earlier one: number_views). Position t depends only on tokens <= t, so a new token needs these and nothing is
    re-run. DAGGPT.new_kv_cache makes one; GPT.generate drives it."""

    def __init__(self, model, batch_size, max_len):
        self.trunk = GPT.new_kv_cache(model, batch_size, max_len)
        cfg, w = model.config, model.lm_head.weight
        self.context = KVCache(1, batch_size, cfg.n_head, max_len, cfg.n_embd // cfg.n_head, w.device, w.dtype)
        self.window = self.nodes = None
        self.scratch = [None] * model.config.dag_depth

    def extend_window(self, *tensors):
        """Append the new positions' class choices and digits; return every position's (each (B, T, ...))."""
        self.window = append_positions(self.window, tensors)
        return self.window

    def extend_nodes(self, *nodes):
        """Append the new positions' token nodes (keys, values, lengths, op anchor logits, leaf sets) and context;
        return every position's."""
        self.nodes = append_positions(self.nodes, nodes)
        return self.nodes

    def extend_scratch(self, k, node):
        """Append the new positions' scratch node of step k (key, value, anchor, leaf set, leaf count); return every
        position's."""
        self.scratch[k] = append_positions(self.scratch[k], node)
        return self.scratch[k]


def append_positions(old, new):
    """The tuple of tensors new (each (B, T_new, ...)) after old (None, or a tuple of (B, T_old, ...)) along dim 1."""
    return new if old is None else tuple(torch.cat(pair, 1) for pair in zip(old, new))


def run_block(block, x, kv=None):
    """block(x); with a KVCache (cached generation), x holds the new positions and kv supplies the earlier ones."""
    if kv is None:
        return block(x)
    y = block(x, kv)
    kv.pos += x.size(1)
    return y


class DAGReadout(nn.Module):
    """The scratch nodes' readout features (B, T, dag_depth, F), embeddings (B, T, dag_depth, n_embd) and values (B, T,
    dag_depth) float64, the context (B, T, n_embd), and each node's distinct, leaf_counts and follows (below) ->
    (dag_sem (B, T, n_embd), the step weights (B, T, dag_depth) float32, or None at dag_depth 1): the
    scalar-to-embedding projection of every step's features, each step with its own weights (one Linear over the
    concatenation: a step's symbol must not be averaged away) and its features scaled by dag_depth x its step weight,
    plus the mean of the node embeddings (which say which op made each node, so every step's embedding reaches the
    loss, also at dag_depth 1); per position.

    The step weights are a softmax over the steps of a score that a small MLP gives each node from its embedding (its
    value's features, its op, its step), which steps hold the same value (a node is scored alone, and a vote is a
    comparison), how many fewer different tokens its program reads than its position's widest step's (distinct (B, T,
    dag_depth) long, up to MAX_COVER_GAP) and whether it reads one twice (leaf_counts (B, T, dag_depth) long, more than
    distinct: `DAGController.program_leaves`), whether its value's canonical string begins with the number written so
    far at its position (follows (B, T, dag_depth) bool, from canonical_prefix; every node outside a number), and the
    context: a learned judge of the DAG's own steps (after the verifiers that score candidate solutions, Cobbe et al.
    2021). Its input is detached, so its loss (step_weight_loss: weigh the steps that hold the value being written)
    trains the judge and not the steps it judges; the steps' language-model gradient through the features is scaled by
    their weights. With equal weights the readout counted votes: a chain's answer that only the last step holds (the
    earlier ones a child: `...x` in eval_numeric's chains suite) was written right in 1 of 36 problems on seed 1337,
    while answers that the middle steps hold and the last does not (`.xx.`) are nearly as common in the test chains, so
    no fixed weighting serves (NOTES.md, thirty-sixth session). Over seeds 1337-1342 the main job gained test chains
    59.3 -> 60.6%, extrapolation 94.55 -> 94.87%, its chains 51.7 -> 53.2%, held-out phrasings 67.9 -> 70.7% and the
    chains suite 150.7 -> 170.2 of 300 (without the agreement input: 60.3, 94.53, 50.2, 68.9 and 164.3); the training
    step and cached decoding cost the same to 2% (NOTES.md, thirty-seventh session). The leaf inputs (thirty-ninth
    session) let it tell `...x` from `.xx.`: over seeds 1337-1344 `...x` answers written right 65 of 270 -> 185 of 286,
    test chains 61.1 -> 65.1%, the chains suite 171.1 -> 182.9 of 300, while extrapolation went 94.79 -> 94.62% (its
    chains 52.5 -> 51.0%) and held-out phrasings 69.3 -> 68.2%, within their spread; the training step costs the same,
    cached decoding ~8% more. The follows input (forty-first session): inside an answer the top step changed (103-129
    times a seed in the chains suite, 1337-1340), sometimes to one that contradicted the digits already written; over
    seeds 1337-1344 extrapolation went 94.82 -> 95.44%, its chains 55.9 -> 60.8%, held-out phrasings 68.6 -> 70.7%, the
    chains suite 188.2 -> 191.9 of 300, test chains 65.7 -> 65.8% (NOTES.md). (Until issue 9 a shared projection, one
    self-attention across the nodes of a position and a mean-pool did this, then a small Block over T: the attention's
    Linear ran on dag_depth x the tokens, and the Block cost 0.25x the GPT's step for no accuracy in the main job;
    NOTES.md.)"""

    def __init__(self, config):
        super().__init__()
        C, D = config.n_embd, config.dag_depth
        self.proj = nn.Linear(D * (N_VALUE_FEATURES + len(SYMBOLS)), C)
        # at dag_depth 1 the softmax is constant: no weights (every parameter must get a gradient, for DDP)
        self.step_score = nn.Sequential(nn.Linear(2 * C + D + MAX_COVER_GAP + 3, C), nn.GELU(), nn.Linear(C, 1)) \
            if D > 1 else None

    def forward(self, feats, node_emb, ctx, values, distinct, leaf_counts, follows):
        weights = None
        if self.step_score is not None:
            # detached: the judge learns from the DAG's nodes and the context, and cannot change them; each node
            # also sees which steps hold its value and how many numbers it reads against the widest step (a node is
            # scored alone, and a vote or a widest program is a comparison)
            agree = (values[..., :, None] == values[..., None, :]).to(node_emb.dtype)  # (B, T, dag_depth, dag_depth)
            gap = (distinct.amax(-1, keepdim=True) - distinct).clamp(max=MAX_COVER_GAP)  # (B, T, dag_depth)
            cover = torch.cat([F.one_hot(gap, MAX_COVER_GAP + 1), (leaf_counts > distinct)[..., None],
                               follows[..., None]], -1)
            nodes = torch.cat([node_emb, ctx[:, :, None].expand_as(node_emb), agree, cover.to(node_emb.dtype)], -1)
            nodes = nodes.detach()
            weights = F.softmax(self.step_score(nodes).float().squeeze(-1), dim=-1)  # (B, T, dag_depth)
            feats = feats * (feats.size(2) * weights)[..., None]  # equal weights: the features as they are
        return self.proj(feats.flatten(2)) + node_emb.mean(2), weights  # (B, T, C)


def gather_positions(x, positions):
    """x (B, T, ...) at positions (B, M) long -> (B, M, ...)."""
    index = positions.view(*positions.shape, *[1] * (x.dim() - 2)).expand(-1, -1, *x.shape[2:])
    return x.gather(1, index)


def scatter_positions(x, positions, T, fill):
    """x (B, M, ...) put back at positions (B, M) long of a (B, T, ...) tensor of fill (gather_positions'
    inverse)."""
    index = positions.view(*positions.shape, *[1] * (x.dim() - 2)).expand_as(x)
    return torch.full((x.size(0), T, *x.shape[2:]), fill, dtype=x.dtype, device=x.device).scatter(1, index, x)


def labelled_cross_entropy(logits, targets):
    """Mean cross-entropy of logits (B, T, K) against targets (B, T) long over the labelled positions (targets
    >= 0); 0, not NaN, when none is labelled."""
    nll = F.cross_entropy(logits.float().flatten(0, 1), targets.flatten(), ignore_index=-1, reduction='sum')
    return nll / (targets >= 0).sum().clamp(min=1)


def computes(results, target):
    """Whether float64 results equal target (broadcastable): bitwise, or within 1e-12 relative for what float64
    cannot do exactly (0.1 + 0.2, log(1000) / log(10)); NaN targets never match. Both render the same digits."""
    return (results == target) | ((results - target).abs() <= 1e-12 * target.abs())


def filled_steps(steps):
    """Label rows (..., S) -> float64, each row's columns before its first label filled with that label (the steps
    before a problem's first are taught its first value: program_loss)."""
    steps = steps.double()
    first = (~steps.isnan()).long().argmax(-1, keepdim=True)  # the first labelled column (0 where none is)
    return torch.where(torch.arange(steps.size(-1), device=steps.device) < first, steps.gather(-1, first), steps)


def multi_step_rows(steps):
    """Label rows steps (rows, S) float, a tensor or an array (NaN where none) -> (rows,) bool tensor: the rows that
    hold two or more different values, where the DAG's steps compute a program of several ops (a chain's parent or
    its answer; a single op's rows hold one value). train.py's multi_step_windows shows their lines more often."""
    steps = torch.as_tensor(steps, dtype=torch.float64)
    known = ~steps.isnan()
    return steps.where(known, math.inf).amin(-1) < steps.where(known, -math.inf).amax(-1)


def step_labels(steps, depth):
    """Label rows steps (B, T, S) -> what each of depth DAG steps is taught at each position (B, T, depth) float64:
    step k column S - depth + k (filled_steps; NaN where that column is before 0), as program_loss teaches."""
    labels = filled_steps(steps)[..., -depth:]
    return F.pad(labels, (depth - labels.size(-1), 0), value=float('nan'))


def step_weight_loss(weights, values, labels, written_value):
    """The auxiliary loss on the readout's step weights (B, M, dag_depth) float32 (DAGReadout): at the positions
    where the steps' values (B, M, dag_depth) float64 disagree on the last step's label (labels (B, M, dag_depth)
    float64, NaN where none, as step_labels gives: the value being written, or the highest op closing there), some
    holding it and some not, -log of the total weight on those that hold it; averaged over those positions, 0
    where there are none. Where every step holds it, or none, the weights cannot matter and are not taught; nor
    where the number written so far (written_value (B, M) float64, NaN outside numbers) already is the label, at
    an answer's last token: there a step that copies it (step 0 reads it) is right, and a judge taught so trusted
    step 0 late in a number, which answers longer than training's then followed and stopped early (NOTES.md,
    thirty-sixth session)."""
    right = computes(values, labels[..., -1:])  # NaN labels never match
    rows = right.any(-1) & ~right.all(-1) & ~computes(written_value, labels[..., -1])  # (B, M)
    nll = -(weights * right).sum(-1).clamp(min=1e-9).log()
    return (nll * rows).sum() / rows.sum().clamp(min=1)


def program_loss(programs):
    """The auxiliary loss on the DAG's steps: for each step k and position, -log of the total probability of the
    candidate programs that compute its label (the marginal likelihood of consistent programs, as in weakly
    supervised semantic parsing, e.g. Liang et al. 2017), averaged over the (step, position) pairs where some
    candidate does; pairs where none does teach nothing.

    programs: per DAG step, (results (M, K, K, 9) float64, probabilities (M, K, K, 9), labels (M,) float64, NaN
    where none) at M positions (DAGController.programs). The labels are step_labels': step k of
    D is taught column S - D + k of the right-aligned label rows, and the steps before a problem's first are
    taught its first value as well (any program that computes it, such as the same op again), so that every step
    learns from every problem: left untaught, they fed noise to the readout (a single op fell from 94.7% to
    90.8%, NOTES.md)."""
    nll, found = [], []
    for results, probs, labels in programs:
        exact = computes(results, labels[:, None, None, None])
        p_exact = (probs * exact).flatten(1).sum(-1)  # (M,)
        found.append(exact.flatten(1).any(-1))
        nll.append(-torch.log(p_exact.clamp(min=1e-9)))
    nll, found = torch.cat(nll), torch.cat(found)
    return (nll * found).sum() / found.sum().clamp(min=1)


class DAGGPT(GPT):
    """GPT+DAG (see the module docstring). forward(idx, targets=None, roles=None, steps=None, ops=None) -> (logits,
    loss) as GPT's; the optional labels roles (B, T), steps (B, T, S), ops (B, T) (see `dag`; data/numeric writes
    them) add dag_value_loss * the auxiliary loss that teaches the extractor and the DAG's choices. tokens: the text
    of each token id, for set_vocabulary (without it, or a later set_vocabulary, no token holds digits)."""
    config_class = DAGGPTConfig

    def __init__(self, config, tokens=None):
        if config.dag_depth < 1:
            raise ValueError(f"DAGGPT needs dag_depth >= 1, got {config.dag_depth}; use GPT for dag_depth=0")
        if config.dag_key_dim < 0:
            raise ValueError(f"dag_key_dim must be >= 0 (0: n_embd), got {config.dag_key_dim}")
        if not 0 < config.dag_train_positions <= 1:
            raise ValueError(f"dag_train_positions must be in (0, 1] (1: all), got {config.dag_train_positions}")
        super().__init__(config)
        for name, table in number_tables([], config.vocab_size).items():  # set_vocabulary fills them (TABLES)
            self.register_buffer(name, table)
        self.value_extractor = ValueExtractor(config)
        self.context = Block(config)  # one for the operand queries and the op heads: two cost a Block (issue 9)
        self.controller = DAGController(config)
        self.readout = DAGReadout(config)
        self.gate = nn.Linear(config.n_embd, 1)
        modules = [self.value_extractor, self.context, self.controller, self.readout, self.gate]
        if config.dag_write_tokens:  # a logit bias for each step's next token, with and without a space
            self.token_write = nn.Linear(config.n_embd, 2 * config.dag_depth)
            modules.append(self.token_write)
        for module in modules:
            module.apply(self._init_weights)
        if tokens is not None:
            self.set_vocabulary(tokens)
        n_dag = sum(p.numel() for n, p in self.named_parameters() if not n.startswith(('transformer.', 'lm_head.')))
        print(f"with the DAG: {self.get_num_params() / 1e6:.2f}M parameters, {n_dag / 1e6:.2f}M of them the DAG's")

    def set_vocabulary(self, tokens):
        """Tell the DAG which digits each token holds: tokens, the text of each token id (list of str, at most
        vocab_size; a character vocabulary's itos, or GPT-2's tokens). Kept as buffers, so a checkpoint keeps
        them; until this is called no token is a number. Raises ValueError for more tokens than vocab_size."""
        for name, table in number_tables(list(tokens), self.config.vocab_size).items():
            getattr(self, name).copy_(table)

    def dag(self, idx, h, roles=None, steps=None, ops=None, program=None, cache=None, with_stats=False):
        """Tokens idx (B, T) long and their hidden states h (B, T, n_embd) -> (dag_sem (B, T, n_embd), what the DAG
        read and did (a dict), the auxiliary loss or None). Runs in float32 / float64 outside autocast, whatever the
        training dtype.

        The dict holds the controller's outputs ('values' (B, T, dag_depth) float64, 'feats', 'choices',
        'symbols', see DAGController), the extractor's: 'token_values' (B, T) float64, 'length' (B, T) long (in
        tokens), 'written' (B, T) long (in characters), the readout's 'step_weights' (B, T, dag_depth) float32
        (None at dag_depth 1), and with dag_write_tokens 'next_tokens' (B, T, D, 2) long (next_tokens: what each
        step's value writes next, -1 where nothing).
        program forces the DAG's choices (see DAGController); with a cache (DAGCache), h holds the new positions
        only and the DAG's view of the earlier ones comes from the cache. In a training step with
        dag_train_positions < 1 the controller's outputs are those of the M positions train_positions draws (T -> M
        above; DAGController), and dag_sem is 0 at the others. The auxiliary loss, when labels are given:
        roles (B, T) long, the CLASSES index of each token (-1 where unknown): cross-entropy that teaches the value
        extractor (plus that of its last-digit head, on the labelled tokens of digits); steps (B, T, S) float64,
        the values the DAG's steps should compute at each position, right-aligned (column S - 1 is the final
        answer, S - 2 the step before; NaN where none): DAG step k is taught column S - dag_depth + k, by -log of
        the probability of its candidate programs that compute it, and the readout's step weights by
        step_weight_loss; ops (B, T) long, the OPS index of the op named next to the right operand whose number
        ends at each token (-1 where none): OPS_LABEL_WEIGHT x the cross-entropy of the op as read there (the
        anchor a step's op logits add; without it, chains' inner ops read the outer one, NOTES.md)."""
        with torch.autocast(device_type=h.device.type, enabled=False):
            e = h.float()  # the token nodes' embeddings: the trunk's own (a Block of their own did not pay, issue 9)
            token_values, length, written, classes, class_logits, digit_logits = self.value_extractor(
                e, self.digit_value[idx], self.digit_len[idx], cache)
            ctx = run_block(self.context, e, cache.context if cache is not None else None)
            labels = step_labels(steps, self.config.dag_depth) if steps is not None else None
            subset = self.training and torch.is_grad_enabled() and self.config.dag_train_positions < 1 \
                and cache is None and program is None
            positions = self.train_positions(length, labels) if subset else None
            out = self.controller(e, token_values, length, written, classes, ctx, program, cache=cache,
                                  with_stats=with_stats, labels=labels, positions=positions)
            value_at, written_at, length_at = token_values, written, length  # where the DAG ran
            if positions is not None:  # the readout, its loss and the token write read the positions the DAG ran at
                ctx, value_at, written_at, length_at = (gather_positions(x, positions)
                                                        for x in (ctx, token_values, written, length))
                labels = gather_positions(labels, positions) if labels is not None else None
            # which steps' values begin with the number written so far (all, outside a number)
            follows = canonical_prefix(out['values'], written_at[..., None]) == value_at[..., None]
            dag_sem, step_weights = self.readout(out['feats'], out['emb'], ctx, out['values'], out['distinct'],
                                                 out['leaf_counts'], follows)
            if positions is not None:  # elsewhere no dag_sem: the DAG did not run there
                dag_sem = scatter_positions(dag_sem, positions, h.size(1), 0.0)
        out.update(token_values=token_values, length=length, written=written, step_weights=step_weights)
        if self.config.dag_write_tokens:
            with torch.no_grad():
                ids = next_tokens(out['values'], written_at, {n: getattr(self, n) for n in TABLES})
                out['next_tokens'] = ids if positions is None else scatter_positions(ids, positions, h.size(1), -1)
        losses = []
        if roles is not None:  # what each token is, and for a token of digits also its last digit
            digit = torch.where((roles >= 0) & self.is_digits[idx], (self.digit_value[idx] % 10).long(), -1)
            losses += [labelled_cross_entropy(class_logits, roles), labelled_cross_entropy(digit_logits, digit)]
        if steps is not None:
            losses.append(program_loss(out.pop('programs')))
            if step_weights is not None:
                written_value = torch.where(length_at > 0, value_at, float('nan'))
                losses.append(step_weight_loss(step_weights, out['values'], labels, written_value))
        if ops is not None:  # the op named next to each right operand, where the steps read it (DAGController.step)
            losses.append(OPS_LABEL_WEIGHT * labelled_cross_entropy(out['anchor_logits'], ops))
        return dag_sem, out, sum(losses) if losses else None

    def train_positions(self, length, labels):
        """The positions (B, M) long, ascending, that the DAG runs at in a training step when dag_train_positions
        < 1, M = dag_train_positions x T: first those where a step has a label (labels (B, T, dag_depth) float64,
        NaN where none, or None: what the auxiliary loss teaches) and the positions their DAG runs as (inside an
        answer, the position before it: number_views), then those right after a number ends (later positions read
        their scratch nodes: operand_mask), then the others; at random within a kind, where a row has more of it
        than M leaves room for. A position left out gets no dag_sem in that step, as if its gate were shut;
        evaluation and generation run every position. (Most of a training step's DAG cost is per query
        position. The first two kinds pass M = 19 of 64 in 16% of the numeric corpus's windows, where one random
        draw over both lost ~4% of the labelled positions; labels alone pass it in 0.2%: NOTES.md.)"""
        B, T = length.shape
        score = torch.rand(B, T, device=length.device) + 2 * after_number(length)  # a random order within a kind
        if labels is not None:  # a labelled position, and the one its DAG runs as (number_views)
            labelled = ~labels.isnan().all(-1)
            views = number_views(length, torch.arange(T, device=length.device).expand(B, T))
            score = score + 4 * (labelled | (torch.zeros_like(length).scatter_add(1, views, labelled.long()) > 0))
        M = max(1, round(self.config.dag_train_positions * T))
        return score.topk(M, dim=1).indices.sort(dim=1).values

    def forward(self, idx, targets=None, roles=None, steps=None, ops=None, kv_cache=None, stats=None):
        """As GPT.forward, plus the optional labels roles (B, T), steps (B, T, S) and ops (B, T) (see `dag`), and
        kv_cache a DAGCache (new_kv_cache) for cached generation. stats, a dict, is filled with this pass's diagnostics
        as 0-dim tensors (no host sync): 'lm_loss' and 'aux_loss' (with targets; aux_loss with labels), 'gate'
        (the mean gate), and with gradients enabled 'operand_entropy' (nats), 'max_abs_value' and 'op_<name>',
        each op's share of the DAG's choices."""
        h = self.hidden_states(idx, kv_cache.trunk if kv_cache is not None else None)
        with_stats = stats is not None and torch.is_grad_enabled()  # the DAG's diagnostics are of training steps
        dag_sem, out, value_loss = self.dag(idx, h, roles, steps, ops, cache=kv_cache, with_stats=with_stats)
        gate = torch.sigmoid(self.gate(h).float())  # (B, T, 1)
        x = h + (gate * dag_sem).to(h.dtype)
        if targets is None:  # generation: the logits of the last position only
            h, x = h[:, [-1]], x[:, [-1]]
            if 'next_tokens' in out:
                out['next_tokens'] = out['next_tokens'][:, [-1]]
        logits = self.lm_head(x)
        if self.config.dag_write_tokens:
            logits = self.write_tokens(logits, h, out['next_tokens'])
        if targets is not None:
            loss = F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1), ignore_index=-1)
            lm_loss = loss
            if value_loss is not None:
                loss = loss + self.config.dag_value_loss * value_loss.float()
        else:
            loss = lm_loss = None
        if stats is not None:
            stats.update(gate=gate.detach().mean())
            if lm_loss is not None:
                stats['lm_loss'] = lm_loss.detach()
            if value_loss is not None:
                stats['aux_loss'] = value_loss.detach().float()
            if 'stats' in out:
                dag_stats = out['stats']
                stats.update(operand_entropy=dag_stats['operand_entropy'], max_abs_value=dag_stats['max_abs_value'],
                             **{f'op_{name}': u for name, u in zip(OPS, dag_stats['op_usage'].unbind())})
        return logits, loss

    def write_tokens(self, logits, h, ids):
        """logits (B, T, V) plus a learned bias (from h (B, T, n_embd)) on each DAG step's next token: ids (B, T,
        dag_depth, 2) long from next_tokens (-1: none). How GPT+DAG writes an answer in BPE tokens: the DAG's value
        names the exact token that continues its canonical text as the tokenizer chunks it ("123" then "45"), and
        the language model learns, per position, how far to trust each step. (A symbol the readout embeds, as the
        character path has, would need one input per vocabulary token: the logit path needs none.)"""
        bias = self.token_write(h).float().view(ids.shape) * (ids >= 0)
        return logits.scatter_add(-1, ids.clamp(min=0).flatten(2), bias.flatten(2).to(logits.dtype))

    def new_kv_cache(self, batch_size, max_len):
        """An empty DAGCache: GPT.generate then runs each new token once, through the trunk and the DAG."""
        return DAGCache(self, batch_size, max_len)

    @torch.no_grad()
    def explain(self, idx, decode):
        """What the DAG read and computed at each position of idx (1, T) long, in eval mode: a list of T dicts
        {'token': the token's text, 'numbers': [(text, value)] the numbers visible there (ended at or before it),
        'steps': [(op, a, b, result)] with the operands a, b as text (a number's value, 'step k' for an earlier
        step of the position, 'step k @ -3' for one of the position 3 tokens back, or a non-number token in
        quotes), 'weights': the readout's weight of each step (they sum to 1; equal at dag_depth 1), 'gate': how
        open the gate is (0..1)}. decode: list[int] -> str.
        Position t's DAG computes what predicts token t + 1. Raises ValueError for more than one row."""
        if idx.size(0) != 1:
            raise ValueError(f"explain reads one sequence (1, T), got {tuple(idx.shape)}")
        was_training = self.training
        self.eval()
        h = self.hidden_states(idx)
        _, out, _ = self.dag(idx, h)
        self.train(was_training)
        gate = torch.sigmoid(self.gate(h).float())[0, :, 0].tolist()
        weights = out['step_weights'] if out['step_weights'] is not None else torch.ones_like(out['values'])
        tokens = [decode([i]) for i in idx[0].tolist()]
        length, values = out['length'][0].tolist() + [0], out['token_values'][0].tolist()
        T = len(tokens)
        number = lambda s: ''.join(tokens[s - length[s] + 1:s + 1])  # noqa: E731: the text of the number ending at s
        show = lambda v: format(v, '.15g')  # noqa: E731
        rows = []
        ends = [s for s in range(T) if length[s] > 0 and length[s + 1] <= length[s]]  # a number's last token
        for t in range(T):
            visible = [s for s in ends if s < t] + ([t] if length[t] > 0 else [])  # the current one may still grow

            def node(n):  # a token's number, a scratch node (step j + 1 at position s), or a token's text
                if n >= T:
                    j, s = divmod(n - T, T)
                    return f"step {j + 1}" + ('' if s == t else f" @ {s - t}")
                return show(values[n]) if n in visible else repr(tokens[n])
            steps = [(OPS[o], node(a), node(b), show(v)) for (a, b, o), v in
                     zip(out['choices'][0, t].tolist(), out['values'][0, t].tolist())]
            rows.append({'token': tokens[t], 'numbers': [(number(s), values[s]) for s in visible], 'steps': steps,
                         'weights': weights[0, t].tolist(), 'gate': gate[t]})
        return rows


def format_explanation(row, next_token=''):
    """One line for a row of DAGGPT.explain: 'read 12 @ "12", 345 @ "345"; step 1: add(12, 345) = 357 (w 0.25);
    ...; gate 0.93', preceded by the token it predicts when next_token is given."""
    read = ', '.join(f'{format(v, ".15g")} @ "{text}"' for text, v in row['numbers']) or 'no number'
    steps = '; '.join(f"step {k + 1}: {op}({a}, {b}) = {v} (w {w:.2f})"
                      for k, ((op, a, b, v), w) in enumerate(zip(row['steps'], row['weights'])))
    head = f"-> {next_token!r}: " if next_token else ''
    return f"{head}read {read}; {steps}; gate {row['gate']:.2f}"
