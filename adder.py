"""
The hand-wired 10-digit adder: a 58-parameter GPT that adds two 10-digit numbers with no training.

Where the idea comes from: the public AdderBoard challenge (https://github.com/anadim/AdderBoard), "build the
smallest transformer that can add two 10-digit numbers with >= 99% accuracy", hand-coded category. Its rules, which
this file follows: a genuine autoregressive transformer with self-attention; a standard forward pass (no loops over
digits, no carry variables); generic greedy decoding outside the model (here `model.greedy_decode`, the helper every
model of the project is scored with); unique parameters are counted, fixed sinusoidal position encodings are not.
The ingredients (d_model 4, 2 heads, sinusoidal positions of period 11, rank-1 linear maps, a factorized embedding,
ReLU carry detection, a parabolic logit head) are those its early 130-parameter nanoGPT entry listed; the wiring
and the parameter budget below are worked out here.

Layout (33 tokens, vocab 10, token d is the digit d; `+` and `=` are token 0):

    position  0..9   10   11..20   21   22..32
    token     a      +    b        =    s_0 s_1 ... s_10   (the sum, least significant digit first)

a and b are zero-padded to 10 digits, most significant first, so a_k (the digit of place value 10^k) sits at
position 9 - k and b_k at 20 - k: 11 positions apart, i.e. on the same phase of a period-11 sinusoid. The logits at
position p = 21 + k predict s_k, and the token at p is s_{k-1} (for k = 0, the `=`).

How the one layer adds, at position p = 21 + k (residual lanes DIGIT, COS, SIN, ANSWER):
  - embedding: lane DIGIT holds the digit value of the token, lanes COS/SIN hold A(p) (cos, sin)(2 pi p / 11),
    with A(p) = 10 on the 22 prompt positions and 1 after them.
  - attention: queries and keys read only COS/SIN. Place k sits at phase 9 - k = 30 - p = 8 - p (mod 11), a
    reflection of the query's phase, so the key map is a reflection and each head's query a rotation: head 0 attends
    to phase 8 - p (a_k and b_k, equally, since they share phase and amplitude), head 1 to phase 9 - p (a_{k-1} and
    b_{k-1}; for k = 0 the two separators, both 0). The large prompt amplitude keeps the same-phase answer tokens
    (visible for k >= 5) out of the way. The values are the digits, so the heads return the two averages; the
    output projection writes T = a_k + b_k into ANSWER and -t = -(a_{k-1} + b_{k-1}) into DIGIT, which already
    holds s_{k-1}.
  - MLP: D = t - s_{k-1} is in {-1, 0} without a carry into place k and in {9, 10} with one, so two ReLUs on D give
    the carry c exactly. Whether T + c >= 10 (the output wraps) is a step of z = T + D / 10, which is <= 9 when it
    does not wrap and >= 9.9 when it does: two more ReLUs. The rank-1 second layer adds c - 10 * wrap to ANSWER,
    which then holds the output digit (a_k + b_k + c) mod 10.
  - head: logits_d = -gain (scale * ANSWER + offset - d)^2, a parabola that peaks at the nearest digit.

Parameter budget (every stored number is an nn.Parameter; no buffers):
    token embedding, rank-1: digit values (10) and a direction (4)     14
    query: two rotation angles and a scale                              3
    key: a 2x2 map of the position lanes per head                       8
    value, rank-1: input (4) and output (4) vectors                     8
    output projection: two non-zero entries                             2
    MLP first layer: two rows, each shared by two units (8), 4 biases  12
    MLP second layer, rank-1: hidden (4) and residual (4) vectors       8
    parabolic head: gain, scale, offset                                 3
    total                                                              58

Precision: float32 is enough. Every quantity the MLP thresholds is an integer (or a tenth) up to rounding: over the
whole protocol the ANSWER lane is within 7e-5 of the right digit in float32 (rounding of attention scores up to
2000) and 2e-8 in float64 (where the attention's leak to wrong positions is ~1e-12), against threshold margins of 2
(carry) and 0.2 (wrap). All 10 edge cases and all 10,000 random pairs of the protocol are exact (`python adder.py`).

Can it go smaller? Yes. The budget keeps general shapes, so 22 of the 58 numbers are 0 and 13 more are +-1 (mostly the
one-hot embedding direction, value vectors and MLP read-out, the signed-identity key map, the head's scale and
offset); 23 carry information, 8 of them the digit values 2..9. Fixing those shapes in code, tying the +- pairs
(output projection, MLP read-out) and writing the digit values as d times one scale would leave about 13. The public
AdderBoard hand-coded entries went to about 10, with d_model 2, one head and rotary positions.

Usage:
    python adder.py            # the AdderBoard protocol: accuracy, parameter count, buffer count
    python adder.py 123 456    # the sum, computed by the model
"""

import math
import random
import sys
import time
from dataclasses import dataclass

import torch
import torch.nn as nn
from torch.nn import functional as F
from tqdm import tqdm

from model import greedy_decode

N_DIGITS = 10  # digits per operand
MAX_OPERAND = 10 ** N_DIGITS - 1
PROMPT_LEN = 2 * N_DIGITS + 2  # a, '+', b, '='
SUM_LEN = N_DIGITS + 1

# the four residual lanes
DIGIT, COS, SIN, ANSWER = 0, 1, 2, 3


@dataclass
class AdderConfig:
    # the full sequence is 22 prompt + 11 answer tokens; greedy_decode never feeds more than 32, so it never crops
    # (cropping would shift the absolute positions the model relies on)
    block_size: int = PROMPT_LEN + SUM_LEN
    vocab_size: int = 10
    n_embd: int = 4
    n_head: int = 2
    pos_period: int = N_DIGITS + 1  # one operand plus its separator: a_k and b_k share a phase
    prompt_amplitude: float = 10.0  # position amplitude on the prompt ...
    answer_amplitude: float = 1.0  # ... and on the answer, so answer tokens never win the attention


def sinusoidal_positions(T, config, dtype=torch.float32, device=None):
    """Position features from a formula, no table: (T, n_embd), A(p) * (cos, sin)(2 pi p / period) in lanes COS/SIN,
    A(p) = prompt_amplitude on the first PROMPT_LEN positions and answer_amplitude after them."""
    p = torch.arange(T, dtype=dtype, device=device)
    angle = 2 * math.pi * p / config.pos_period
    amplitude = torch.where(p < PROMPT_LEN, config.prompt_amplitude, config.answer_amplitude).to(dtype)
    pos = torch.zeros(T, config.n_embd, dtype=dtype, device=device)
    pos[:, COS] = amplitude * torch.cos(angle)
    pos[:, SIN] = amplitude * torch.sin(angle)
    return pos


class RankOneEmbedding(nn.Module):
    """Token embedding as an outer product: idx (B, T) -> digit_value[idx] * direction, (B, T, n_embd)."""

    def __init__(self, config):
        super().__init__()
        self.digit_value = nn.Parameter(torch.arange(config.vocab_size, dtype=torch.float32))
        self.direction = nn.Parameter(torch.zeros(config.n_embd))
        with torch.no_grad():
            self.direction[DIGIT] = 1.0

    def forward(self, idx):
        return self.digit_value[idx].unsqueeze(-1) * self.direction


class PlaceValueAttention(nn.Module):
    """Causal self-attention whose heads find the two digits of one place value by position alone.

    x (B, T, n_embd) -> (B, T, n_embd). Per head h: q = q_scale * R(q_angle[h]) (x_COS, x_SIN), k = k_weight[h] (x_COS,
    x_SIN), so the score is q_scale * A(i) A(j) cos(theta_i + theta_j + q_angle[h]) with the reflecting key map below;
    v = v_out * (v_in . x), rank 1; the output projection has two entries, head 0 -> ANSWER and head 1 -> DIGIT.
    Scores are not divided by sqrt(head_size): q_scale sets the sharpness.
    """

    def __init__(self, config):
        super().__init__()
        self.n_head = config.n_head
        theta = 2 * math.pi / config.pos_period
        # score peaks where theta_i + theta_j + angle = 0 (mod 2 pi), i.e. j = c - i (mod period) for angle = -c theta:
        # c = 8 finds place k = i - 21 (a_k, b_k), c = 9 finds place k - 1
        self.q_angle = nn.Parameter(torch.tensor([-8 * theta, -9 * theta]))
        # 20 * A(query) * A(key) * (1 - cos(theta)) >= 31.7 separates the target phase from its neighbours
        self.q_scale = nn.Parameter(torch.tensor(20.0))
        # (n_head, 2, 2): reflect (cos, sin) -> (cos, -sin) so that query and key phases add
        self.k_weight = nn.Parameter(torch.tensor([[[1.0, 0.0], [0.0, -1.0]]] * config.n_head))
        self.v_in = nn.Parameter(torch.zeros(config.n_embd))
        self.v_out = nn.Parameter(torch.zeros(config.n_embd))
        with torch.no_grad():
            self.v_in[DIGIT] = 1.0  # read the digit ...
            self.v_out[0::config.n_embd // config.n_head] = 1.0  # ... into the first value lane of every head
        # the heads average two digits: x2 gives the pair's sum; the previous pair enters with a minus sign
        self.c_proj = nn.Parameter(torch.tensor([2.0, -2.0]))
        self.proj_rows = (ANSWER, DIGIT)  # residual lane written by each entry
        self.proj_cols = (0, config.n_embd // config.n_head)  # first value lane of head 0 and of head 1

    def forward(self, x):
        B, T, C = x.size()
        hs = C // self.n_head
        pos = x[..., [COS, SIN]].unsqueeze(1)  # (B, 1, T, 2)
        cos, sin = torch.cos(self.q_angle), torch.sin(self.q_angle)
        rot = torch.stack((torch.stack((cos, -sin), -1), torch.stack((sin, cos), -1)), -2)  # (nh, 2, 2)
        q = self.q_scale * pos @ rot.transpose(-1, -2)  # (B, nh, T, 2)
        k = pos @ self.k_weight.transpose(-1, -2)  # (B, nh, T, 2)
        v = (x @ self.v_in).unsqueeze(-1) * self.v_out  # (B, T, C)
        v = v.view(B, T, self.n_head, hs).transpose(1, 2)  # (B, nh, T, hs)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=1.0)
        y = y.transpose(1, 2).reshape(B, T, C)  # heads side by side
        w = torch.zeros(C, C, dtype=x.dtype, device=x.device).index_put(
            (torch.tensor(self.proj_rows, device=x.device), torch.tensor(self.proj_cols, device=x.device)), self.c_proj)
        return y @ w.t()


class CarryMLP(nn.Module):
    """Two rows of ReLU thresholds and a rank-1 read-out: x (B, T, n_embd) -> (B, T, n_embd).

    Hidden units 0, 1 share row 0 (z = D, the carry test), units 2, 3 share row 1 (z = T + D / 10, the wrap test);
    the second layer writes (hidden . fc2_in) * fc2_out, i.e. c - 10 * wrap into ANSWER.
    """

    def __init__(self, config):
        super().__init__()
        # D = t - s_{k-1} = -DIGIT after attention; T = ANSWER
        self.fc1_rows = nn.Parameter(torch.zeros(2, config.n_embd))
        with torch.no_grad():
            self.fc1_rows[0, DIGIT] = -1.0
            self.fc1_rows[1, DIGIT] = -0.1
            self.fc1_rows[1, ANSWER] = 1.0
        # carry: D in {-1, 0} -> 0, D in {9, 10} -> 1, a ramp from 2 to 7; wrap: z <= 9 -> 0, z >= 9.9 -> 1, a ramp
        # from 9.2 to 9.7; both ramps sit in the middle of their gaps
        self.fc1_bias = nn.Parameter(torch.tensor([-2.0, -7.0, -9.2, -9.7]))
        self.fc2_in = nn.Parameter(torch.tensor([1 / 5, -1 / 5, -10 / 0.5, 10 / 0.5]))
        self.fc2_out = nn.Parameter(torch.zeros(config.n_embd))
        with torch.no_grad():
            self.fc2_out[ANSWER] = 1.0

    def forward(self, x):
        z = x @ self.fc1_rows.t()  # (B, T, 2)
        h = F.relu(z.repeat_interleave(2, dim=-1) + self.fc1_bias)  # (B, T, 4)
        return (h @ self.fc2_in).unsqueeze(-1) * self.fc2_out


class ParabolicHead(nn.Module):
    """Logits from the ANSWER lane: x (B, T, n_embd) -> (B, T, vocab_size), -gain * (scale * x_ANSWER + offset - d)^2.
    The parabola peaks at d = scale * x_ANSWER + offset, so the argmax is the nearest digit."""

    def __init__(self, config):
        super().__init__()
        self.gain = nn.Parameter(torch.tensor(20.0))  # a digit off costs 20 nats: the loss of a right answer is ~4e-9
        self.scale = nn.Parameter(torch.tensor(1.0))
        self.offset = nn.Parameter(torch.tensor(0.0))
        self.vocab_size = config.vocab_size

    def forward(self, x):
        y = self.scale * x[..., ANSWER:ANSWER + 1] + self.offset
        d = torch.arange(self.vocab_size, dtype=x.dtype, device=x.device)
        return -self.gain * (y - d) ** 2


class HandWiredAdder(nn.Module):
    """A one-layer GPT without layer norm whose 58 weights are set by hand to add two 10-digit numbers.

    forward(idx, targets=None) -> (logits, loss) as in nanoGPT's GPT: idx LongTensor (B, T) of tokens 0..9 laid out
    as in the module docstring, T <= block_size (33); logits (B, T, 10) in the parameters' dtype (float32 unless
    converted); loss the cross-entropy against targets (B, T) (-1 ignored) or None. Raises ValueError for a
    longer sequence.
    """

    def __init__(self, config=None):
        super().__init__()
        self.config = config if config is not None else AdderConfig()
        self.wte = RankOneEmbedding(self.config)
        self.attn = PlaceValueAttention(self.config)
        self.mlp = CarryMLP(self.config)
        self.head = ParabolicHead(self.config)

    def forward(self, idx, targets=None):
        B, T = idx.size()
        if T > self.config.block_size:
            raise ValueError(f"Cannot forward sequence of length {T}, block size is only {self.config.block_size}: "
                             f"the adder reads one prompt of {PROMPT_LEN} tokens and writes {SUM_LEN}")
        x = self.wte(idx) + sinusoidal_positions(T, self.config, self.wte.direction.dtype, idx.device)  # (B, T, C)
        x = x + self.attn(x)
        x = x + self.mlp(x)
        logits = self.head(x)  # (B, T, vocab_size)
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1), ignore_index=-1)
        return logits, loss


def build_model():
    """-> (model, metadata): the hand-wired adder in eval mode and a dict with name, n_params, n_buffers,
    description."""
    model = HandWiredAdder().eval()
    metadata = dict(
        name='hand-wired adder (nanoGPT-DAG)',
        n_params=sum(p.numel() for p in model.parameters()),
        n_buffers=sum(b.numel() for b in model.buffers()),
        description='1-layer GPT, d_model 4, 2 heads, no layer norm, period-11 sinusoidal positions, '
                    'rank-1 maps, ReLU carry thresholds, parabolic head; weights set by hand',
    )
    return model, metadata


def encode_prompt(a, b):
    """Operands a, b (ints in [0, 9999999999]) -> the prompt, LongTensor (1, 22). Raises ValueError out of range."""
    for name, n in (('a', a), ('b', b)):
        if not isinstance(n, int) or not 0 <= n <= MAX_OPERAND:
            raise ValueError(f"operand {name}={n!r} must be an int in [0, {MAX_OPERAND}]")
    tokens = [int(c) for c in f'{a:0{N_DIGITS}d}'] + [0] + [int(c) for c in f'{b:0{N_DIGITS}d}'] + [0]
    return torch.tensor([tokens], dtype=torch.long)


def add(model, a, b):
    """a + b as the model computes it: encode, greedy-decode 11 tokens with model.greedy_decode, read them as the
    digits of the sum, least significant first. -> int."""
    idx = encode_prompt(a, b).to(next(model.parameters()).device)
    digits = greedy_decode(model, idx, SUM_LEN)[0, PROMPT_LEN:].tolist()
    return sum(d * 10 ** i for i, d in enumerate(digits))


# AdderBoard-style edge cases: boundaries and the longest carry chains
EDGE_CASES = [
    (0, 0),
    (9999999999, 1),  # a carry through all ten places into the eleventh digit
    (9999999999, 9999999999),  # the largest sum
    (5000000000, 5000000000),  # one carry, out of the top place
    (1234567890, 9876543210),  # mixed digits, 11-digit sum
    (0, 9999999999),  # all nines and no carry
    (1111111111, 8888888888),  # a nine in every place: any stray carry would ripple
    (5555555555, 4444444445),  # a carry out of every place, started at the bottom
    (4999999999, 5000000001),  # a carry from the bottom through nines into the top place
    (9090909090, 1010101010),  # carries in alternate places
]


def random_pairs(n_random=10000, seed=2025):
    """The protocol's random operands: [(a, b)] * n_random, a = rng.randint(0, 9999999999) then b the same,
    with rng = random.Random(seed)."""
    rng = random.Random(seed)
    return [(rng.randint(0, MAX_OPERAND), rng.randint(0, MAX_OPERAND)) for _ in range(n_random)]


def evaluate(model_or_build_fn, add_fn, n_random=10000, seed=2025, progress=False):
    """Score any model on the AdderBoard protocol: the 10 EDGE_CASES, then n_random pairs drawn with
    random.Random(seed) as a = rng.randint(0, 9999999999); b = rng.randint(0, 9999999999). Passes at 99% accuracy.

    model_or_build_fn: an nn.Module, or a function -> (model, metadata) such as build_model.
    add_fn(model, a, b) -> int. Returns a dict: name, n_params, n_buffers (numbers stored as parameters / buffers),
    edge_correct, edge_total, random_correct, random_total, accuracy (over the random pairs), passed,
    failures (up to 10 (a, b, got, expected)), seconds. progress: a tqdm bar on stderr.
    """
    if isinstance(model_or_build_fn, nn.Module):
        model, metadata = model_or_build_fn, dict(name=type(model_or_build_fn).__name__)
    else:
        model, metadata = model_or_build_fn()
    randoms = random_pairs(n_random, seed)
    failures = []

    def n_correct(pairs, desc):
        correct = 0
        for a, b in tqdm(pairs, desc=desc, unit='pair', disable=not progress, leave=False):
            got = add_fn(model, a, b)
            if got == a + b:
                correct += 1
            elif len(failures) < 10:
                failures.append((a, b, got, a + b))
        return correct

    t0 = time.time()
    edge_correct = n_correct(EDGE_CASES, 'edge cases')
    random_correct = n_correct(randoms, f'random pairs (seed {seed})')
    accuracy = random_correct / n_random if n_random else 1.0
    return dict(
        name=metadata.get('name', type(model).__name__),
        n_params=sum(p.numel() for p in model.parameters()),
        n_buffers=sum(b.numel() for b in model.buffers()),
        edge_correct=edge_correct, edge_total=len(EDGE_CASES),
        random_correct=random_correct, random_total=n_random,
        accuracy=accuracy, passed=accuracy >= 0.99,
        failures=failures, seconds=time.time() - t0,
    )


if __name__ == '__main__':
    # a 4-wide model gains nothing from intra-op threads, and they spin when other work holds the cores (5x slower)
    torch.set_num_threads(1)
    if len(sys.argv) == 3:
        model, _ = build_model()
        a, b = int(sys.argv[1]), int(sys.argv[2])
        print(f'{a} + {b} = {add(model, a, b)}')
    elif len(sys.argv) == 1:
        r = evaluate(build_model, add, progress=True)
        print(f"{r['name']}: {r['n_params']} parameters, {r['n_buffers']} buffers")
        print(f"edge cases: {r['edge_correct']}/{r['edge_total']}")
        print(f"random pairs (seed 2025): {r['random_correct']}/{r['random_total']} = {100 * r['accuracy']:.2f}%")
        print(f"{'PASS' if r['passed'] else 'FAIL'} (>= 99%) in {r['seconds']:.1f} s")
        for a, b, got, want in r['failures']:
            print(f'  {a} + {b}: got {got}, expected {want}')
    else:
        sys.exit('usage: python adder.py [a b]  (a, b integers in [0, 9999999999])')
