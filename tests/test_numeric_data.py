"""Tests for data/numeric/prepare.py: determinism, exact answers checked from the prompt text alone, splits, files."""
import importlib.util
import json
import os
import pickle
import random
import re
import subprocess
import sys
from collections import Counter
from fractions import Fraction

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SIZES = dict(n_train=3000, n_val=300, n_test=400, n_extrap=200)


def load_prepare():
    """data/numeric/prepare.py is a script, not a package: import it from its path."""
    spec = importlib.util.spec_from_file_location("numeric_prepare", os.path.join(ROOT, "data", "numeric", "prepare.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


prep = load_prepare()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    out_dir = str(tmp_path_factory.mktemp("numeric"))
    summary = prep.prepare(out_dir, seed=1337, **SIZES)
    with open(os.path.join(out_dir, "meta.pkl"), "rb") as f:
        meta = pickle.load(f)
    texts, aux = {}, {}
    for split in ("train", "val"):
        ids = np.memmap(os.path.join(out_dir, f"{split}.bin"), dtype=np.uint16, mode="r")
        texts[split] = "".join(meta["itos"][int(i)] for i in ids)
        aux[split] = np.memmap(os.path.join(out_dir, f"{split}_values.bin"), dtype=np.float64, mode="r")
    with open(os.path.join(out_dir, "problems.jsonl")) as f:
        problems = [json.loads(line) for line in f]
    return dict(dir=out_dir, summary=summary, meta=meta, texts=texts, aux=aux, problems=problems)


# ----------------------------------------------------------------------------------------------------------------
# An evaluator written for the tests, independent of the generator's arithmetic: it reads only the prompt text.

UNSIGNED = re.compile(r"(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?k?")
CANONICAL = re.compile(r"-?(?:0|[1-9]\d*)(?:\.\d*[1-9])?")
SYMBOLIC = re.compile(r"(?:[0-9,.k()+\-*/^_ ]|max|min|log)+")
TOKEN = re.compile(r"\s*(?:(?P<num>(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?k?)|(?P<op>\*\*|max|min|log|[-+*/^(),_]))")
# One-step verbal phrasings: words that name the op (the symbolic ones are evaluated instead).
KEYWORDS = {
    "add": ("plus", "sum of", "Add "),
    "subtract": ("minus", "difference of", "Subtract "),
    "multiply": ("times", "product of", "multiplied by", "Multiply "),
    "divide": ("divided by", "quotient of", "Divide "),
    "log": ("log base", "logarithm base"),
    "pow": ("to the power",),
    "max": ("maximum of", "larger"),
    "min": ("minimum of", "smaller"),
    "identity": ("as digits", "in digits", "What number is", "written out"),
}


def exact_log(base, x):
    k, power = 0, Fraction(1)
    while power < x:
        power, k = power * base, k + 1
    assert power == x, f"{x} is not a power of {base}"
    return Fraction(k)


def numbers_in(text):
    """[(start, end, value)] of every number in text; '-' is a sign when it does not follow a number or ')'."""
    found = []
    for m in UNSIGNED.finditer(text):
        value, start = prep.parse_number(m.group()), m.start()
        if start > 0 and text[start - 1] == "-" and (start < 2 or text[start - 2] not in "0123456789k)."):
            value, start = -value, start - 1
        found.append((start, m.end(), value))
    return found


def evaluate_symbolic(expr):
    """Exact value of a symbolic expression: + - * / ^ ** unary minus, parentheses, max(,), min(,), log_b(x)."""
    tokens, pos = [], 0
    while pos < len(expr):
        m = TOKEN.match(expr, pos)
        assert m, f"cannot tokenize {expr!r} at {pos}"
        tokens.append(("num", prep.parse_number(m.group("num"))) if m.group("num") else ("op", m.group("op")))
        pos = m.end()
    tokens.append(("op", "end"))
    i = 0

    def take(expected=None):
        nonlocal i
        value = tokens[i][1]
        assert expected is None or value == expected, f"expected {expected!r} in {expr!r}, got {value!r}"
        i += 1
        return value

    def peek():
        return tokens[i][1]

    def sum_():
        value = product()
        while peek() in ("+", "-"):
            value = value + product() if take() == "+" else value - product()
        return value

    def product():
        value = unary()
        while peek() in ("*", "/"):
            value = value * unary() if take() == "*" else value / unary()
        return value

    def unary():
        if peek() == "-":
            take()
            return -unary()
        value = atom()
        if peek() in ("^", "**"):
            take()
            exponent = unary()
            assert exponent.denominator == 1 and exponent >= 0
            value = value ** int(exponent)
        return value

    def atom():
        if tokens[i][0] == "num":
            return take()
        name = take()
        if name == "(":
            value = sum_()
            take(")")
            return value
        if name in ("max", "min"):
            take("(")
            a = sum_()
            take(",")
            b = sum_()
            take(")")
            return max(a, b) if name == "max" else min(a, b)
        assert name == "log", f"unexpected {name!r} in {expr!r}"
        if peek() == "_":
            take()
        base = take()
        take("(")
        x = sum_()
        take(")")
        return exact_log(base, x)

    value = sum_()
    take("end")
    return value


def evaluate_prompt(prompt):
    """(exact answer, op name or None) from the prompt text alone."""
    for wrapper in (r"(.*) = ", r"(.*)=", r"What is (.*)\? ", r"Compute (.*): ", r"(.*) equals "):
        m = re.fullmatch(wrapper, prompt)
        if m and SYMBOLIC.fullmatch(m.group(1)):
            return evaluate_symbolic(m.group(1)), None
    ops = [op for op, words in KEYWORDS.items() if any(w in prompt for w in words)]
    assert len(ops) == 1, f"cannot tell the op of {prompt!r}: {ops}"
    op, values = ops[0], [v for _, _, v in numbers_in(prompt)]
    assert len(values) == (1 if op == "identity" else 2), f"{prompt!r}: {values}"
    if op == "identity":
        return values[0], op
    a, b = values
    if op == "subtract" and " from " in prompt:
        a, b = b, a
    result = {
        "add": lambda: a + b, "subtract": lambda: a - b, "multiply": lambda: a * b, "divide": lambda: a / b,
        "log": lambda: exact_log(a, b), "pow": lambda: a ** int(b), "max": lambda: max(a, b), "min": lambda: min(a, b),
    }[op]()
    return result, op


def check_line(prompt, answer):
    assert CANONICAL.fullmatch(answer) and answer != "-0", f"answer {answer!r} is not canonical"
    expected, op = evaluate_prompt(prompt)
    assert Fraction(answer) == expected, f"{prompt!r} answered {answer!r}, expected {expected}"
    assert abs(expected) < 2**53
    return op


def split_line(line):
    """A corpus line (without '\n') -> (prompt, answer): the answer is the number that ends the line."""
    m = re.search(r"-?\d+(?:\.\d+)?$", line)
    return line[: m.start()], m.group()


def max_operand_digits(prompt):
    return max(len(str(int(abs(v)))) for _, _, v in numbers_in(prompt))


# ----------------------------------------------------------------------------------------------------------------


def test_format_answer_and_parse_number():
    assert prep.format_answer(Fraction(357)) == "357"
    assert prep.format_answer(Fraction(5, 2)) == "2.5"
    assert prep.format_answer(Fraction(-1, 4)) == "-0.25"
    assert prep.format_answer(Fraction(0)) == "0" and prep.format_answer(-Fraction(0)) == "0"
    assert prep.format_answer(Fraction(12500, 1000)) == "12.5"
    with pytest.raises(ValueError):
        prep.format_answer(Fraction(1, 3))
    cases = {"12,345": 12345, "-7": -7, "12.5": Fraction(25, 2), "3k": 3000, "2.5k": 2500, "-1,234.05": Fraction(-123405, 100),
             "0": 0, "12.25k": 12250}
    for text, value in cases.items():
        assert prep.parse_number(text) == value, text
    for bad in ("1,23", "12,", "--7", "k", "1.5.2", " 7", "1 000"):
        with pytest.raises(ValueError):
            prep.parse_number(bad)


def test_alphabet_and_meta(corpus):
    alphabet = prep.ALPHABET
    assert alphabet == "".join(sorted(set(alphabet)))
    meta = corpus["meta"]
    assert meta == {"vocab_size": len(alphabet), "itos": dict(enumerate(alphabet)), "stoi": {c: i for i, c in enumerate(alphabet)}}
    # the round trip: decoded train.bin re-encodes to the same ids, and every line is a problem
    text = corpus["texts"]["train"]
    ids = np.fromfile(os.path.join(corpus["dir"], "train.bin"), dtype=np.uint16)
    assert np.array_equal(np.array([meta["stoi"][c] for c in text], dtype=np.uint16), ids)
    assert text.endswith("\n") and text.count("\n") == SIZES["n_train"]
    with pytest.raises(ValueError):
        prep.encode("12 + 3 = 15 \u00e9")


def test_same_seed_same_bytes_other_seed_differs(corpus, tmp_path):
    again, other = tmp_path / "again", tmp_path / "other"
    prep.prepare(str(again), seed=1337, **SIZES)
    prep.prepare(str(other), seed=7, **SIZES)
    names = sorted(os.listdir(corpus["dir"]))
    assert names == sorted(os.listdir(again)) and "train_values.bin" in names
    for name in names:
        with open(os.path.join(corpus["dir"], name), "rb") as f, open(again / name, "rb") as g:
            assert f.read() == g.read(), name
    assert (other / "train.bin").read_bytes() != (again / "train.bin").read_bytes()


def test_every_answer_is_right(corpus):
    # every line of the written train and val text, read back from the .bin files
    for split in ("train", "val"):
        for line in corpus["texts"][split].splitlines():
            check_line(*split_line(line))
    # every held-out problem, with its recorded fields
    for p in corpus["problems"]:
        op = check_line(p["prompt"], p["answer"])
        assert op is None or op == p["op"]
        assert p["value"] == float(Fraction(p["answer"]))
        assert p["steps"] == len(p["ops"]) and (p["op"] == "multi") == (p["steps"] > 1)
    # a large fresh sample of one-step problems of every op, and multi-step ones, in both digit ranges
    rng = random.Random(0)
    for split, n in (("train", 200), ("extrap", 50)):
        for op in prep.CATEGORIES:
            for _ in range(n):
                p = prep.make_problem(rng, split, op=op)
                assert p["text"] == p["prompt"] + p["answer"] + "\n"
                inferred = check_line(p["prompt"], p["answer"])
                assert inferred is None or inferred == op
                assert p["ops"] == [op] if op != "multi" else set(p["ops"]) <= set(prep.OPS) and p["steps"] in (2, 3)


def test_ops_formats_and_balance(corpus):
    problems = corpus["problems"]
    for split, n in (("test", SIZES["n_test"]), ("extrap", SIZES["n_extrap"])):
        counts = Counter(p["op"] for p in problems if p["split"] == split)
        assert sum(counts.values()) == n and set(counts) == set(prep.CATEGORIES)
        assert max(counts.values()) - min(counts.values()) <= 1
    assert {op for p in problems for op in p["ops"]} == set(prep.OPS)
    text = corpus["texts"]["train"]
    assert all(any(w in text for w in words) for words in KEYWORDS.values())
    for name, pattern in {"comma": r"\d,\d{3}", "decimal": r"\d\.\d", "k": r"\dk", "negative": r"(?:^|[ (=+*/,-])-\d",
                          "plain": r"(?:^|[ (])\d+[ )=?:+*/^-]"}.items():
        assert re.search(pattern, text, re.M), f"no {name} number in the train text"


def test_extrap_has_longer_operands_and_held_out_prompts(corpus):
    train_digits = max(max_operand_digits(split_line(line)[0]) for line in corpus["texts"]["train"].splitlines())
    assert train_digits == 4
    for p in corpus["problems"]:
        digits = max_operand_digits(p["prompt"])
        assert digits == p["digits"]
        if p["split"] == "extrap":
            assert 5 <= digits <= 6 and digits > train_digits
        else:
            assert digits <= 4
    for split in ("train", "val"):
        lines = "\n" + corpus["texts"][split]
        assert not [p["prompt"] for p in corpus["problems"] if p["split"] == "test" and "\n" + p["prompt"] in lines]


def test_value_labels(corpus):
    for split in ("train", "val"):
        text, aux = corpus["texts"][split], corpus["aux"][split]
        assert aux.dtype == np.float64 and len(aux) == len(text)
        labelled = np.flatnonzero(~np.isnan(aux))
        numbers = {end - 1: value for _, end, value in numbers_in(text)}
        assert sorted(numbers) == labelled.tolist()  # every number, and only numbers, at its last char
        for pos in labelled:
            assert aux[pos] == float(numbers[pos]), (pos, text[max(0, pos - 20): pos + 1])
    p = prep.make_problem(random.Random(3), "train", op="identity")
    assert [(i, v) for i, v in p["values"]] == [(end - 1, float(v)) for _, end, v in numbers_in(p["text"])]


def test_no_values_and_cli(tmp_path):
    prep.prepare(str(tmp_path), n_train=100, n_test=20, n_extrap=10, values=False)
    assert sorted(os.listdir(tmp_path)) == ["meta.pkl", "problems.jsonl", "train.bin", "val.bin"]
    script = os.path.join(ROOT, "data", "numeric", "prepare.py")
    out = subprocess.run([sys.executable, script, "--out_dir", str(tmp_path / "cli"), "--n_train", "200", "--n_test", "20",
                          "--n_extrap", "10", "--max_digits", "3"], capture_output=True, text=True, check=True).stdout
    assert "vocab size" in out and (tmp_path / "cli" / "train_values.bin").exists()
    with pytest.raises(ValueError):
        prep.prepare(str(tmp_path), max_digits=9)
    with pytest.raises(ValueError):
        prep.make_problem(random.Random(0), "dev")


def test_role_and_answer_labels(corpus):
    """roles: what each char is in a number (independently re-derived here); answers: the line's result from the
    prompt's last char to the answer's last char."""
    names = {**{d: d for d in "0123456789"}, ",": "sep", ".": "point", "k": "k", "-": "minus"}
    for split in ("train", "val"):
        text = corpus["texts"][split][:20000]
        roles = np.fromfile(os.path.join(corpus["dir"], f"{split}_roles.bin"), dtype=np.uint8)[:len(text)]
        answers = np.fromfile(os.path.join(corpus["dir"], f"{split}_answers.bin"), dtype=np.float64)[:len(text)]
        expected = np.zeros(len(text), dtype=np.uint8)
        for start, end, _ in numbers_in(text):
            expected[start:end] = [prep.ROLES.index(names[c]) for c in text[start:end]]
        assert roles.tolist() == expected.tolist()
        expected_answers = np.full(len(text), np.nan)
        line_start = 0
        for line in text.split("\n")[:-1]:
            start, end, value = numbers_in(line)[-1]  # the answer ends the line
            expected_answers[line_start + start - 1:line_start + end] = float(value)
            line_start += len(line) + 1
        np.testing.assert_array_equal(answers[:line_start], expected_answers[:line_start])
