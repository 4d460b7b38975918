"""
The built-in numeric corpus: arithmetic written in text with its exact answers, one character per token.

Generated from a seed, no download. Each problem is one line, prompt + answer + "\n", and the prompt ends exactly
where the answer starts:

    12 + 345 = 357
    the larger of -3 and 1,700 is 1700
    log_2(64) = 6
    What is 2.5k divided by 4? 625
    Calculate (3 + 4) * (-5) - max(2, 0.25): -37

It covers the DAG's nine ops (dag_model.OPS) alone and in expressions of 2..max_ops ops ("multi", at most
MAX_STEPS), in 12 phrasings each (TEMPLATES, words and symbols) plus 3 held-out ones (HELD_OUT_TEMPLATES) that only
the "phrasing" split uses; half of the train and val problems use one of 66-161 more per category instead
(COMPOSED_TEMPLATES: frames such as "Tell me {q}. " around cores such as "the total of {a} and {b}"; P_FILLER of
them made-up words around a core instead, "Zovi 3 plus 4 temak "). Prompt numbers
are written "12345", "12,345", "12.5" (1..9 decimals), "2.5k", negative in any position ("-7", "3 - (-4)",
"(-4) * 5"). Answers are canonical: optional '-', digits, optional '.' and the fewest fractional digits ("0", never
"-0"). All arithmetic is in Fraction, and every answer and every intermediate value is exact in float64: |x| < 2^53,
at most 15 digits and 9 decimals (division terminates by construction, log is log_b(b^k), pow has small
non-negative integer exponents).

Splits: train / val / test / phrasing share one operand distribution (integer parts up to max_digits digits); no
test or val prompt is a train prompt; phrasing uses only the held-out templates; extrap has operands with
max_digits+1 .. max_digits+2 integer digits.

Writes into out_dir, like nanoGPT's shakespeare_char (train and val; --no-labels skips the four label files):
    {split}.bin            np.uint16 char ids over ALPHABET
    {split}_roles.bin      np.uint8, 1:1 with {split}.bin: the dag_model.CLASSES index of each char's role in a
                           number (a digit, 'sep' ',', 'point' '.', 'k', 'minus' the sign of a negative number),
                           'other' (0) outside numbers (a subtraction '-' is 'other'; a ',' or '.' right after a
                           number is 'sep' or 'point', since a causal reader cannot tell it from one inside)
    {split}_steps_of.bin   np.int32, 1:1 with {split}.bin: the row of {split}_steps.npy that labels a char's DAG
                           steps, -1 for none: a problem's answer row at every char from the prompt's last char
                           to the answer's last char, and a close row at each char where a sub-expression's last
                           number has just been read (step_rows)
    {split}_steps.npy      np.float64 (n_rows, MAX_STEPS) (np.load): the label rows. Each op's value sits at its
                           close char, in the column of its height in the expression's tree (1 for an op on two
                           numbers), right-aligned by the expression's height H, taken as at least ALIGN_HEIGHT
                           (3): column MAX_STEPS - max(H, 3) + height - 1, so the answer is in the last column and
                           a parent's step comes after its children's; NaN before a row's first label, its last
                           label repeated after it. "(3 + 4) * 5 = 35" has 7 at ")" (column MAX_STEPS - 3,
                           repeated after it) and 35 at the " " after 5 (MAX_STEPS - 2 and the last), and in
                           every column at the answer's chars (--no-answer_all_steps: the root's close row there,
                           its children on the earlier steps)
    {split}_ops.bin        np.uint8, 1:1 with {split}.bin: where an op is named next to its right operand, the
                           dag_model.OPS index of that op at the last char of the operand's first number ("*" at
                           the 9 of "2664 / (148 * 9)", "/" at its 148), 255 elsewhere (anchor_positions)
    meta.pkl               {'vocab_size', 'itos', 'stoi'} over ALPHABET (the same for every seed and size)
    problems.jsonl         test, extrap and phrasing problems with their exact answers and step values
    val_prose.bin          with --prose (a mixture of prose and problems): the val prose alone, for its loss

$ python data/numeric/prepare.py [--out_dir DIR] [--seed 1337] [--n_train 200000] [--max_digits 4] [--max_ops 4]
                                 [--no-labels] [--tokenizer char|gpt2 --tiktoken_file PATH] [--prose PATH]
                                 [--p_multi 0.4] [--no-answer_all_steps]
"""
import argparse
import json
import os
import pickle
import random
import re
import sys
import time
from fractions import Fraction

import numpy as np
from tqdm import tqdm

if not __package__:  # run as a script: dag_model lives at the repo root
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
# the DAG's op names, the value extractor's classes, and the digits the DAG renders exactly
from dag_model import CLASSES, LABEL_FILES, MAX_FRAC_DIGITS, NO_OP, OPS, SIGNIFICANT_DIGITS  # noqa: E402

CATEGORIES = OPS + ("multi",)  # what a problem is drawn from, uniformly; "multi" is a 2..max_ops op expression
SPLITS = ("train", "val", "test", "extrap", "phrasing")
MAX_STEPS = 8  # the longest chain: the width of {split}_steps.npy
# Label rows are right-aligned as if every tree were at least this high (label_columns): with dag_depth 4 a node of
# height h is taught at step h whatever the tree's height up to 3. Aligned by the tree's own height, a char where a
# child and its parent close ("a - b * c") taught step 2 the child in a tree of height 2 and the parent in one of
# height 3, which a causal reader cannot tell apart there: step 2 computed the parent in 37 of 91 such nodes of the
# chains suite (seed 1337), step 3 in 65 of 77; and a root of height 2 sat on the last step, which no step reads.
# Over seeds 1337-1344: test chains 68.9 -> 74.6% (up on all 8), test 96.6 -> 97.3%, the chains suite 201.6 -> 206.8
# of 300, extrapolation 95.8% both, held-out phrasings 71.3 -> 71.5% (NOTES.md, forty-second session).
ALIGN_HEIGHT = 3
ROLES = CLASSES  # the labels of {split}_roles.bin index the value extractor's classes
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

# Phrasings: 12 per category for train / val / test / extrap, and 3 held out for the "phrasing" split only (fixed
# here, not drawn by the seed). {a} comes before {b} in the op's own order (a - b, a / b, log base a of b, a^b), even
# where the text names b first ("Subtract {b} from {a}"). For "multi", {a} is the whole expression; a template
# without a space writes it compactly ("(3+4)*5="). Every template is one line and ends where the answer starts.
TEMPLATES = {
    "add": ("{a} + {b} = ", "{a}+{b}=", "{a} + {b} is ", "What is {a} plus {b}? ", "what is {a} plus {b}? ",
            "Add together {a} and {b}: ", "Add {a} and {b}: ", "Calculate {a} plus {b}: ", "{a} added to {b} gives ",
            "the sum of {a} and {b} is ", "The sum of {a} and {b} is ", "{a} plus {b} equals "),
    "subtract": ("{a} - {b} = ", "{a}-{b}=", "{a} - {b} is ", "What is {a} minus {b}? ", "what is {a} minus {b}? ",
                 "Subtract {b} from {a}: ", "subtract {b} from {a}: ", "Calculate {a} minus {b}: ",
                 "{a} take away {b} is ", "{a} less {b} is ", "the difference of {a} and {b} is ",
                 "{a} minus {b} equals "),
    "multiply": ("{a} * {b} = ", "{a}*{b}=", "{a} * {b} is ", "What is {a} times {b}? ", "what is {a} times {b}? ",
                 "Multiply {a} by {b}: ", "multiply {a} by {b}: ", "Calculate {a} times {b}: ", "{a} times {b} is ",
                 "the product of {a} and {b} is ", "The product of {a} and {b} is ", "{a} multiplied by {b} equals "),
    "divide": ("{a} / {b} = ", "{a}/{b}=", "{a} / {b} is ", "What is {a} divided by {b}? ",
               "what is {a} divided by {b}? ", "Divide {a} by {b}: ", "divide {a} by {b}: ",
               "Calculate {a} divided by {b}: ", "{a} over {b} is ", "the quotient of {a} and {b} is ",
               "The quotient of {a} and {b} is ", "{a} divided by {b} equals "),
    "log": ("log_{a}({b}) = ", "log_{a}({b})=", "log{a}({b}) = ", "What is log base {a} of {b}? ",
            "what is log base {a} of {b}? ", "Calculate log base {a} of {b}: ", "log base {a} of {b} is ",
            "log base {a} of {b} equals ", "the logarithm base {a} of {b} is ", "The logarithm base {a} of {b} is ",
            "the log to base {a} of {b} is ", "Calculate log_{a}({b}): "),
    "pow": ("{a}^{b} = ", "{a}^{b}=", "{a} ^ {b} = ", "{a}**{b} = ", "{a}**{b}=", "What is {a} to the power of {b}? ",
            "what is {a} to the power of {b}? ", "Calculate {a}^{b}: ", "{a} to the power of {b} is ",
            "{a} raised to {b} is ", "{a} raised to the power {b} equals ", "Raise {a} to the power {b}: "),
    "max": ("max({a}, {b}) = ", "max({a}, {b})=", "What is the maximum of {a} and {b}? ",
            "what is the maximum of {a} and {b}? ", "the maximum of {a} and {b} is ", "the larger of {a} and {b} is ",
            "The larger of {a} and {b} is ", "the greater of {a} and {b} is ", "Which is bigger, {a} or {b}? ",
            "which is bigger, {a} or {b}? ", "Which is larger, {a} or {b}? ", "max of {a} and {b}: "),
    "min": ("min({a}, {b}) = ", "min({a}, {b})=", "What is the minimum of {a} and {b}? ",
            "what is the minimum of {a} and {b}? ", "the minimum of {a} and {b} is ", "the smaller of {a} and {b} is ",
            "The smaller of {a} and {b} is ", "the lesser of {a} and {b} is ", "Which is smaller, {a} or {b}? ",
            "which is smaller, {a} or {b}? ", "Which is less, {a} or {b}? ", "min of {a} and {b}: "),
    "identity": ("{a} = ", "{a}=", "{a} written out is ", "Write {a} as digits: ", "write {a} as digits: ",
                 "What number is {a}? ", "what number is {a}? ", "{a} in digits is ", "{a} as a plain number is ",
                 "Write {a} in full: ", "the number {a} is ", "The number {a} is "),
    "multi": ("{a} = ", "{a}=", "{a} is ", "What is {a}? ", "what is {a}? ", "Compute {a}: ", "compute {a}: ",
              "Calculate {a}: ", "calculate {a}: ", "Evaluate {a}: ", "{a} equals ", "The value of {a} is "),
}
HELD_OUT_TEMPLATES = {
    "add": ("Work out {a} + {b}. ", "If you add {a} and {b} you get ", "{a} and {b} make "),
    "subtract": ("Work out {a} - {b}. ", "Take {b} away from {a}: ", "{a} with {b} taken away leaves "),
    "multiply": ("Work out {a} * {b}. ", "{a} lots of {b} make ", "What do you get when you multiply {a} by {b}? "),
    "divide": ("Work out {a} / {b}. ", "What is {a} over {b}? ", "If {a} is divided by {b}, the result is "),
    "log": ("Work out log_{a}({b}). ", "To what power must {a} be raised to give {b}? ",
            "The exponent that turns {a} into {b} is "),
    "pow": ("Work out {a}^{b}. ", "pow({a}, {b}) = ", "What is {a} raised to the power of {b}? "),
    "max": ("Work out max({a}, {b}). ", "Pick the bigger of {a} and {b}: ", "Of {a} and {b}, the larger is "),
    "min": ("Work out min({a}, {b}). ", "Pick the smaller of {a} and {b}: ", "Of {a} and {b}, the smaller is "),
    "identity": ("Work out {a}. ", "Spell {a} out in digits: ", "{a}, written plainly, is "),
    "multi": ("Work out {a}. ", "What does {a} come to? ", "Find the value of {a}: "),
}

# Composed phrasings, for train and val only (P_COMPOSED of their problems; test and extrap keep TEMPLATES): every
# frame (a lead-in and an ending: "Tell me {q}. ", "Q: What is {q}? A: ", "{q} -> ") around every core of an op
# (its words or symbols: "the total of {a} and {b}", "{a} x {b}"), 66-161 per category, so that the model
# meets many wordings and learns that the answer starts where a prompt ends, whatever its words. The frames and
# cores use none of the held-out phrasings' own words ("work out", "make", "lots of", "taken away", "pick", "pow",
# "come to", "find", ...) and no composed template is a held-out one (the tests check both).
FRAMES = ("{q} = ", "{q} is ", "{q} equals ", "{q} gives ", "{q} -> ", "What is {q}? ", "what is {q}? ",
          "What's {q}? ", "Tell me {q}: ", "Tell me {q}. ", "Compute {q}: ", "Compute {q}. ", "Evaluate {q}. ",
          "Q: What is {q}? A: ", "Question: {q}? Answer: ", "Please compute {q}: ", "I need {q}. ", "Quick: {q} = ",
          "Now, {q} is ", "So {q} equals ", "Give {q}: ", "Can you tell me {q}? ", "Determine {q}! ",
          "Solve this: {q} = ")
CORES = {
    "add": ("{a} + {b}", "{a} plus {b}", "the sum of {a} and {b}", "{a} added to {b}", "the total of {a} and {b}",
            "{a} and {b} added together", "{b} more than {a}"),
    "subtract": ("{a} - {b}", "{a} minus {b}", "the difference of {a} and {b}", "{a} less {b}",
                 "{b} subtracted from {a}", "{a} reduced by {b}", "{b} less than {a}"),
    "multiply": ("{a} * {b}", "{a} times {b}", "the product of {a} and {b}", "{a} multiplied by {b}", "{a} x {b}"),
    "divide": ("{a} / {b}", "{a} divided by {b}", "the quotient of {a} and {b}", "the ratio of {a} to {b}",
               "{b} into {a}"),
    "log": ("log_{a}({b})", "log base {a} of {b}", "the logarithm base {a} of {b}", "the log of {b} to base {a}",
            "the base {a} logarithm of {b}"),
    "pow": ("{a}^{b}", "{a}**{b}", "{a} to the power of {b}", "{a} raised to {b}", "{a} to the power {b}"),
    "max": ("max({a}, {b})", "the maximum of {a} and {b}", "the larger of {a} and {b}", "the greater of {a} and {b}",
            "the largest of {a} and {b}", "the higher of {a} and {b}"),
    "min": ("min({a}, {b})", "the minimum of {a} and {b}", "the smaller of {a} and {b}", "the lesser of {a} and {b}",
            "the lower of {a} and {b}", "the smallest of {a} and {b}"),
    "identity": ("{a}", "{a} in digits", "{a} as a plain number", "{a} written in full", "the number {a}"),
    "multi": ("{a}", "the value of {a}", "the expression {a}"),
}
COMPOSED_TEMPLATES = {op: tuple(t for t in dict.fromkeys(frame.replace("{q}", core) for frame in FRAMES
                                                          for core in CORES[op]) if t not in TEMPLATES[op])
                      for op in CORES}
P_COMPOSED = 0.5
# Made-up words around a core, in place of a frame, for P_FILLER of the composed train and val problems ("Zovi 3 plus
# 4 temak " -> 7): whatever unknown words a prompt starts or ends with, the answer follows its last one. Each word is
# new random letters (FILLER_LETTERS), so no wording is learned; none is a word of any template or frame, and none
# holds a held-out phrasing's word (FILLER_BANNED), so the phrasing split stays unseen. Seeds 1337-1342 of the main
# job: held-out phrasings 63.1 -> 68.8% (up on all six), test chains 54.5 -> 53.6%; on single ops only, phrasings
# gained 0.7 (NOTES.md, thirtieth session).
P_FILLER = 0.3
FILLER_LETTERS = ("bcdfghjlmnprstvwz", "aeiou")  # consonant, vowel, consonant, ...: no 'k' (a number's suffix)
FILLER_BANNED = ("work", "get", "mak", "lot", "tak", "away", "leav", "pick", "spel", "plain", "expon", "turn", "must",
                 "com", "find", "result", "pow", "over", "rais", "giv")
P_MULTI = 0.3  # the share of chains among the train and val problems by default (the held-out splits: a tenth);
# a tenth -> a fifth -> 0.3 over 6 seeds of the main job: NOTES.md, fifteenth and eighteenth sessions
PLACEHOLDER = re.compile(r"\{(\w+)\}")
_TEXTS = [t for table in (TEMPLATES, HELD_OUT_TEMPLATES, CORES) for ts in table.values() for t in ts] + list(FRAMES)
TEMPLATE_WORDS = frozenset(w.lower() for t in _TEXTS for w in re.findall(r"[A-Za-z]+", t))  # no filler word is one

# Every printable ASCII char and the line end, sorted: the vocabulary does not depend on the templates, the seed or
# the sizes, so a model trained on one corpus reads another (or any plain ASCII text).
ALPHABET = "\n" + "".join(chr(c) for c in range(32, 127))
_IDS = np.zeros(128, dtype=np.uint16)
_IDS[[ord(c) for c in ALPHABET]] = np.arange(len(ALPHABET), dtype=np.uint16)

# Number formats in prompts. Relative weights; comma and k need 4+ integer digits. Identity problems are about
# normalising formats, so they rarely show a plain number. Decimals have 1..9 fractional digits, mostly 1 or 2.
STYLE_WEIGHTS = {"plain": 6, "comma": 2, "decimal": 2, "k": 2}
IDENTITY_STYLE_WEIGHTS = {"plain": 1, "comma": 3, "decimal": 2, "k": 3}
FRAC_DIGIT_WEIGHTS = (45, 30, 8, 5, 4, 3, 2, 2, 1)  # for 1..9 fractional digits
P_NEGATIVE = 0.15
MAX_EXPONENT = 10
# What float64 holds exactly and the DAG writes back digit for digit (dag_model.render_symbol): |x| < 2^53, at most
# SIGNIFICANT_DIGITS (15, DBL_DIG) digits and MAX_FRAC_DIGITS (9) decimals.
MAX_DIGITS = SIGNIFICANT_DIGITS
NUMBER = re.compile(r"(-?)(\d{1,3}(?:,\d{3})+|\d+)(?:\.(\d+))?(k?)")


def encode(text):
    """Char ids of text over ALPHABET: np.uint16 (len(text),).

    Raises ValueError naming the chars outside ALPHABET (anything but printable ASCII and "\\n").
    """
    unknown = sorted({c for c in set(text) if c not in ALPHABET})
    if unknown:
        raise ValueError(f"chars {unknown} are not in ALPHABET (printable ASCII and '\\n'); "
                         f"write the text in plain ASCII")
    return _IDS[np.frombuffer(text.encode("ascii"), dtype=np.uint8)]


def parse_number(s):
    """Exact value of one number in any prompt format: "12345", "12,345", "-7", "12.5", "3k", "2.5k" -> Fraction.

    Raises ValueError for anything else (spaces, parentheses, a lone '-', misplaced separators).
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


def _frac_digits(x):
    """Fewest decimals that write Fraction x exactly (the larger power of 2 or 5 in its denominator), or None if its
    decimal expansion never terminates."""
    d = x.denominator
    twos = (d & -d).bit_length() - 1
    d >>= twos
    fives = 0
    while d % 5 == 0:
        d //= 5
        fives += 1
    return max(twos, fives) if d == 1 else None


def format_answer(x):
    """The canonical text of an exact value: optional '-', digits, optional '.' and the fewest fractional digits.

    Fraction(5, 2) -> "2.5", Fraction(-3000) -> "-3000", Fraction(0) -> "0". Raises ValueError if x has no finite
    decimal expansion (e.g. 1/3).
    """
    x = Fraction(x)
    k = _frac_digits(x)
    if k is None:
        raise ValueError(f"format_answer: {x} has no finite decimal expansion; choose operands that divide exactly")
    int_part, frac = divmod(abs(x.numerator) * 10**k // x.denominator, 10**k)
    return ("-" if x < 0 else "") + str(int_part) + (f".{frac:0{k}d}" if k else "")


def _exact(x, bound):
    """True if Fraction x is below bound (<= 2^53) and its canonical text has <= MAX_DIGITS digits (leading zeros
    not counted) and <= MAX_FRAC_DIGITS decimals: then float64 holds it and writes it back digit for digit."""
    k = _frac_digits(x)
    return (k is not None and k <= MAX_FRAC_DIGITS and abs(x) < bound
            and abs(x.numerator) * 10**k // x.denominator < 10**MAX_DIGITS)


def _int_digits(x):
    """Number of digits in the integer part of |x| (0.5 -> 1, -12.5 -> 2, 3000 -> 4)."""
    return len(str(int(abs(x))))


# -----------------------------------------------------------------------------
# numbers in prompts: (text, Fraction) pairs


def _rand_int(rng, digits, zero=True):
    return rng.randint(0 if digits == 1 and zero else 10 ** (digits - 1), 10**digits - 1)


def _rand_frac(rng, frac_digits):
    """Fractional part with frac_digits decimals, the last one non-zero: (digit text, Fraction in (0, 1))."""
    f = rng.randrange(10 ** (frac_digits - 1)) * 10 + rng.randint(1, 9)
    return f"{f:0{frac_digits}d}", Fraction(f, 10**frac_digits)


def _sample_number(rng, digits, negative=True, decimal=True, weights=STYLE_WEIGHTS):
    """A random number with `digits` integer digits, written in a random prompt format: (text, Fraction)."""
    styles = [s for s in weights if (s != "decimal" or (decimal and digits < MAX_DIGITS))
              and (s not in ("comma", "k") or digits >= 4)]
    style = rng.choices(styles, [weights[s] for s in styles])[0]
    if style == "k":  # mantissa with digits-3 integer digits and 0-2 decimals: "3k", "2.5k", "12.25k"
        n = _rand_int(rng, digits - 3, zero=False)
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
            frac_digits = min(rng.choices(range(1, 10), FRAC_DIGIT_WEIGHTS)[0], MAX_DIGITS - digits)
            frac_text, frac = _rand_frac(rng, frac_digits)
            text, value = f"{text}.{frac_text}", value + frac
    if negative and value != 0 and rng.random() < P_NEGATIVE:
        text, value = "-" + text, -value
    return text, value


def _render(rng, x):
    """Write a computed value in a random prompt format that fits it: "12,000", "12k" or "12000"."""
    sign, ax = ("-" if x < 0 else ""), abs(x)
    if ax >= 1000 and (ax / 10).denominator == 1 and rng.random() < 0.3:
        return sign + format_answer(ax / 1000) + "k", x
    if ax >= 1000 and rng.random() < 0.3:
        int_text, _, frac_text = format_answer(ax).partition(".")
        return sign + f"{int(int_text):,}" + ("." + frac_text if frac_text else ""), x
    return format_answer(x), x


def _leaf_parts(rng, number, rule):
    """A number as text pieces: a negative one in parentheses where a bare '-' would read as an operator ("3 - (-4)",
    "(-2)^4"); rule "parens" always, "either" (the start of an expression) half of the time, "bare" never."""
    if number[1] < 0 and (rule == "parens" or (rule == "either" and rng.random() < 0.5)):
        return ["(", number, ")"]
    return [number]


# -----------------------------------------------------------------------------
# one-step problems


def _multiple_of(rng, d, lo, hi):
    """A dividend a = q * d with lo..hi integer digits and a quotient q of <= 2 decimals; None if there is none."""
    frac_digits = rng.choice((0, 0, 0, 1, 2)) if d.denominator == 1 else 0
    scale = 10**frac_digits
    smallest = 0 if lo == 1 else 10 ** (lo - 1)
    n_min = max(1, -(-smallest * scale // abs(d)))  # q = n / scale, ceil division
    n_max = -(-(10**hi) * scale // abs(d)) - 1
    if n_min > n_max:
        return None
    return Fraction(rng.randint(n_min, n_max), scale) * d * rng.choice((1, -1))


def _one_step(rng, op, lo, hi, bound):
    """Operands {"a": (text, value), "b": ...} and the exact result of one op, or None when this draw does not fit."""
    if op in ARITH and op != "divide":
        digits = rng.randint(lo, hi)
        room = max(1, MAX_DIGITS + 1 - digits) if op == "multiply" else hi  # a product's digits add up
        b_digits = rng.randint(min(lo, room), min(hi, room))
        operands = {"a": _sample_number(rng, digits), "b": _sample_number(rng, b_digits)}
        result = ARITH[op](operands["a"][1], operands["b"][1])
    elif op == "divide":  # draw the divisor and quotient, so the quotient is exact by construction
        digits = rng.randint(lo, hi)
        b = _sample_number(rng, rng.randint(1, digits), decimal=rng.random() < 0.2)
        a = None if b[1] == 0 else _multiple_of(rng, b[1], digits, digits)
        if a is None or not _exact(a, bound):
            return None
        operands, result = {"a": _render(rng, a), "b": b}, a / b[1]
    elif op == "log":  # log base a of a^k: integer answers
        base, digits = rng.randint(2, 10), rng.randint(lo, hi)
        k = rng.choice([k for k in range(64) if _int_digits(base**k) == digits])
        operands, result = {"a": (str(base), Fraction(base)), "b": _render(rng, Fraction(base**k))}, Fraction(k)
    elif op == "pow":  # small non-negative integer exponent
        a = _sample_number(rng, rng.randint(lo, hi), decimal=rng.random() < 0.3)
        exps = [e for e in range(MAX_EXPONENT + 1) if (e or a[1]) and _exact(a[1] ** e, bound)]
        big = [e for e in exps if e >= 2]
        e = rng.choice(big if big and rng.random() < 0.8 else exps)
        operands, result = {"a": a, "b": (str(e), Fraction(e))}, a[1] ** e
    else:  # identity
        operands = {"a": _sample_number(rng, rng.randint(lo, hi), weights=IDENTITY_STYLE_WEIGHTS)}
        result = operands["a"][1]
    return (operands, result) if _exact(result, bound) else None


def _slot_rule(before, after):
    """How a negative operand is written in a template slot, from the template text around it (see _leaf_parts)."""
    before, after = before.rstrip(), after.lstrip()
    if before.endswith(("+", "-", "*", "/", "^")) or after.startswith(("^", "**")):
        return "parens"  # a right operand, or the base of a power ("-2^4" is -16)
    return "either" if after.startswith(("+", "-", "*", "/")) else "bare"


def _layout(template):
    """A template as its literal pieces and slots [(name, rule), ...] in text order."""
    names = PLACEHOLDER.split(template)  # literal, name, literal, name, ..., literal
    return [names[i] if i % 2 == 0 else (names[i], _slot_rule(names[i - 1], names[i + 1])) for i in range(len(names))]


_LAYOUTS = {t: _layout(t) for table in (TEMPLATES, HELD_OUT_TEMPLATES, COMPOSED_TEMPLATES)
            for ts in table.values() for t in ts}


# -----------------------------------------------------------------------------
# multi-step expressions: a tree whose leaf is (text, value) and whose node is (op, left, right, value)


def _expr(rng, n_ops, lo, hi, bound):
    """A random expression with n_ops ops whose every value is exact; None when this draw does not fit.
    An op whose value does not fit is replaced by another one on the same operands."""
    if n_ops == 0:
        return _sample_number(rng, rng.randint(lo, hi))
    op = rng.choice(MULTI_OPS)
    n_left = 0 if op == "divide" else rng.randint(0, n_ops - 1)
    right = _expr(rng, n_ops - 1 - n_left, lo, hi, bound)
    if right is None:
        return None
    if op == "divide":  # the dividend is a leaf, drawn as a multiple of the divisor's value
        a = None if right[-1] == 0 else _multiple_of(rng, right[-1], lo, hi)
        if a is not None and _exact(a, bound) and _exact(a / right[-1], bound):
            return ("divide", _render(rng, a), right, a / right[-1])
        op, left = None, _sample_number(rng, rng.randint(lo, hi))
    else:
        left = _expr(rng, n_left, lo, hi, bound)
        if left is None:
            return None
    if op is not None:
        value = ARITH[op](left[-1], right[-1])
        if _exact(value, bound):
            return (op, left, right, value)
    others = [o for o in MULTI_OPS if o not in (op, "divide")]
    for op in rng.sample(others, len(others)):
        value = ARITH[op](left[-1], right[-1])
        if _exact(value, bound):
            return (op, left, right, value)
    return None


def _precedence(node):
    return {"add": 1, "subtract": 1, "multiply": 2, "divide": 2}.get(node[0], 3) if len(node) == 4 else 3


def _expr_parts(rng, node, compact, at_start=True):
    """The expression as text pieces and (text, value) numbers, with only the parentheses it needs; a negative leaf
    is parenthesised unless it starts the expression (or a parenthesised part)."""
    if len(node) == 2:
        return _leaf_parts(rng, node, "either" if at_start else "parens")
    op, left, right, _ = node
    if op in ("max", "min"):
        return [op + "("] + _expr_parts(rng, left, compact) + [", "] + _expr_parts(rng, right, compact) + [")"]
    wrap_left = _precedence(left) < _precedence(node)
    wrap_right = _precedence(right) <= _precedence(node)  # a - (b + c), a / (b * c)
    left_parts = _expr_parts(rng, left, compact, at_start or wrap_left)
    right_parts = _expr_parts(rng, right, compact, wrap_right)
    if wrap_left:
        left_parts = ["("] + left_parts + [")"]
    if wrap_right:
        right_parts = ["("] + right_parts + [")"]
    return left_parts + [SYMBOLS[op] if compact else f" {SYMBOLS[op]} "] + right_parts


def _closes(node, first_leaf=0):
    """(the height of node, [(the text-order index of its last leaf, height, value) for every op node in
    post-order], its number of leaves). A node's value is known right after its last leaf: there its close
    position's label says it, at the step of its height (a leaf op is height 1), so that a parent reads its
    children's values from the positions that computed them."""
    if len(node) == 2:
        return 0, [], 1
    h_left, c_left, n_left = _closes(node[1], first_leaf)
    h_right, c_right, n_right = _closes(node[2], first_leaf + n_left)
    height = 1 + max(h_left, h_right)
    return height, c_left + c_right + [(first_leaf + n_left + n_right - 1, height, float(node[3]))], n_left + n_right


def _right_leaves(node, first_leaf=0):
    """([the text-order index of the first leaf of each op node's right operand, in post-order], its number of
    leaves): where the op that takes that operand is read (the anchor_positions labels)."""
    if len(node) == 2:
        return [], 1
    left, n_left = _right_leaves(node[1], first_leaf)
    right, n_right = _right_leaves(node[2], first_leaf + n_left)
    return left + right + [first_leaf + n_left], n_left + n_right


def _post_order(node):
    """Leaf values in text order, and the op names and values of the nodes in evaluation order (left subtree, right
    subtree, node)."""
    if len(node) == 2:
        return [node[1]], [], []
    left_leaves, left_ops, left_values = _post_order(node[1])
    right_leaves, right_ops, right_values = _post_order(node[2])
    return left_leaves + right_leaves, left_ops + right_ops + [node[0]], left_values + right_values + [node[3]]


# -----------------------------------------------------------------------------
# problems


def _check_sizes(max_digits, max_ops, p_multi=None):
    if not 1 <= max_digits <= 12:
        raise ValueError(f"max_digits={max_digits}: use 1..12, so that extrap operands (max_digits+2 digits) stay "
                         f"exact in float64")
    if not 2 <= max_ops <= MAX_STEPS:
        raise ValueError(f"max_ops={max_ops}: use 2..{MAX_STEPS} (MAX_STEPS, the width of the steps labels)")
    if p_multi is not None and not 0 <= p_multi <= 1:
        raise ValueError(f"p_multi={p_multi}: use a probability in 0..1 (or none: a uniform draw, a tenth chains)")


def is_filler_word(word):
    """Whether word (str) is one filler_word can make: 2..7 lowercase letters alternating from FILLER_LETTERS,
    consonant first, no template's word, no held-out phrasing's (FILLER_BANNED)."""
    return (2 <= len(word) <= 7 and word not in TEMPLATE_WORDS
            and all(c in FILLER_LETTERS[i % 2] for i, c in enumerate(word))
            and not any(b in word for b in FILLER_BANNED))


def filler_word(rng):
    """A made-up word (is_filler_word), drawn with rng (a random.Random)."""
    while True:
        word = "".join(rng.choice(FILLER_LETTERS[i % 2]) for i in range(rng.randint(2, 7)))
        if is_filler_word(word):
            return word


def filler_template(rng, op):
    """A core of CORES[op] between 0-2 made-up words (the first may be capitalised) and 1-2 more, then a space:
    "Zovi {a} plus {b} temak " (see P_FILLER)."""
    lead = [filler_word(rng) for _ in range(rng.randint(0, 2))]
    end = [filler_word(rng) for _ in range(rng.randint(1, 2))]
    if lead and rng.random() < 0.5:
        lead[0] = lead[0].capitalize()
    return " ".join(lead + [rng.choice(CORES[op])] + end) + " "


def make_problem(rng, split, max_digits=4, op=None, max_ops=4, p_multi=None):
    """One random problem of a split, drawn with rng (a random.Random).

    split: one of SPLITS ("phrasing" draws HELD_OUT_TEMPLATES and test's numbers; test and extrap draw TEMPLATES;
        train and val draw COMPOSED_TEMPLATES with probability P_COMPOSED, else TEMPLATES; P_FILLER of the
        composed ones are a core between made-up words instead, filler_template).
    op: one of CATEGORIES (OPS or "multi"), or None for a uniform draw. max_ops: the longest "multi" chain (2..8).
    p_multi: with op None, the probability of "multi" for train and val (else one of OPS, uniformly); None draws
        uniformly over CATEGORIES (a tenth chains). The held-out splits always draw uniformly.
    Returns a dict with
        text         prompt + answer + "\\n"
        prompt, answer (canonical str), value (float), op (op name, or "multi"), template (str), split
        ops          the op names in evaluation order (post-order), steps = len(ops)
        step_values  the value (float) of every op in the same order; the last is the answer
        digits       the most integer digits among the prompt's operands
        numbers      [(start, end), ...] char spans in text of every number, its '-' sign included, the answer last
        right_leaves for each op in ops, the index in numbers of its right operand's first number (anchor_positions)
    Raises ValueError for an unknown split or op, or max_digits / max_ops / p_multi out of range.
    """
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
    if op is not None and op not in CATEGORIES:
        raise ValueError(f"unknown op {op!r}; expected one of {CATEGORIES} or None")
    _check_sizes(max_digits, max_ops, p_multi)
    if split == "extrap":  # longer operands than anything in training
        lo, hi, bound = max_digits + 1, max_digits + 2, 2**53
    else:
        lo, hi, bound = 1, max_digits, min(10 ** (2 * max_digits), 2**53)
    if op is None and p_multi is not None and split in ("train", "val"):
        op = "multi" if rng.random() < p_multi else rng.choice(OPS)
    op = op or rng.choice(CATEGORIES)
    if split == "phrasing":
        table = HELD_OUT_TEMPLATES
    else:  # train and val mix in the composed phrasings; test and extrap are drawn exactly as before they existed
        table = COMPOSED_TEMPLATES if split in ("train", "val") and rng.random() < P_COMPOSED else TEMPLATES
    template = rng.choice(table[op])
    if table is COMPOSED_TEMPLATES and rng.random() < P_FILLER:
        template = filler_template(rng, op)
    layout = _LAYOUTS.get(template) or _layout(template)  # a filler template is new each time
    for _ in range(1000):
        if op == "multi":
            drawn = _expr(rng, rng.randint(2, max_ops), lo, hi, bound)
        else:
            drawn = _one_step(rng, op, lo, hi, bound)
        if drawn:
            break
    else:
        raise RuntimeError(f"make_problem: no {op!r} problem fits max_digits={max_digits}; use a smaller max_digits")
    if op == "multi":
        leaves, ops, values = _post_order(drawn)
        closes = _closes(drawn)[1]
        right_leaves = _right_leaves(drawn)[0]
        result, fields = drawn[-1], {"a": _expr_parts(rng, drawn, compact=" " not in template)}
    else:
        (operands, result), ops = drawn, [op]
        leaves, values = [v for _, v in operands.values()], [result]
        closes = None  # after the prompt's last number, once the text is laid out
        slots = [part for part in layout if isinstance(part, tuple)]  # one number each, in text order
        fields = {name: _leaf_parts(rng, operands[name], rule) for name, rule in slots}
        # the number a DAG step takes as its right operand: {b}, but for log the base {a} (dag_ops' log(x, base)
        # is log_base(x)); identity has none
        right = "a" if op == "log" else "b"
        right_leaves = [] if op == "identity" else [[name for name, _ in slots].index(right)]
    answer = format_answer(result)

    pieces, numbers, pos = [], [], 0
    parts = [q for part in layout for q in (fields[part[0]] if isinstance(part, tuple) else [part])]
    for part in parts + [(answer, result), "\n"]:
        if isinstance(part, tuple):
            numbers.append((pos, pos + len(part[0])))
            part = part[0]
        pieces.append(part)
        pos += len(part)
    text = "".join(pieces)
    if closes is None:
        closes = [(len(numbers) - 2, 1, float(result))]
    return {
        "prompt": text[: -len(answer) - 1], "answer": answer, "value": float(result), "op": op, "ops": ops,
        "steps": len(ops), "step_values": [float(v) for v in values], "digits": max(_int_digits(x) for x in leaves),
        "split": split, "template": template, "text": text, "numbers": numbers, "closes": closes,
        "right_leaves": right_leaves,
    }


def _new_problem(rng, split, max_digits, max_ops, exclude, op=None, p_multi=None):
    """make_problem, redrawn while its prompt is in exclude."""
    for _ in range(1000):
        p = make_problem(rng, split, max_digits, op, max_ops, p_multi)
        if p["prompt"] not in exclude:
            return p
    raise RuntimeError(f"no new {split} {op or ''} prompt in 1000 draws: there are too few distinct problems; "
                       f"use fewer problems or a larger max_digits")


def _held_out(rng, split, n, max_digits, max_ops):
    """n distinct problems, balanced over CATEGORIES (round robin)."""
    problems, prompts = [], set()
    for i in range(n):
        p = _new_problem(rng, split, max_digits, max_ops, prompts, op=CATEGORIES[i % len(CATEGORIES)])
        prompts.add(p["prompt"])
        problems.append(p)
    return problems


# -----------------------------------------------------------------------------
# a split's token stream and its label files

_ROLE_OF_ID = np.zeros(len(ALPHABET), dtype=np.uint8)  # the role of a char inside a number, by char id
for _c, _role in {**{d: "digits" for d in "0123456789"}, ",": "sep", ".": "point", "k": "k", "-": "minus"}.items():
    _ROLE_OF_ID[ALPHABET.index(_c)] = CLASSES.index(_role)


def _stream(rng, split, n, max_digits, max_ops, exclude, prose=(), p_multi=None, answer_all_steps=True):
    """n problems whose prompts are not in exclude, as one text and what its labels are made of: a dict with
    text, prompts, numbers (char spans of every number), closes ((char, row) of every close position: step_rows),
    answers ((start, end, row): spans from the prompt's last char to the answer's last char, end exclusive),
    anchors ((char, OPS index) where an op is named next to its right operand: anchor_positions),
    steps (the label rows, np.float64 (MAX_STEPS,) each), max_chars (the longest problem).
    prose, a list of paragraphs (str), is spread evenly between the problems, in order; its digit runs count
    as numbers (the value extractor's labels say 'digits' there), and it answers nothing."""
    s = {"text": [], "prompts": [], "numbers": [], "closes": [], "answers": [], "steps": [], "anchors": [],
         "max_chars": 0}
    pos = 0
    before = np.searchsorted(np.arange(len(prose)) * n // max(len(prose), 1), np.arange(n), side="right")
    for i in tqdm(range(n), desc=f"numeric {split}", disable=n < 50_000, mininterval=1.0):
        for paragraph in prose[before[i - 1] if i else 0:before[i]]:  # the paragraphs that go before problem i
            s["text"].append(paragraph)
            s["numbers"].extend((pos + m.start(), pos + m.end()) for m in re.finditer(r"\d+", paragraph))
            pos += len(paragraph)
        p = _new_problem(rng, split, max_digits, max_ops, exclude, p_multi=p_multi)
        s["text"].append(p["text"])
        s["prompts"].append(p["prompt"])
        s["numbers"].extend((pos + start, pos + end) for start, end in p["numbers"])
        rows = step_rows(p, answer_all_steps)
        s["anchors"].extend((pos + char, op) for char, op in anchor_positions(p))
        for char, row in rows[:-1]:
            s["closes"].append((pos + char, len(s["steps"])))
            s["steps"].append(row)
        s["answers"].append((pos + len(p["prompt"]) - 1, pos + len(p["text"]) - 1, len(s["steps"])))
        s["steps"].append(rows[-1][1])
        s["max_chars"] = max(s["max_chars"], len(p["text"]))
        pos += len(p["text"])
    s["text"] = "".join(s["text"])
    return s


def _spans_mask(n_chars, spans):
    """bool (n_chars,): True inside any of the (start, end) spans (end exclusive, spans disjoint)."""
    starts, ends = np.asarray(spans, dtype=np.int64).reshape(-1, 2).T
    edges = np.bincount(starts, minlength=n_chars + 1) - np.bincount(ends, minlength=n_chars + 1)
    return np.cumsum(edges[:n_chars]) > 0


def roles_labels(ids, numbers):
    """{split}_roles.bin: np.uint8 (len(ids),), the CLASSES index of each char's role in a number, 0 ('other')
    outside the number spans (a '-' inside a span is always its sign: spans start at the sign); digits are
    'digits', except the first of a number that directly follows another number's chars ("665," then "3.61k"):
    'new_digits', which starts it afresh (new_numbers).

    A ',' or '.' right after a number is 'sep' or 'point' too: the value extractor reads causally, and at that
    char no reader can tell "max(3, 4)" from "max(3,334" or "5." from "5.25"; either role leaves the value as it
    is, so the label is the one that is right whatever comes next."""
    roles = np.where(_spans_mask(len(ids), numbers), _ROLE_OF_ID[ids], 0).astype(np.uint8)
    ends = np.asarray([end for _, end in numbers], dtype=np.int64)
    ends = ends[ends < len(ids)]
    after = ends[np.isin(ids[ends], [ALPHABET.index(","), ALPHABET.index(".")])]
    roles[after] = _ROLE_OF_ID[ids[after]]
    return new_numbers(roles, np.asarray([start for start, _ in numbers], dtype=np.int64))


def new_numbers(roles, starts):
    """roles (n,) np.uint8 with 'new_digits' at each of the tokens starts (n_numbers,) that begin a number with a
    digit and directly follow a token inside a number (their role not 'other'): only there does a reader need
    to be told that the digits start afresh. After 'other' the two roles read the same value, so 'digits' is
    the label, the role a one-character-a-token reader learns from the digit alone."""
    starts = starts[(starts > 0) & (roles[starts] == CLASSES.index("digits"))]
    starts = starts[roles[starts - 1] != 0]
    roles[starts] = CLASSES.index("new_digits")
    return roles


def ops_labels(n_tokens, anchors):
    """{split}_ops.bin: np.uint8 (n_tokens,), the OPS index of the op named at each token whose number starts an
    op's right operand ((token, OPS index) pairs: anchor_positions), NO_OP elsewhere."""
    labels = np.full(n_tokens, NO_OP, dtype=np.uint8)
    if anchors:
        tokens, ops = np.asarray(anchors, dtype=np.int64).reshape(-1, 2).T
        labels[tokens] = ops
    return labels


def steps_of_labels(n_chars, spans):
    """{split}_steps_of.bin: np.int32 (n_chars,), row at the chars of each span (start, end exclusive, row), -1
    elsewhere; where spans overlap, the later one's row."""
    starts, ends, rows = np.asarray(spans, dtype=np.int64).reshape(-1, 3).T
    lengths = ends - starts
    labels = np.full(n_chars, -1, dtype=np.int32)
    first = np.repeat(starts - (np.cumsum(lengths) - lengths), lengths)  # (chars in spans,): span start - offset
    labels[first + np.arange(lengths.sum())] = np.repeat(rows.astype(np.int32), lengths)
    return labels


def close_positions(problem):
    """Where each op node of a problem (make_problem's dict) is known: [(char index in its text, height, value)] in
    post-order (the root last). The close char is the one after the node's last leaf, past a ',' or '.' that a
    causal reader takes as part of the number."""
    def close_char(leaf):
        char = problem["numbers"][leaf][1]
        return char + (problem["text"][char] in ",.")
    return [(close_char(leaf), h, value) for leaf, h, value in problem["closes"]]


def anchor_positions(problem):
    """Where each op of a problem (make_problem's dict) is named next to its right operand: [(char index in its
    text, OPS index)], at the last char of the right operand's first number (and at a ',' or '.' right after it,
    which a causal reader may still take as part of the number: close_positions), in the order of problem["ops"].
    The DAG reads a step's op where its right operand's node is (DAGController.step: the anchor), so "148 * 9" in
    "-2664 / (148 * 9)" names '*' at "9" and '/' at "148"; the {split}_ops.bin labels teach that reading."""
    out = []
    for op, leaf in zip(problem["ops"], problem["right_leaves"]):
        end = problem["numbers"][leaf][1]
        chars = [end - 1] + ([end] if problem["text"][end] in ",." else [])
        out += [(char, OPS.index(op)) for char in chars]
    return out


def label_columns(closes):
    """The column of each op node (close_positions' list) in its close char's label row (step_rows): right-aligned
    by the problem's height H, or ALIGN_HEIGHT where H is lower, the node of height h at MAX_STEPS - max(H,
    ALIGN_HEIGHT) + h - 1 (DAG step k of dag_depth D is taught column MAX_STEPS - D + k: eval_numeric.chain_nodes
    checks the step a node is taught at)."""
    H = max(ALIGN_HEIGHT, max(h for _, h, _ in closes))
    return [MAX_STEPS - H + h - 1 for _, h, _ in closes]


def step_rows(problem, answer_all_steps=True):
    """The steps labels of a problem: [(char index, row)], a row np.float64 (MAX_STEPS,) per close position
    (close_positions), then (None, the answer's row: the root's close row). Nodes closing at one char sit in its
    row at the column of their height, right-aligned by the problem's height H or ALIGN_HEIGHT (label_columns); a
    row's columns after its last label repeat it, NaN before the first.

    answer_all_steps (the default): the answer's row is the answer in every column, so every step is taught
    the answer at the answer's chars and the readout sees it on every step; the children are taught at their close
    chars, where the steps can read them. (In the root's close row the children that close with the root, 67 * 7
    in min(75, 67 * 7), sit on the earlier steps, and the model writes them. NOTES.md: with --p_multi=0.4 at 1,500
    iterations, test chains 53.8% over 3 seeds, 25.0% without the flag on seed 1337 (seventh session); at the main
    job's 750 iterations and mix it pays only with the children's labels in the programs (DAGController.
    programs): test chains 14.3 -> 17.3%, extrap chains 9.8 -> 15.7% over 6 seeds (twelfth session).)
    Where the root closes at the prompt's last char ("3+4*5=", "Tell me 3 + 4 * 5. "), the answer's row then
    replaces that char's close row (steps_of_labels: the later span wins), so a child closing there with the
    root (4*5) is taught nowhere: the steps must find it unaided."""
    closes = close_positions(problem)
    rows = {}
    for (char, h, value), column in zip(closes, label_columns(closes)):
        rows.setdefault(char, np.full(MAX_STEPS, np.nan))[column] = value
    for row in rows.values():
        last = np.flatnonzero(~np.isnan(row)).max()
        row[last:] = row[last]
    answer = np.full(MAX_STEPS, closes[-1][2]) if answer_all_steps else rows[closes[-1][0]]
    return list(rows.items()) + [(None, answer)]


def steps_labels(rows):
    """{split}_steps.npy: np.float64 (n_rows, MAX_STEPS), the label rows (step_rows) stacked."""
    return np.stack(rows).astype(np.float64).reshape(-1, MAX_STEPS)


def gpt2_tokens(enc, text, char_roles, numbers, answers, closes=(), anchors=()):
    """The same stream in GPT-2 BPE (enc, a tiktoken.Encoding): (token ids np.uint16 (n_tokens,), the role of each
    token np.uint8 (n_tokens,), steps_of over tokens np.int32 (n_tokens,), ops np.uint8 (n_tokens,)), from the
    per-char labels; an anchor char's op labels the token that holds it.

    A token's role is the largest of its chars' roles: a token of digits is 'digits' (" 12" in "= 12", its space
    being 'other'), or 'new_digits' where a number starts right after another's token (new_numbers: "12" " 345"
    as two numbers); a token of signs takes its number char's role ("(-" is 'minus'). A problem's answer span
    runs from the token before the answer's first token (which in GPT-2 usually holds the space before the
    answer: "= 15" is " =", " 15") to the answer's last token; a close char (closes: (char, row) pairs) labels
    the token that holds it ("4)" is "4", ")": the ")")."""
    ids = np.asarray(enc.encode_ordinary(text), dtype=np.uint16)
    lengths = np.asarray([len(enc.decode_single_token_bytes(i)) for i in range(enc.n_vocab)], dtype=np.int64)[ids]
    starts = np.cumsum(lengths) - lengths  # each token's first char (the text is ASCII: one byte a char)
    token_of = lambda chars: np.searchsorted(starts, chars, side="right") - 1  # noqa: E731: the token holding a char
    char_roles = np.where(char_roles == CLASSES.index("new_digits"), CLASSES.index("digits"), char_roles)
    roles = np.maximum.reduceat(char_roles, starts).astype(np.uint8)
    roles = new_numbers(roles, token_of(np.asarray([start for start, _ in numbers], dtype=np.int64)))
    first, last, rows = (np.asarray(x, dtype=np.int64) for x in zip(*answers)) if answers else \
        (np.zeros(0, np.int64),) * 3
    spans = list(zip(token_of(first + 1) - 1, token_of(last - 1) + 1, rows))  # first + 1: the answer's first char
    close_spans = [(token_of(c), token_of(c) + 1, row) for c, row in closes]  # the token holding the close char
    ops = ops_labels(len(ids), [(token_of(c), op) for c, op in anchors])
    return ids, roles, steps_of_labels(len(ids), close_spans + spans), ops


LEGACY_LABELS = ("values.bin", "answers.bin", "steps.bin", "answer_of.bin")  # written by earlier versions


def prose_paragraphs(path):
    """The paragraphs of the text file at path for a mixture: ({'train': [...], 'val': [...]}), each paragraph
    a str ending in its blank line ("\n\n"; the last one gets it added), train the first 90% of the chars (whole
    paragraphs), val the rest, as nanoGPT's shakespeare_char splits. Raises FileNotFoundError for a missing file,
    ValueError for text outside ALPHABET or with fewer than two paragraphs."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no prose file {path}: pass --prose=PATH to a plain-text file "
                                f"(e.g. the Tiny Shakespeare input.txt)")
    with open(path, encoding="utf-8", errors="replace") as f:
        text = f.read().replace("\r\n", "\n")
    encode(text)  # names any char outside ALPHABET
    paragraphs = [p.strip("\n") + "\n\n" for p in re.split(r"\n\s*\n", text) if p.strip()]
    if len(paragraphs) < 2:
        raise ValueError(f"{path} has {len(paragraphs)} paragraph(s): a mixture needs at least two, split by "
                         f"blank lines (one for train, one for val)")
    ends = np.cumsum([len(p) for p in paragraphs])
    cut = min(max(int(np.searchsorted(ends, 0.9 * ends[-1])), 1), len(paragraphs) - 1)
    return {"train": paragraphs[:cut], "val": paragraphs[cut:]}


def prepare(out_dir, seed=1337, n_train=200_000, n_val=None, n_test=2000, n_extrap=1000, n_phrasing=1000,
            max_digits=4, max_ops=4, labels=True, tokenizer="char", tiktoken_file=None, prose=None,
            p_multi=P_MULTI, answer_all_steps=True):
    """Generate the corpus into out_dir (created if missing); same seed and sizes give byte-identical files.

    n_val defaults to 5% of n_train. max_digits (1..12) bounds the integer digits of train/val/test/phrasing
    operands; extrap uses max_digits+1 .. max_digits+2. max_ops (2..MAX_STEPS) is the longest "multi" chain.
    labels=False skips {split}_roles.bin / _steps_of.bin / _steps.npy / _ops.bin and removes stale ones. tokenizer
    "gpt2" writes the same problems as GPT-2 BPE tokens (gpt2_tokens; tiktoken_file: a local gpt2.tiktoken, else
    tiktoken downloads its own) and no meta.pkl, as nanoGPT's BPE datasets. prose, a path to a plain-text file, makes a
    mixture: its paragraphs (prose_paragraphs: the first 90% for train, the rest for val) are spread evenly
    between the train and val problems, labelled as text (no answers; digit runs are numbers), and val_prose.bin
    holds the val paragraphs alone, for the val loss on the prose (eval_numeric.py prints it); n_train sets the
    mix (Tiny Shakespeare's ~1.0M train chars against ~27 chars a problem: n_train=40000 is about half prose).
    Returns a summary dict: per split {'problems', 'max_chars'} (+ 'tokens' for train and val, and with prose
    'prose_tokens'), vocab_size, paths, seconds. p_multi: the share of chains among the train and val problems
    (make_problem; P_MULTI, 0.3, by default; None: a tenth, as in every held-out split). answer_all_steps
    (the default): the answer's label row is the answer in every column (step_rows; False: the root's close row;
    the train and val text is the same either way). Raises ValueError for max_digits, max_ops or p_multi out of
    range or a count of problems below 1 (train, val) or 0 (the rest), and FileNotFoundError / ValueError for a
    missing or unreadable prose file.
    """
    _check_sizes(max_digits, max_ops, p_multi)
    n_val = n_train // 20 if n_val is None else n_val
    if min(n_train, n_val) < 1 or min(n_test, n_extrap, n_phrasing) < 0:
        raise ValueError(f"n_train={n_train}, n_val={n_val}, n_test={n_test}, n_extrap={n_extrap}, "
                         f"n_phrasing={n_phrasing}: train and val need at least 1 problem, the rest >= 0")
    if tokenizer not in ("char", "gpt2"):
        raise ValueError(f"unknown tokenizer {tokenizer!r}: use 'char' or 'gpt2'")
    enc = None
    if tokenizer == "gpt2":
        from tokenizer import gpt2_encoding
        enc = gpt2_encoding(tiktoken_file)
    paragraphs = prose_paragraphs(prose) if prose else {"train": [], "val": []}
    encode_prose = (lambda t: np.asarray(enc.encode_ordinary(t), dtype=np.uint16)) if enc else encode  # noqa: E731
    prose_ids = {split: encode_prose("".join(p)) for split, p in paragraphs.items()} if prose else {}
    t0 = time.time()
    os.makedirs(out_dir, exist_ok=True)
    rngs = {split: random.Random(f"numeric:{seed}:{split}") for split in SPLITS}  # one stream per split
    held_out = {split: _held_out(rngs[split], split, n, max_digits, max_ops)
                for split, n in (("test", n_test), ("extrap", n_extrap), ("phrasing", n_phrasing))}

    paths = {split: os.path.join(out_dir, f"{split}.bin") for split in ("train", "val")}
    paths.update(meta=os.path.join(out_dir, "meta.pkl"), problems=os.path.join(out_dir, "problems.jsonl"))
    summary = {"seed": seed, "max_digits": max_digits, "max_ops": max_ops, "tokenizer": tokenizer,
               "vocab_size": enc.n_vocab if enc else len(ALPHABET), "paths": paths}
    exclude = {p["prompt"] for p in held_out["test"]}
    for split, n in (("val", n_val), ("train", n_train)):  # val first: train excludes test and val prompts
        stream = _stream(rngs[split], split, n, max_digits, max_ops, exclude, paragraphs[split], p_multi,
                         answer_all_steps)
        exclude |= set(stream["prompts"])
        ids = encode(stream["text"])
        roles = roles_labels(ids, stream["numbers"])
        steps_of = steps_of_labels(len(ids), [(c, c + 1, row) for c, row in stream["closes"]] + stream["answers"])
        ops = ops_labels(len(ids), stream["anchors"])
        if enc:
            ids, roles, steps_of, ops = gpt2_tokens(enc, stream["text"], roles, stream["numbers"],
                                                     stream["answers"], stream["closes"], stream["anchors"])
        ids.tofile(paths[split])
        label_paths = {name: os.path.join(out_dir, f"{split}_{file}") for name, file in LABEL_FILES.items()}
        if labels:
            roles.tofile(label_paths["roles"])
            steps_of.tofile(label_paths["steps_of"])
            np.save(label_paths["steps"], steps_labels(stream["steps"]))
            ops.tofile(label_paths["ops"])
            paths.update({f"{split}_{name}": path for name, path in label_paths.items()})
        stale = [] if labels else list(label_paths.values())  # a stale label file would no longer be aligned
        for path in stale + [os.path.join(out_dir, f"{split}_{name}") for name in LEGACY_LABELS]:
            if os.path.exists(path):
                os.remove(path)
        summary[split] = {"problems": n, "tokens": len(ids), "max_chars": stream["max_chars"]}
        if prose:
            summary[split]["prose_tokens"] = len(prose_ids[split])
    prose_path = os.path.join(out_dir, "val_prose.bin")  # the val prose alone: its loss, apart from the problems'
    if prose:
        prose_ids["val"].tofile(prose_path)
        paths["val_prose"] = prose_path
    elif os.path.exists(prose_path):  # a corpus with no prose has no prose loss
        os.remove(prose_path)

    if enc:  # no meta.pkl: the scripts then read GPT-2 BPE, as for nanoGPT's shakespeare and openwebtext
        del paths["meta"]
        if os.path.exists(os.path.join(out_dir, "meta.pkl")):
            os.remove(os.path.join(out_dir, "meta.pkl"))
    else:
        with open(paths["meta"], "wb") as f:
            pickle.dump({"vocab_size": len(ALPHABET), "itos": dict(enumerate(ALPHABET)),
                         "stoi": {c: i for i, c in enumerate(ALPHABET)}}, f)
    keys = ("prompt", "answer", "value", "op", "ops", "steps", "step_values", "digits", "split", "template")
    with open(paths["problems"], "w") as f:
        for split in ("test", "extrap", "phrasing"):
            encode("".join(p["text"] for p in held_out[split]))  # same alphabet check as the .bin files
            for p in held_out[split]:
                f.write(json.dumps({k: p[k] for k in keys}) + "\n")
            summary[split] = {"problems": len(held_out[split]),
                              "max_chars": max((len(p["text"]) for p in held_out[split]), default=0)}
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
    parser.add_argument("--n_phrasing", type=int, default=1000, help="problems in the held-out phrasings")
    parser.add_argument("--max_digits", type=int, default=4, help="integer digits of train/val/test operands")
    parser.add_argument("--max_ops", type=int, default=4, help=f"longest multi-step chain (2..{MAX_STEPS})")
    parser.add_argument("--tokenizer", default="char", choices=("char", "gpt2"),
                        help="char: one token per character (meta.pkl); gpt2: GPT-2 BPE token ids (no meta.pkl)")
    parser.add_argument("--tiktoken_file", default=None, help="with --tokenizer=gpt2: a local gpt2.tiktoken")
    parser.add_argument("--labels", action=argparse.BooleanOptionalAction, default=True,
                        help="write {train,val}_roles.bin / _steps_of.bin / _steps.npy / _ops.bin (the DAG's auxiliary "
                             "labels)")
    parser.add_argument("--prose", default=None,
                        help="a plain-text file (e.g. Tiny Shakespeare) whose paragraphs are mixed in between the "
                             "problems (90%% train, 10%% val), plus val_prose.bin for the loss on the prose alone")
    parser.add_argument("--p_multi", type=float, default=P_MULTI,
                        help="the share of multi-step chains among the train and val problems (default: %(default)s; "
                             "the held-out splits have a tenth; 0.4: more chains, fewer single ops with 5-6 digit "
                             "operands right, NOTES.md)")
    parser.add_argument("--answer_all_steps", action=argparse.BooleanOptionalAction, default=True,
                        help="label every DAG step with the answer at the answer's chars (--no-answer_all_steps: "
                             "the root's close row, its children on the earlier steps, which the model then writes; "
                             "NOTES.md, seventh and twelfth sessions)")
    args = parser.parse_args()
    try:
        s = prepare(args.out_dir, args.seed, args.n_train, args.n_val, args.n_test, args.n_extrap, args.n_phrasing,
                    args.max_digits, args.max_ops, args.labels, args.tokenizer, args.tiktoken_file, args.prose,
                    args.p_multi, args.answer_all_steps)
    except (ValueError, RuntimeError, FileNotFoundError) as e:
        sys.exit(f"prepare.py: {e}")
    print(f"numeric corpus, seed {s['seed']}, max_digits {s['max_digits']}, max_ops {s['max_ops']}, "
          f"{s['tokenizer']} tokens, vocab size {s['vocab_size']}, {s['seconds']:.1f}s (longest: chars of one "
          f"problem; training crops to block_size)")
    for split in SPLITS:
        chars = f", {s[split]['tokens']:,} tokens" if "tokens" in s[split] else ""
        if "prose_tokens" in s[split]:
            chars += f" ({s[split]['prose_tokens'] / s[split]['tokens']:.0%} of them prose)"
        print(f"{split}: {s[split]['problems']:,} problems{chars}, longest {s[split]['max_chars']} chars")
    for name, path in s["paths"].items():
        print(f"  {name:15s} {path}")
