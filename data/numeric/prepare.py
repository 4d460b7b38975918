"""
The built-in numeric corpus: arithmetic written in text with its exact answers, one character per token.

Generated from a seed, no download. Each problem is one line, prompt + answer + "\n", and the prompt ends exactly
where the answer starts:

    12 + 345 = 357
    the larger of -3 and 1,700 is 1700
    log2(64) = 6
    What is 2.5k divided by 4? 625
    (3 + 4) * 5 = 35

It covers the DAG's nine ops (add, subtract, multiply, divide, log, pow, max, min, identity) alone and in 2-3 step
expressions, in several phrasings each, with numbers written as "12345", "12,345", "12.5", "-7" or "2.5k". Answers are
always canonical: optional '-', digits, optional '.' and the fewest fractional digits ("0", never "-0"). All
arithmetic is done in Fraction and operands are chosen so that every answer is exact and short (division terminates
within 2 decimals, log is log_b(b^k), pow has small integer exponents).

Splits: train / val / test share one distribution (integer parts of operands up to max_digits digits; no test prompt
is a train or val prompt); extrap has operands with max_digits+1 .. max_digits+2 integer digits, results below 2^53.

Writes into out_dir, like nanoGPT's shakespeare_char:
    train.bin, val.bin               np.uint16 char ids
    meta.pkl                         {'vocab_size', 'itos', 'stoi'} over the fixed ALPHABET
    train_values.bin, val_values.bin np.float64, aligned 1:1 with train.bin / val.bin: the exact value of each number
                                     at its last char ("3k" is 3000.0 at its 'k'), NaN elsewhere (--no-values skips)
    problems.jsonl                   held-out test and extrap problems with their exact answers, for evaluation

$ python data/numeric/prepare.py [--out_dir DIR] [--seed 1337] [--n_train 200000] [--max_digits 4] [--no-values]
"""
import argparse
import json
import os
import pickle
import random
import re
import time
from fractions import Fraction

import numpy as np
from tqdm import tqdm

OPS = ("add", "subtract", "multiply", "divide", "log", "pow", "max", "min", "identity")
CATEGORIES = OPS + ("multi",)  # what a problem is drawn from, uniformly; "multi" is a 2-3 step expression
SPLITS = ("train", "val", "test", "extrap")
MULTI_OPS = ("add", "subtract", "multiply", "divide", "max", "min")
SYMBOLS = {"add": "+", "subtract": "-", "multiply": "*", "divide": "/"}
ARITH = {
    "add": lambda a, b: a + b,
    "subtract": lambda a, b: a - b,
    "multiply": lambda a, b: a * b,
    "divide": lambda a, b: a / b,
    "max": max,
    "min": min,
}

# Phrasings. In every template {a} comes before {b} in the op's own order (a - b, a / b, log base a of b, a^b),
# except "Subtract {b} from {a}". For "multi", {a} is the whole expression; a template without a space is written
# compactly ("(3+4)*5=").
TEMPLATES = {
    "add": ("{a} + {b} = ", "{a}+{b}=", "What is {a} plus {b}? ", "the sum of {a} and {b} is ",
            "{a} plus {b} equals ", "Add {a} and {b}: "),
    "subtract": ("{a} - {b} = ", "{a}-{b}=", "What is {a} minus {b}? ", "the difference of {a} and {b} is ",
                 "{a} minus {b} equals ", "Subtract {b} from {a}: "),
    "multiply": ("{a} * {b} = ", "{a}*{b}=", "What is {a} times {b}? ", "the product of {a} and {b} is ",
                 "{a} multiplied by {b} equals ", "Multiply {a} by {b}: "),
    "divide": ("{a} / {b} = ", "{a}/{b}=", "What is {a} divided by {b}? ", "the quotient of {a} and {b} is ",
               "{a} divided by {b} equals ", "Divide {a} by {b}: "),
    "log": ("log{a}({b}) = ", "log_{a}({b})=", "What is log base {a} of {b}? ", "the logarithm base {a} of {b} is ",
            "log base {a} of {b} equals "),
    "pow": ("{a}^{b} = ", "{a}^{b}=", "{a}**{b} = ", "What is {a} to the power of {b}? ", "{a} to the power of {b} is ",
            "{a} raised to the power {b} equals "),
    "max": ("max({a}, {b}) = ", "max({a}, {b})=", "What is the maximum of {a} and {b}? ", "the larger of {a} and {b} is ",
            "Which is larger, {a} or {b}? "),
    "min": ("min({a}, {b}) = ", "min({a}, {b})=", "What is the minimum of {a} and {b}? ",
            "the smaller of {a} and {b} is ", "Which is smaller, {a} or {b}? "),
    "identity": ("{a} = ", "Write {a} as digits: ", "{a} in digits is ", "What number is {a}? ", "{a} written out is "),
    "multi": ("{a} = ", "{a}=", "What is {a}? ", "Compute {a}: ", "{a} equals "),
}
PLACEHOLDER = re.compile(r"\{(\w+)\}")


def _alphabet():
    chars = set("\n0123456789-.,k")  # line end, and numbers in every prompt format
    chars |= set("".join(SYMBOLS.values()) + "".join(MULTI_OPS) + "(), ")  # multi-step expressions
    for templates in TEMPLATES.values():
        for template in templates:
            chars |= set(PLACEHOLDER.sub("", template))
    return "".join(sorted(chars))


# Every char any phrasing can produce, sorted: the vocabulary does not depend on the seed or the sizes.
ALPHABET = _alphabet()

# Number formats in prompts. Relative weights; comma and k need 4+ integer digits. Identity problems are about
# normalising formats, so they rarely show a plain number.
STYLE_WEIGHTS = {"plain": 6, "comma": 2, "decimal": 1, "k": 2}
IDENTITY_STYLE_WEIGHTS = {"plain": 1, "comma": 3, "decimal": 2, "k": 3}
P_NEGATIVE = 0.15
MAX_FRAC_DIGITS = 2
MAX_EXPONENT = 10
NUMBER = re.compile(r"(-?)(\d{1,3}(?:,\d{3})+|\d+)(?:\.(\d+))?(k?)")


def parse_number(s):
    """Exact value of one number in any prompt format: "12345", "12,345", "-7", "12.5", "3k", "2.5k" -> Fraction.

    Raises ValueError for anything else (spaces, a lone '-', misplaced separators).
    """
    m = NUMBER.fullmatch(s)
    if m is None:
        raise ValueError(f"parse_number: {s!r} is not a number in a prompt format such as '12,345', '-7', '12.5', '2.5k'")
    sign, int_part, frac, k = m.groups()
    x = Fraction(int(int_part.replace(",", "")))
    if frac:
        x += Fraction(int(frac), 10 ** len(frac))
    if k:
        x *= 1000
    return -x if sign else x


def _frac_digits(x, limit=32):
    """Fewest decimals that write Fraction x exactly, or None if it needs more than limit (or never terminates)."""
    for k in range(limit + 1):
        if (x * 10**k).denominator == 1:
            return k
    return None


def format_answer(x):
    """The canonical text of an exact value: optional '-', digits, optional '.' and the fewest fractional digits.

    Fraction(5, 2) -> "2.5", Fraction(-3000) -> "-3000", Fraction(0) -> "0". Raises ValueError if x has no finite
    decimal expansion (e.g. 1/3).
    """
    x = Fraction(x)
    k = _frac_digits(x)
    if k is None:
        raise ValueError(f"format_answer: {x} has no short finite decimal expansion; choose operands that divide exactly")
    int_part, frac = divmod(int(abs(x) * 10**k), 10**k)
    return ("-" if x < 0 else "") + str(int_part) + (f".{frac:0{k}d}" if k else "")


def _int_digits(x):
    """Number of digits in the integer part of |x| (0.5 -> 1, -12.5 -> 2, 3000 -> 4)."""
    return len(str(int(abs(x))))


def _fits(x, bound):
    return abs(x) < bound and (x * 10**MAX_FRAC_DIGITS).denominator == 1


def _rand_int(rng, digits):
    return rng.randint(0 if digits == 1 else 10 ** (digits - 1), 10**digits - 1)


def _rand_frac(rng, frac_digits):
    """Fractional part with frac_digits decimals, the last one non-zero: (digit text, Fraction in (0, 1))."""
    f = rng.randrange(10 ** (frac_digits - 1)) * 10 + rng.randint(1, 9)
    return f"{f:0{frac_digits}d}", Fraction(f, 10**frac_digits)


def _sample_number(rng, digits, negative=True, decimal=True, weights=STYLE_WEIGHTS):
    """A random number with `digits` integer digits, written in a random prompt format: (text, Fraction)."""
    styles = [s for s in weights if (s != "decimal" or decimal) and (s not in ("comma", "k") or digits >= 4)]
    style = rng.choices(styles, [weights[s] for s in styles])[0]
    if style == "k":  # mantissa with digits-3 integer digits and 0-2 decimals: "3k", "2.5k", "12.25k"
        n = _rand_int(rng, digits - 3)
        text, value = str(n), Fraction(n)
        frac_digits = rng.choice((0, 0, 1, 2))
        if frac_digits:
            frac_text, frac = _rand_frac(rng, frac_digits)
            text, value = f"{text}.{frac_text}", value + frac
        text, value = text + "k", value * 1000
    else:
        n = _rand_int(rng, digits)
        text, value = (f"{n:,}" if style == "comma" else str(n)), Fraction(n)
        if style == "decimal":
            if digits >= 4 and rng.random() < 0.5:
                text = f"{n:,}"
            frac_text, frac = _rand_frac(rng, rng.randint(1, MAX_FRAC_DIGITS))
            text, value = f"{text}.{frac_text}", value + frac
    if negative and value != 0 and rng.random() < P_NEGATIVE:
        text, value = "-" + text, -value
    return text, value


def _render(rng, x):
    """Write a computed value (<= 2 decimals) in a random prompt format that fits it: "12,000", "12k" or "12000"."""
    sign, ax = ("-" if x < 0 else ""), abs(x)
    if ax >= 1000 and (ax / 10).denominator == 1 and rng.random() < 0.3:
        return sign + format_answer(ax / 1000) + "k", x
    if ax >= 1000 and rng.random() < 0.3:
        int_text, _, frac_text = format_answer(ax).partition(".")
        return sign + f"{int(int_text):,}" + ("." + frac_text if frac_text else ""), x
    return format_answer(x), x


def _multiple_of(rng, d, lo, hi):
    """A dividend a = q * d with lo..hi integer digits and a quotient q of <= 2 decimals; None if there is none."""
    frac_digits = rng.choice((0, 0, 0, 1, 2)) if d.denominator == 1 else 0
    scale = 10**frac_digits
    smallest = 0 if lo == 1 else 10 ** (lo - 1)
    n_min = max(1, -(-smallest * scale // abs(d)))  # q = n / scale, ceil division
    n_max = -(-(10**hi) * scale // abs(d)) - 1
    if n_min > n_max:
        return None
    a = Fraction(rng.randint(n_min, n_max), scale) * d * rng.choice((1, -1))
    return a if _fits(a, float("inf")) else None


def _one_step(rng, op, lo, hi, bound):
    """Operands [(text, value), ...] and the exact result of one op, or None when this draw does not fit."""
    if op in ARITH and op != "divide":
        a = _sample_number(rng, rng.randint(lo, hi))
        b = _sample_number(rng, rng.randint(lo, hi))
        operands, result = [a, b], ARITH[op](a[1], b[1])
    elif op == "divide":  # draw the divisor and quotient, so the quotient is exact by construction
        digits = rng.randint(lo, hi)
        b = _sample_number(rng, rng.randint(1, digits), decimal=rng.random() < 0.2)
        a_value = None if b[1] == 0 else _multiple_of(rng, b[1], digits, digits)
        if a_value is None:
            return None
        operands, result = [_render(rng, a_value), b], a_value / b[1]
    elif op == "log":  # log base b of b^k: integer answers
        base, digits = rng.randint(2, 10), rng.randint(lo, hi)
        k = rng.choice([k for k in range(64) if _int_digits(base**k) == digits])
        operands, result = [(str(base), Fraction(base)), _render(rng, Fraction(base**k))], Fraction(k)
    elif op == "pow":  # small non-negative integer exponent, result within the bound and <= 2 decimals
        a = _sample_number(rng, rng.randint(lo, hi), negative=False, decimal=rng.random() < 0.3)
        exps = [e for e in range(MAX_EXPONENT + 1) if _fits(a[1] ** e, bound) and (e or a[1])]
        big = [e for e in exps if e >= 2]
        e = rng.choice(big if big and rng.random() < 0.8 else exps)
        operands, result = [a, (str(e), Fraction(e))], a[1] ** e
    else:  # identity
        a = _sample_number(rng, rng.randint(lo, hi), weights=IDENTITY_STYLE_WEIGHTS)
        operands, result = [a], a[1]
    return (operands, result) if _fits(result, bound) else None


# A multi-step expression is a tree: a leaf is (text, value), a node is (op, left, right, value).
def _expr(rng, n_ops, lo, hi, bound):
    """A random expression with n_ops ops whose every node value fits; None when this draw does not fit."""
    if n_ops == 0:
        return _sample_number(rng, rng.randint(lo, hi))
    op = rng.choice(MULTI_OPS)
    if op == "divide":  # the dividend is a leaf, drawn as a multiple of the divisor's value
        right = _expr(rng, n_ops - 1, lo, hi, bound)
        a = None if right is None or right[-1] == 0 else _multiple_of(rng, right[-1], lo, hi)
        if a is None:
            return None
        left = _render(rng, a)
    else:
        n_left = rng.randint(0, n_ops - 1)
        left, right = _expr(rng, n_left, lo, hi, bound), _expr(rng, n_ops - 1 - n_left, lo, hi, bound)
        if left is None or right is None:
            return None
    value = ARITH[op](left[-1], right[-1])
    return (op, left, right, value) if _fits(value, bound) else None


def _precedence(node):
    return {"add": 1, "subtract": 1, "multiply": 2, "divide": 2}.get(node[0], 3) if len(node) == 4 else 3


def _expr_parts(node, compact):
    """The expression as text pieces and (text, value) numbers, with only the parentheses it needs."""
    if len(node) == 2:
        return [node]
    op, left, right, _ = node
    left_parts, right_parts = _expr_parts(left, compact), _expr_parts(right, compact)
    if op in ("max", "min"):
        return [op + "("] + left_parts + [", "] + right_parts + [")"]
    if _precedence(left) < _precedence(node):
        left_parts = ["("] + left_parts + [")"]
    if _precedence(right) <= _precedence(node):  # a - (b + c), a / (b * c)
        right_parts = ["("] + right_parts + [")"]
    return left_parts + [SYMBOLS[op] if compact else f" {SYMBOLS[op]} "] + right_parts


def _leaves_and_ops(node):
    """Leaf values in text order and op names in evaluation order."""
    if len(node) == 2:
        return [node[1]], []
    left_leaves, left_ops = _leaves_and_ops(node[1])
    right_leaves, right_ops = _leaves_and_ops(node[2])
    return left_leaves + right_leaves, left_ops + right_ops + [node[0]]


def make_problem(rng, split, max_digits=4, op=None):
    """One random problem of a split, drawn with rng (a random.Random).

    op: one of CATEGORIES (OPS or "multi"), or None for a uniform draw. Returns a dict with
        text    prompt + answer + "\n"
        prompt, answer (canonical str), value (float), op (op name, or "multi"), ops (list of op names), steps (int),
        digits  (max integer digits among the operands), split
        values  [(index of the last char of a number in text, its exact value as float), ...] for every number
    Raises ValueError for an unknown split or op.
    """
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
    if split == "extrap":  # longer operands than anything in training; float64 still holds every result exactly
        lo, hi, bound = max_digits + 1, max_digits + 2, 2**53
    else:
        lo, hi, bound = 1, max_digits, min(10 ** (2 * max_digits), 2**53)
    if op is not None and op not in CATEGORIES:
        raise ValueError(f"unknown op {op!r}; expected one of {CATEGORIES} or None")
    op = op or rng.choice(CATEGORIES)
    template = rng.choice(TEMPLATES[op])
    for _ in range(1000):
        if op == "multi":
            tree = _expr(rng, rng.randint(2, 3), lo, hi, bound)
            drawn = tree and ([_expr_parts(tree, compact=" " not in template)], tree[-1])
        else:
            drawn = _one_step(rng, op, lo, hi, bound)
            drawn = drawn and ([[number] for number in drawn[0]], drawn[1])
        if drawn:
            break
    else:
        raise RuntimeError(f"make_problem: no {op!r} problem fits max_digits={max_digits}; use a smaller max_digits")
    fields, result = drawn
    if op == "multi":
        leaves, ops = _leaves_and_ops(tree)
    else:
        leaves, ops = [number[0][1] for number in fields], [op]
    answer = format_answer(result)

    pieces, values, pos = [], [], 0
    names = PLACEHOLDER.split(template)  # literal, name, literal, name, ..., literal
    parts = [part for i, name in enumerate(names) for part in (fields["ab".index(name)] if i % 2 else [name])]
    for part in parts + [(answer, result), "\n"]:
        if isinstance(part, tuple):
            part, value = part
            values.append((pos + len(part) - 1, float(value)))
        pieces.append(part)
        pos += len(part)
    text = "".join(pieces)
    return {
        "prompt": text[: -len(answer) - 1], "answer": answer, "value": float(result),
        "op": op, "ops": ops, "steps": len(ops), "digits": max(_int_digits(x) for x in leaves), "split": split,
        "text": text, "values": values,
    }


def _held_out(rng, split, n, max_digits):
    """n distinct problems, balanced over CATEGORIES (round robin)."""
    problems, prompts = [], set()
    for i in range(n):
        while True:
            p = make_problem(rng, split, max_digits, op=CATEGORIES[i % len(CATEGORIES)])
            if p["prompt"] not in prompts:
                break
        prompts.add(p["prompt"])
        problems.append(p)
    return problems


def _stream(rng, split, n, max_digits, exclude):
    """n problems whose prompts are not in exclude, as one text, its value labels (positions, values) and answer
    spans (start, end, value): the positions from the prompt's last char to the answer's last char."""
    pieces, positions, values, answers, pos = [], [], [], [], 0
    for _ in tqdm(range(n), desc=f"numeric {split}", disable=n < 50_000, mininterval=1.0):
        p = make_problem(rng, split, max_digits)
        while p["prompt"] in exclude:
            p = make_problem(rng, split, max_digits)
        pieces.append(p["text"])
        for i, value in p["values"]:
            positions.append(pos + i)
            values.append(value)
        answers.append((pos + len(p["prompt"]) - 1, pos + len(p["text"]) - 2, p["value"]))
        pos += len(p["text"])
    return "".join(pieces), positions, values, answers


# {split}_answers.bin (float64, aligned with the text): the problem's answer value at every position from the
# prompt's last char to the answer's last char, NaN elsewhere: where the DAG should hold the answer.
# The role each character plays in a number, in the order of dag_model.CLASSES (the DAG's value extractor):
# written as {split}_roles.bin next to the value labels, for the auxiliary loss that teaches the extractor
ROLES = ("other",) + tuple("0123456789") + ("sep", "point", "k", "minus")
_ROLE_OF = {**{d: ROLES.index(d) for d in "0123456789"}, ",": ROLES.index("sep"), ".": ROLES.index("point"),
            "k": ROLES.index("k")}


def number_roles(text, positions, values):
    """np.uint8 (len(text),): the ROLES index of every char; a number is the run of digits, ',', '.' and 'k'
    that ends at a labelled position, plus a leading '-' when its value is negative; all else is "other"."""
    roles = np.zeros(len(text), dtype=np.uint8)
    for end, value in zip(positions, values):
        i = end
        while i >= 0 and text[i] in _ROLE_OF:
            roles[i] = _ROLE_OF[text[i]]
            i -= 1
        if value < 0 and i >= 0 and text[i] == "-":
            roles[i] = ROLES.index("minus")
    return roles


def encode(text):
    """Char ids of text over ALPHABET: np.uint16 (len(text),). Raises ValueError for a char outside ALPHABET."""
    unknown = set(text) - set(ALPHABET)
    if unknown:
        raise ValueError(f"chars {sorted(unknown)} are not in ALPHABET; add them to the templates' alphabet")
    table = np.zeros(128, dtype=np.uint16)
    table[[ord(c) for c in ALPHABET]] = np.arange(len(ALPHABET), dtype=np.uint16)
    return table[np.frombuffer(text.encode("ascii"), dtype=np.uint8)]


def prepare(out_dir, seed=1337, n_train=200_000, n_val=None, n_test=2000, n_extrap=1000, max_digits=4, values=True):
    """Generate the corpus into out_dir (created if missing); same seed and sizes give byte-identical files.

    n_val defaults to 5% of n_train. max_digits (1..6) bounds the integer digits of train/val/test operands; extrap
    uses max_digits+1 .. max_digits+2. Returns a summary dict: problems and chars per split, vocab_size, paths, seconds.
    """
    if not 1 <= max_digits <= 6:
        raise ValueError(f"max_digits={max_digits}: use 1..6, so that extrap results stay below 2^53")
    n_val = n_train // 20 if n_val is None else n_val
    t0 = time.time()
    os.makedirs(out_dir, exist_ok=True)
    rngs = {split: random.Random(f"numeric:{seed}:{split}") for split in SPLITS}  # one stream per split
    held_out = {split: _held_out(rngs[split], split, n, max_digits)
                for split, n in (("test", n_test), ("extrap", n_extrap))}
    test_prompts = {p["prompt"] for p in held_out["test"]}

    paths = {"meta": os.path.join(out_dir, "meta.pkl"), "problems": os.path.join(out_dir, "problems.jsonl")}
    summary = {"seed": seed, "max_digits": max_digits, "vocab_size": len(ALPHABET), "paths": paths}
    for split, n in (("train", n_train), ("val", n_val)):
        text, positions, labels, answers = _stream(rngs[split], split, n, max_digits, exclude=test_prompts)
        paths[split] = os.path.join(out_dir, f"{split}.bin")
        encode(text).tofile(paths[split])
        values_path = os.path.join(out_dir, f"{split}_values.bin")
        roles_path = os.path.join(out_dir, f"{split}_roles.bin")
        answers_path = os.path.join(out_dir, f"{split}_answers.bin")
        if values:
            aux = np.full(len(text), np.nan, dtype=np.float64)
            aux[positions] = labels
            aux.tofile(values_path)
            number_roles(text, positions, labels).tofile(roles_path)
            aux = np.full(len(text), np.nan, dtype=np.float64)
            for start, end, value in answers:
                aux[start:end + 1] = value
            aux.tofile(answers_path)
            paths.update({f"{split}_values": values_path, f"{split}_roles": roles_path, f"{split}_answers": answers_path})
        else:  # a stale file from an earlier run would no longer be aligned
            for path in (values_path, roles_path, answers_path):
                if os.path.exists(path):
                    os.remove(path)
        summary[split] = {"problems": n, "chars": len(text)}

    with open(paths["meta"], "wb") as f:
        pickle.dump({"vocab_size": len(ALPHABET), "itos": dict(enumerate(ALPHABET)),
                     "stoi": {c: i for i, c in enumerate(ALPHABET)}}, f)
    keys = ("prompt", "answer", "value", "op", "ops", "steps", "digits", "split")
    with open(paths["problems"], "w") as f:
        for split in ("test", "extrap"):
            encode("".join(p["text"] for p in held_out[split]))  # same alphabet check as the .bin files
            for p in held_out[split]:
                f.write(json.dumps({k: p[k] for k in keys}) + "\n")
            summary[split] = {"problems": len(held_out[split])}
    summary["seconds"] = round(time.time() - t0, 2)
    return summary


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Generate the built-in numeric corpus (no download).")
    parser.add_argument("--out_dir", default=os.path.dirname(os.path.abspath(__file__)))
    parser.add_argument("--seed", type=int, default=1337)
    parser.add_argument("--n_train", type=int, default=200_000)
    parser.add_argument("--n_val", type=int, default=None, help="default: 5%% of n_train")
    parser.add_argument("--n_test", type=int, default=2000)
    parser.add_argument("--n_extrap", type=int, default=1000)
    parser.add_argument("--max_digits", type=int, default=4, help="integer digits of train/val/test operands")
    parser.add_argument("--values", action=argparse.BooleanOptionalAction, default=True,
                        help="write {train,val}_values.bin and _roles.bin (aux targets for the DAG's extractor)")
    args = parser.parse_args()
    s = prepare(args.out_dir, args.seed, args.n_train, args.n_val, args.n_test, args.n_extrap, args.max_digits,
                args.values)
    print(f"numeric corpus, seed {s['seed']}, max_digits {s['max_digits']}, vocab size {s['vocab_size']}, "
          f"{s['seconds']:.1f}s")
    for split in ("train", "val"):
        print(f"{split}: {s[split]['problems']:,} problems, {s[split]['chars']:,} chars")
    print(f"test: {s['test']['problems']:,} problems, extrap: {s['extrap']['problems']:,} problems")
    for name, path in s["paths"].items():
        print(f"  {name:13s} {path}")
