"""Tests for data/numeric/prepare.py: determinism, exact answers and step values recomputed from the prompt text
alone, held-out phrasings, splits, label files, the CLI."""
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

from data.numeric import prepare as prep

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SIZES = dict(n_train=3000, n_val=300, n_test=400, n_extrap=200, n_phrasing=200)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    out_dir = str(tmp_path_factory.mktemp("numeric"))
    summary = prep.prepare(out_dir, seed=1337, **SIZES)
    with open(os.path.join(out_dir, "meta.pkl"), "rb") as f:
        meta = pickle.load(f)
    texts, labels = {}, {}
    for split in ("train", "val"):
        ids = np.fromfile(os.path.join(out_dir, f"{split}.bin"), dtype=np.uint16)
        texts[split] = "".join(meta["itos"][int(i)] for i in ids)
        labels[split] = {name: np.fromfile(os.path.join(out_dir, f"{split}_{name}.bin"), dtype=dtype)
                         for name, dtype in (("roles", np.uint8), ("steps_of", np.int32), ("ops", np.uint8))}
        labels[split]["steps"] = np.load(os.path.join(out_dir, f"{split}_steps.npy"))
    with open(os.path.join(out_dir, "problems.jsonl")) as f:
        problems = [json.loads(line) for line in f]
    return dict(dir=out_dir, summary=summary, meta=meta, texts=texts, labels=labels, problems=problems)


# ----------------------------------------------------------------------------------------------------------------
# An evaluator written for the tests, independent of the generator's arithmetic: it reads only the prompt text,
# matching it against every template (a slot is one number, or for "multi" an expression) and computing the result.

UNSIGNED = r"(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?k?"
NUMBER_SLOT = rf"(?:\(-{UNSIGNED}\)|-?{UNSIGNED})"
EXPR_SLOT = r"(?:[-0-9,.k()+/ ]|(?<!\*)\*(?!\*)|max|min)+"
CANONICAL = re.compile(r"-?(?:0|[1-9]\d*)(?:\.\d*[1-9])?")
TOKEN = re.compile(rf"\s*(?:(?P<num>{UNSIGNED})|(?P<op>max|min|[-+*/(),]))")
BINARY = {
    "add": lambda a, b: a + b, "subtract": lambda a, b: a - b, "multiply": lambda a, b: a * b,
    "divide": lambda a, b: a / b, "max": max, "min": min,
}


def template_regex(category, template):
    slot = EXPR_SLOT if category == "multi" else NUMBER_SLOT
    pieces = re.split(r"\{(\w+)\}", template)
    return re.compile("".join(re.escape(p) if i % 2 == 0 else f"(?P<{p}>{slot})" for i, p in enumerate(pieces)))


TRAIN_TEMPLATES = {c: prep.TEMPLATES[c] + prep.COMPOSED_TEMPLATES[c] for c in prep.CATEGORIES}  # train and val
REGEXES = {name: [(c, t, template_regex(c, t)) for c, ts in table.items() for t in ts]
           for name, table in (("train", TRAIN_TEMPLATES), ("held_out", prep.HELD_OUT_TEMPLATES))}
# a core between made-up words (prep.filler_template: train and val only): (category, core, regex)
FILLER_REGEXES = [(c, core, re.compile(r"(?P<lead>(?:[A-Za-z]+ )*)" + template_regex(c, core).pattern
                                       + r"(?P<end>(?: [a-z]+)+) "))
                  for c, cores in prep.CORES.items() for core in cores]


def filler_readings(prompt):
    """The readings of prompt as a core between made-up words: [(category, template, groups)], the template with
    its words as make_problem records it. Every word must be one filler_word makes (0-2 before, 1-2 after)."""
    found = []
    for category, core, regex in FILLER_REGEXES:
        m = regex.fullmatch(prompt)
        if m:
            lead, end = m["lead"].split(), m["end"].split()
            words = [w[0].lower() + w[1:] if i == 0 else w for i, w in enumerate(lead)] + end
            if len(lead) <= 2 and 1 <= len(end) <= 2 and all(map(prep.is_filler_word, words)):
                groups = {k: v for k, v in m.groupdict().items() if k not in ("lead", "end")}
                found.append((category, m["lead"] + core + m["end"] + " ", groups))
    return found


def exact_log(base, x):
    k, power = 0, Fraction(1)
    while power < x:
        power, k = power * base, k + 1
    assert power == x, f"{x} is not a power of {base}"
    return Fraction(k)


def slot_value(text):
    return prep.parse_number(text[1:-1] if text.startswith("(") else text)


def evaluate_expression(expr):
    """Exact value of an infix expression (+ - * / unary minus, parentheses, max(,), min(,)) and the (op, value,
    height, end, right) of every binary op in evaluation order: its height in the expression's tree (1 for an op on
    two numbers), the index in expr just past its last number, and just past its right operand's first number."""
    tokens, pos = [], 0
    while pos < len(expr):
        m = TOKEN.match(expr, pos)
        assert m, f"cannot tokenize {expr!r} at {pos}"
        tokens.append(("num", prep.parse_number(m.group("num")), m.end()) if m.group("num") else
                      ("op", m.group("op"), m.end()))
        pos = m.end()
    tokens.append(("op", "end", pos))
    i, steps = 0, []

    def take(expected=None):
        nonlocal i
        value = tokens[i][1]
        assert expected is None or value == expected, f"expected {expected!r} in {expr!r}, got {value!r}"
        i += 1
        return value

    def number(sign):  # (value, height 0, end, the end of its first number)
        end = tokens[i][2]
        return sign * take(), 0, end, end

    def record(op, a, b):  # a, b: (value, height, end, first number's end)
        steps.append((op, BINARY[op](a[0], b[0]), 1 + max(a[1], b[1]), b[2], b[3]))
        return steps[-1][1:4] + (a[3],)

    def sum_():
        value = product()
        while tokens[i][1] in ("+", "-"):
            op = {"+": "add", "-": "subtract"}[take()]
            value = record(op, value, product())
        return value

    def product():
        value = unary()
        while tokens[i][1] in ("*", "/"):
            op = {"*": "multiply", "/": "divide"}[take()]
            value = record(op, value, unary())
        return value

    def unary():
        if tokens[i][1] == "-":
            take()
            assert tokens[i][0] == "num", f"a '-' sign must precede a number in {expr!r}"
            return number(-1)
        if tokens[i][0] == "num":
            return number(1)
        name = take()
        if name == "(":
            value = sum_()
            take(")")
            return value
        assert name in ("max", "min"), f"unexpected {name!r} in {expr!r}"
        take("(")
        a = sum_()
        take(",")
        b = sum_()
        take(")")
        return record(name, a, b)

    value = sum_()
    take("end")
    return value[0], steps


def interpret(category, groups):
    """(exact answer, [(op, exact value, height, end)] of every step) of one template match (evaluate_expression;
    end None for one op: the prompt's last number closes it)."""
    if category == "multi":
        return evaluate_expression(groups["a"])
    a = slot_value(groups["a"])
    if category == "identity":
        return a, [("identity", a, 1, None)]
    b = slot_value(groups["b"])
    if category == "log":
        value = exact_log(a, b)
    elif category == "pow":
        assert b.denominator == 1 and b >= 0
        value = a ** int(b)
    else:
        value = BINARY[category](a, b)
    return value, [(category, value, 1, None)]  # height 1, closed after the prompt's last number


def interpretations(prompt, table):
    """Every reading of prompt by a template of table ('train' or 'held_out'): [(category, template, groups,
    value, steps)]; a "multi" reading needs 2+ ops (a shorter expression is another category's template)."""
    found = []
    matches = [(c, t, m.groupdict()) for c, t, r in REGEXES[table] for m in [r.fullmatch(prompt)] if m]
    for category, template, groups in matches + (filler_readings(prompt) if table == "train" else []):
        value, steps = interpret(category, groups)
        if category != "multi" or len(steps) >= 2:
            found.append((category, template, groups, value, steps))
    return found


def assert_exact_in_float64(x):
    assert abs(x) < 2**53 and len(prep.format_answer(abs(x)).replace(".", "").lstrip("0")) <= 15, x
    assert Fraction(repr(float(x))) == x, f"{x} does not survive float64"


def check_line(prompt, answer, table="train"):
    """Asserts the prompt has exactly one reading, by a template of table and by none of the other table, and that
    its result is answer, exactly and canonically; returns (category, template, groups, value, steps)."""
    assert "\n" not in prompt
    assert CANONICAL.fullmatch(answer) and answer != "-0", f"answer {answer!r} is not canonical"
    other = {"train": "held_out", "held_out": "train"}[table]
    assert not [t for c, t, r in REGEXES[other] if r.fullmatch(prompt)], f"{prompt!r} reads as a {other} template"
    found = interpretations(prompt, table)
    assert len(found) == 1, f"{prompt!r} has {len(found)} readings: {[f[:2] for f in found]}"
    reading = found[0]
    assert Fraction(answer) == reading[3], f"{prompt!r} answered {answer!r}, expected {reading[3]}"
    for _, value, *_ in reading[4]:
        assert_exact_in_float64(value)
    return reading


def split_line(line):
    """A corpus line (without '\n') -> (prompt, answer): the answer is the number that ends the line."""
    m = re.search(r"-?\d+(?:\.\d+)?$", line)
    return line[: m.start()], m.group()


def numbers_in(text):
    """[(start, end, value)] of every number in text; '-' is a sign when it does not follow a number or ')'."""
    found = []
    for m in re.finditer(UNSIGNED, text):
        value, start = prep.parse_number(m.group()), m.start()
        if start > 0 and text[start - 1] == "-" and (start < 2 or text[start - 2] not in "0123456789k)."):
            value, start = -value, start - 1
        found.append((start, m.end(), value))
    return found


def max_operand_digits(prompt):
    return max(len(str(int(abs(v)))) for _, _, v in numbers_in(prompt))


def check_problem(p):
    """A problem dict (from make_problem or problems.jsonl) against its own prompt text."""
    table = "held_out" if p["split"] == "phrasing" else "train"
    category, template, _, value, steps = check_line(p["prompt"], p["answer"], table)
    assert (category, template) == (p["op"], p["template"])
    assert p["value"] == float(value)
    assert p["ops"] == [op for op, *_ in steps] and p["steps"] == len(steps) == len(p["step_values"])
    assert p["step_values"] == [float(v) for _, v, *_ in steps] and p["step_values"][-1] == p["value"]
    assert p["digits"] == max_operand_digits(p["prompt"])


# ----------------------------------------------------------------------------------------------------------------


def test_format_answer_and_parse_number():
    assert prep.format_answer(Fraction(357)) == "357"
    assert prep.format_answer(Fraction(5, 2)) == "2.5"
    assert prep.format_answer(Fraction(-1, 4)) == "-0.25"
    assert prep.format_answer(Fraction(0)) == "0" and prep.format_answer(-Fraction(0)) == "0"
    assert prep.format_answer(Fraction(12500, 1000)) == "12.5"
    assert prep.format_answer(Fraction(1, 10**9)) == "0.000000001"
    with pytest.raises(ValueError):
        prep.format_answer(Fraction(1, 3))
    cases = {"12,345": 12345, "-7": -7, "12.5": Fraction(25, 2), "3k": 3000, "2.5k": 2500, "-1,234.05": Fraction(-123405, 100),
             "0": 0, "12.25k": 12250, "0.123456789": Fraction(123456789, 10**9)}
    for text, value in cases.items():
        assert prep.parse_number(text) == value, text
    for bad in ("1,23", "12,", "--7", "k", "1.5.2", " 7", "1 000", "(-4)"):
        with pytest.raises(ValueError):
            prep.parse_number(bad)


def test_alphabet_encode_and_meta(corpus):
    assert prep.ALPHABET == "\n" + "".join(chr(c) for c in range(32, 127))
    assert len(prep.ALPHABET) == 96 and prep.ALPHABET == "".join(sorted(prep.ALPHABET))
    assert prep.encode(prep.ALPHABET).tolist() == list(range(96)) and prep.encode("").dtype == np.uint16
    with pytest.raises(ValueError, match="'\u00e9'"):
        prep.encode("12 + 3 = 15 \u00e9")
    with pytest.raises(ValueError, match="'\\\\t'"):
        prep.encode("1\t2")
    meta = corpus["meta"]
    assert meta == {"vocab_size": 96, "itos": dict(enumerate(prep.ALPHABET)), "stoi": {c: i for i, c in enumerate(prep.ALPHABET)}}
    text = corpus["texts"]["train"]
    assert text.endswith("\n") and text.count("\n") == SIZES["n_train"]


def test_one_vocabulary_of_labels():
    from dag_model import CLASSES, OPS
    assert prep.OPS is OPS and prep.ROLES is CLASSES and prep.CATEGORIES == OPS + ("multi",)
    assert prep.SPLITS == ("train", "val", "test", "extrap", "phrasing") and prep.MAX_STEPS == 8


def test_templates():
    for table in (prep.TEMPLATES, prep.HELD_OUT_TEMPLATES):
        assert set(table) == set(prep.CATEGORIES)
    train = {t for ts in prep.TEMPLATES.values() for t in ts}
    held_out = {t for ts in prep.HELD_OUT_TEMPLATES.values() for t in ts}
    assert not train & held_out  # a held-out phrasing is no training phrasing of any category
    for category in prep.CATEGORIES:
        n_train, n_held = len(set(prep.TEMPLATES[category])), len(set(prep.HELD_OUT_TEMPLATES[category]))
        assert n_train >= 10 and n_held >= 2 and 0.15 <= n_held / (n_train + n_held) <= 0.3, category
        for template in prep.TEMPLATES[category] + prep.HELD_OUT_TEMPLATES[category]:
            names = sorted(re.findall(r"\{(\w+)\}", template))
            assert names == (["a"] if category in ("identity", "multi") else ["a", "b"]), template
            assert "\n" not in template and template[-1] in " =" and not re.search(r"\d", template), template
            prep.encode(template)


# the held-out phrasings' own words: no composed phrasing may use them, or the phrasing split would measure less
HELD_OUT_WORDS = ("work out", "you get", "make", "lots", "taken", "away from", "leaves", "pick", "spell", "plainly",
                  "exponent", "turns", "power must", "come to", "find", "result", "pow(", "over", "of {a} and {b},",
                  "raised to the power of")


def test_composed_templates():
    held_out = {t.lower() for ts in prep.HELD_OUT_TEMPLATES.values() for t in ts}
    assert set(prep.COMPOSED_TEMPLATES) == set(prep.CATEGORIES) and 0 < prep.P_COMPOSED < 1
    for category, templates in prep.COMPOSED_TEMPLATES.items():
        assert len(set(templates)) == len(templates) >= 60, category
        assert not set(templates) & set(prep.TEMPLATES[category]), category  # each phrasing listed once
        for template in templates:
            assert template.lower() not in held_out, template
            assert not [w for w in HELD_OUT_WORDS if w in template.lower()], template
            names = sorted(re.findall(r"\{(\w+)\}", template))
            assert names == (["a"] if category in ("identity", "multi") else ["a", "b"]), template
            assert template[-1] == " " and not re.search(r"\d", template), template
            prep.encode(template)
    for template in held_out:  # and every held-out phrasing has one of them
        assert [w for w in HELD_OUT_WORDS if w in template], template


def test_filler_words_are_made_up():
    rng = random.Random(0)
    words = [prep.filler_word(rng) for _ in range(2000)]
    assert len(set(words)) > 1000 and {len(w) for w in words} == set(range(2, 8))
    for word in set(words):
        assert prep.is_filler_word(word) and word not in prep.TEMPLATE_WORDS, word
        assert not [w for w in HELD_OUT_WORDS if w in word], word
    assert not prep.is_filler_word("make") and not prep.is_filler_word("is") and not prep.is_filler_word("me")
    assert prep.is_filler_word("zovi") and not prep.is_filler_word("zovik")  # no 'k': a number's suffix
    for op in prep.CATEGORIES:  # a filler template has its core's slots; check_problem reads problems back
        template = prep.filler_template(rng, op)
        assert template.endswith(" ") and not re.search(r"\d", template), template
        assert sorted(re.findall(r"\{(\w+)\}", template)) == (["a"] if op in ("identity", "multi") else ["a", "b"])
    filler_problems = []
    while len(filler_problems) < 200:
        p = prep.make_problem(rng, "train")
        if p["template"] not in prep.COMPOSED_TEMPLATES[p["op"]] + prep.TEMPLATES[p["op"]]:
            filler_problems.append(p)
            check_problem(p)
    assert {p["op"] for p in filler_problems} == set(prep.CATEGORIES)


def test_same_seed_same_bytes_other_seed_differs(corpus, tmp_path):
    again, other = tmp_path / "again", tmp_path / "other"
    prep.prepare(str(again), seed=1337, **SIZES)
    prep.prepare(str(other), seed=7, **SIZES)
    names = sorted(os.listdir(corpus["dir"]))
    assert names == sorted(os.listdir(again)) == sorted(
        ["meta.pkl", "problems.jsonl"]
        + [f"{s}{x}" for s in ("train", "val")
           for x in (".bin", "_roles.bin", "_steps_of.bin", "_steps.npy", "_ops.bin")])
    for name in names:
        assert (again / name).read_bytes() == open(os.path.join(corpus["dir"], name), "rb").read(), name
    assert (other / "train.bin").read_bytes() != (again / "train.bin").read_bytes()


def test_every_answer_and_step_is_right(corpus):
    # every line of the written train and val text, read back from the .bin files: one training template each
    composed = {t for ts in prep.COMPOSED_TEMPLATES.values() for t in ts}
    listed = composed | {t for ts in prep.TEMPLATES.values() for t in ts}  # every template but a filler one
    for split in ("train", "val"):
        readings = [check_line(*split_line(line)) for line in corpus["texts"][split].splitlines()]
        share = sum(template in composed for _, template, *_ in readings) / len(readings)
        filler = sum(template not in listed for _, template, *_ in readings) / len(readings)
        assert abs(share - prep.P_COMPOSED * (1 - prep.P_FILLER)) < 0.1, (split, share)  # the rest in TEMPLATES
        assert abs(filler - prep.P_COMPOSED * prep.P_FILLER) < 0.1 and filler > 0, (split, filler)
    # every held-out problem with its recorded fields; phrasing problems read only as held-out templates
    for p in corpus["problems"]:
        check_problem(p)
    # a fresh sample of every category in every split, with chains up to MAX_STEPS
    rng = random.Random(0)
    for split, n in (("train", 100), ("extrap", 30), ("phrasing", 30)):
        for op in prep.CATEGORIES:
            for _ in range(n):
                p = prep.make_problem(rng, split, op=op, max_ops=8)
                assert p["text"] == p["prompt"] + p["answer"] + "\n" and p["split"] == split
                check_problem(p)


def test_held_out_phrasings_only_in_phrasing(corpus):
    problems = corpus["problems"]
    held_out = {t for ts in prep.HELD_OUT_TEMPLATES.values() for t in ts}
    for p in problems:
        assert (p["template"] in held_out) == (p["split"] == "phrasing"), p
        assert p["template"] in (prep.HELD_OUT_TEMPLATES if p["split"] == "phrasing" else prep.TEMPLATES)[p["op"]]
    used = {(p["op"], p["template"]) for p in problems if p["split"] == "phrasing"}
    assert len(used) >= 25  # most held-out phrasings occur
    for split in ("train", "val"):  # no line of the training text reads as a held-out phrasing
        for line in corpus["texts"][split].splitlines():
            prompt = split_line(line)[0]
            assert not [t for _, t, r in REGEXES["held_out"] if r.fullmatch(prompt)], line


def test_splits_balance_and_disjoint_prompts(corpus):
    problems = corpus["problems"]
    for split in ("test", "extrap", "phrasing"):
        counts = Counter(p["op"] for p in problems if p["split"] == split)
        assert sum(counts.values()) == SIZES[f"n_{split}"] and set(counts) == set(prep.CATEGORIES)
        assert max(counts.values()) - min(counts.values()) <= 1
        prompts = [p["prompt"] for p in problems if p["split"] == split]
        assert len(set(prompts)) == len(prompts)
    train = {split_line(line)[0] for line in corpus["texts"]["train"].splitlines()}
    val = {split_line(line)[0] for line in corpus["texts"]["val"].splitlines()}
    test = {p["prompt"] for p in problems if p["split"] == "test"}
    assert not (test | val) & train and not test & val
    summary = corpus["summary"]
    for split in ("train", "val"):
        lines = corpus["texts"][split].splitlines()
        assert summary[split]["max_chars"] == max(len(line) + 1 for line in lines)
        assert summary[split]["problems"] == len(lines) and summary[split]["tokens"] == len(corpus["texts"][split])
    for split in ("test", "extrap", "phrasing"):
        longest = max(len(p["prompt"]) + len(p["answer"]) + 1 for p in problems if p["split"] == split)
        assert summary[split]["max_chars"] == longest


def test_operand_digits_per_split(corpus):
    train_digits = max(max_operand_digits(split_line(line)[0]) for line in corpus["texts"]["train"].splitlines())
    assert train_digits == 4
    for p in corpus["problems"]:
        assert (5 <= p["digits"] <= 6) if p["split"] == "extrap" else (p["digits"] <= 4)
    p = prep.make_problem(random.Random(1), "extrap", max_digits=12, op="multiply")
    assert 13 <= p["digits"] <= 14
    check_problem(p)


def test_number_formats_and_negatives():
    rng = random.Random(2)
    problems = [prep.make_problem(rng, "train", max_ops=8) for _ in range(3000)]
    text = "".join(p["text"] for p in problems)
    for name, pattern in {"comma": r"\d,\d{3}", "decimal": r"\d\.\d", "k": r"\dk", "plain": r"(?:^|[ (])\d+[ )=?:+*/^-]",
                          "negative in parentheses": r"\(-\d", "negative at a line start": r"^-\d"}.items():
        assert re.search(pattern, text, re.M), f"no {name} number in the text"
    assert not re.search(r"[-+*/^]\s*-\d", text), "a negative operand after an operator needs parentheses"
    assert not re.search(r"-[\d.,k]+\s*(?:\^|\*\*)", text), "a negative base needs parentheses: -2^4 is -16"
    decimals = Counter(len(m) for m in re.findall(r"\d\.(\d+)(?!\d)", "".join(p["prompt"] for p in problems)))
    assert max(decimals) == 9 and (decimals[1] + decimals[2]) > 0.6 * sum(decimals.values())
    first, second, inside, start = set(), set(), 0, 0
    for p in problems:
        category, _, groups, _, _ = interpretations(p["prompt"], "train")[0]
        if category == "multi":
            inside += "(-" in groups["a"]
            start += groups["a"].startswith("-")
        else:
            first.add(category) if groups["a"].lstrip("(").startswith("-") else None
            second.add(category) if groups.get("b", "").lstrip("(").startswith("-") else None
    assert first >= {"add", "subtract", "multiply", "divide", "max", "min", "pow", "identity"}
    assert second >= {"add", "subtract", "multiply", "divide", "max", "min"}
    assert inside > 10 and start > 10


def test_chains_reach_max_ops(corpus):
    assert max(p["steps"] for p in corpus["problems"]) == 4  # the default max_ops
    rng = random.Random(3)
    steps = Counter(prep.make_problem(rng, "train", op="multi", max_ops=8)["steps"] for _ in range(300))
    assert set(steps) == set(range(2, 9))
    for bad in (1, 9):
        with pytest.raises(ValueError, match="max_ops"):
            prep.make_problem(rng, "train", max_ops=bad)


def test_roles_agree_with_parse_number(corpus):
    """The role of each char, re-derived here: every run of non-'other' roles is one number whose chars' roles
    re-parse to its value, and the runs are exactly the numbers an independent reading of the text finds."""
    char_of = {"sep": ",", "point": ".", "minus": "-"}  # the char each role stands for ('k' is its name)
    for split in ("train", "val"):
        text, roles = corpus["texts"][split], corpus["labels"][split]["roles"]
        assert roles.dtype == np.uint8 and len(roles) == len(text)
        inside = np.diff(np.concatenate([[0], (roles != 0).astype(np.int8), [0]]))
        runs = list(zip(np.flatnonzero(inside == 1).tolist(), np.flatnonzero(inside == -1).tolist()))
        numbers = numbers_in(text)
        # a ',' or '.' right after a number belongs to its run: a causal reader cannot tell it from one inside
        trailing = lambda end: end + (text[end:end + 1] in (",", "."))  # noqa: E731
        assert runs == [(start, trailing(end)) for start, end, _ in numbers]
        assert any(end != trailing(end) for _, end, _ in numbers)  # the corpus has such text ("max(3, 4)")
        for (start, end), (_, number_end, value) in zip(runs, numbers):
            names = [prep.CLASSES[r] for r in roles[start:end]]
            chars = "".join(c if name in ("digits", "new_digits") else char_of.get(name, name)
                            for c, name in zip(text[start:end], names))
            assert chars == text[start:end] and prep.parse_number(chars[:number_end - start]) == value
            assert all(c.isdigit() for c, name in zip(text[start:end], names) if name in ("digits", "new_digits"))
            # a number starts with its sign ('minus') or its first digit: 'new_digits' right after another number
            follows = start > 0 and roles[start - 1] != 0
            assert names[0] in ("minus", "new_digits" if follows else "digits") and "new_digits" not in names[1:]
    rng = random.Random(4)
    for _ in range(300):  # make_problem's spans: every number, signs included, and nothing else
        p = prep.make_problem(rng, "train", max_ops=8)
        assert [(s, e) for s, e, _ in numbers_in(p["text"])] == p["numbers"]


def expected_step_rows(prompt, answer, answer_all_steps=True):
    """{close char: label row (8,)} of one line, from the prompt text alone (check_line's reading): each op's exact
    value at the char after its last number (past a ',' or '.' right after it), in the column of its height,
    right-aligned by the expression's height H, or 3 where it is lower (column 8 - max(H, 3) + height - 1: with
    dag_depth 4 a node of height h at step h), later columns repeating a row's last label; and the answer's row
    (key None): the answer in every column (prepare's default answer_all_steps), or without answer_all_steps the
    row of the char that closes the whole expression."""
    category, _, groups, _, steps = check_line(prompt, answer)
    offset = prompt.index(groups["a"]) if category == "multi" else 0
    last_number = numbers_in(prompt)[-1][1]
    H = max(3, max(h for _, _, h, *_ in steps))
    rows = {}
    for _, value, h, end, *_ in steps:  # the root comes last
        char = last_number if end is None else offset + end
        char += prompt[char] in ",."
        rows.setdefault(char, np.full(8, np.nan))[8 - H + h - 1] = float(value)
    for row in rows.values():
        last = np.flatnonzero(~np.isnan(row)).max()
        row[last:] = row[last]
    return {**rows, None: np.full(8, rows[char][-1]) if answer_all_steps else rows[char]}


def check_step_labels(text, steps_of, steps, answer_all_steps=True):
    """Every char's label row, recomputed from the text: a close char's row at that char, the answer's row from the
    prompt's last char to the answer's last char, -1 elsewhere."""
    assert steps_of.dtype == np.int32 and len(steps_of) == len(text) and steps.shape[1] == 8
    labelled, pos = np.zeros(len(text), dtype=bool), 0
    for line in text.splitlines():
        prompt, answer = split_line(line)
        expected = {}  # char -> row; the answer's span last: where the root closes at the prompt's last char
        for char, row in expected_step_rows(prompt, answer, answer_all_steps).items():  # ("3+4*5="), its row wins
            span = range(pos + len(prompt) - 1, pos + len(line)) if char is None else [pos + char]
            expected.update((c, row) for c in span)
        for c, row in expected.items():
            np.testing.assert_array_equal(steps[steps_of[c]], row, err_msg=f"{line!r} at {c - pos}")
            labelled[c] = True
        assert steps[steps_of[pos + len(line) - 1], -1] == float(Fraction(answer))
        pos += len(line) + 1
    assert (steps_of[~labelled] == -1).all()


def expected_ops(prompt, answer):
    """{char: OPS index} of one line, from the prompt text alone: each op at the last char of its right operand's
    first number (for log the base, dag_ops' right operand; identity none), and at a ',' or '.' right after it."""
    category, template, groups, _, steps = check_line(prompt, answer)
    if category == "multi":
        offset = prompt.index(groups["a"])
        ends = [(op, offset + right) for op, *_, right in steps]
    elif category == "identity":
        ends = []
    else:
        m = template_regex(category, template).fullmatch(prompt)
        slot = "a" if category == "log" else "b"
        ends = [(category, m.end(slot) - m.group(slot).endswith(")"))]  # "(-4)": the number ends before ')'
    out = {}
    for op, end in ends:
        out.update({char: prep.OPS.index(op) for char in [end - 1] + ([end] if prompt[end] in ",." else [])})
    return out


def test_ops_file(corpus):
    """{split}_ops.bin names each op where its right operand's first number ends, recomputed from the text."""
    for split in ("train", "val"):
        text, ops = corpus["texts"][split], corpus["labels"][split]["ops"]
        assert ops.dtype == np.uint8 and len(ops) == len(text)
        expected, pos = np.full(len(text), prep.NO_OP, dtype=np.uint8), 0
        for line in text.splitlines():
            for char, op in expected_ops(*split_line(line)).items():
                expected[pos + char] = op
            pos += len(line) + 1
        np.testing.assert_array_equal(ops, expected)
        assert set(np.unique(ops)) == set(range(len(prep.OPS) - 1)) | {prep.NO_OP}  # every op but identity


def test_steps_of_and_steps_files(corpus):
    for split in ("train", "val"):
        labels = corpus["labels"][split]
        check_step_labels(corpus["texts"][split], labels["steps_of"], labels["steps"])


def test_no_labels_and_cli(tmp_path):
    small = dict(n_train=100, n_test=20, n_extrap=10, n_phrasing=10)
    prep.prepare(str(tmp_path), **small)
    assert (tmp_path / "train_steps.npy").exists()
    (tmp_path / "train_values.bin").write_bytes(b"stale")  # written by an earlier version
    script = os.path.join(ROOT, "data", "numeric", "prepare.py")
    out = subprocess.run([sys.executable, script, "--out_dir", str(tmp_path), "--n_train", "100", "--n_test", "20",
                          "--n_extrap", "10", "--n_phrasing", "10", "--max_digits", "3", "--max_ops", "6", "--no-labels"],
                         capture_output=True, text=True, check=True).stdout
    assert "vocab size 96" in out and "phrasing: 10 problems" in out and "longest" in out
    assert sorted(os.listdir(tmp_path)) == ["meta.pkl", "problems.jsonl", "train.bin", "val.bin"]
    with pytest.raises(ValueError, match="max_digits=13"):
        prep.prepare(str(tmp_path), max_digits=13)
    with pytest.raises(ValueError, match="max_ops=9"):
        prep.prepare(str(tmp_path), max_ops=9)
    with pytest.raises(ValueError, match="'dev'"):
        prep.make_problem(random.Random(0), "dev")
    with pytest.raises(ValueError, match="'sqrt'"):
        prep.make_problem(random.Random(0), "train", op="sqrt")


PROSE = ("First Citizen:\nBefore we proceed any further, hear me speak.\n\n"
         "All:\nSpeak, speak.\n\n\n"
         "MENENIUS:\nI tell you, 12 friends, most charitable care\nHave the patricians of you.\n\n"
         "Second Citizen:\nWould you proceed especially against Caius Marcius? Act 3.\n\n"
         "All:\nAgainst him first: he's a very dog to the commonalty.\n")


def test_prose_mixture(tmp_path):
    """--prose spreads a text's paragraphs between the problems, in order, labelled as text (digit runs as numbers,
    answering nothing); val_prose.bin holds the val paragraphs alone; the problems are those of the same seed
    without prose."""
    prose_file = tmp_path / "prose.txt"
    prose_file.write_text(PROSE)
    small = dict(n_train=40, n_val=10, n_test=20, n_extrap=10, n_phrasing=10)
    plain, mixed = tmp_path / "plain", tmp_path / "mixed"
    prep.prepare(str(plain), **small)
    summary = prep.prepare(str(mixed), prose=str(prose_file), **small)
    paragraphs = prep.prose_paragraphs(str(prose_file))
    assert [p.split(":")[0] for p in paragraphs["train"]] == ["First Citizen", "All", "MENENIUS", "Second Citizen"]
    assert paragraphs["val"] == ["All:\nAgainst him first: he's a very dog to the commonalty.\n\n"]
    itos = prep.ALPHABET
    for split in ("train", "val"):
        text = "".join(itos[i] for i in np.fromfile(mixed / f"{split}.bin", dtype=np.uint16))
        plain_text = "".join(itos[i] for i in np.fromfile(plain / f"{split}.bin", dtype=np.uint16))
        roles = np.fromfile(mixed / f"{split}_roles.bin", dtype=np.uint8)
        steps_of = np.fromfile(mixed / f"{split}_steps_of.bin", dtype=np.int32)
        plain_roles = np.fromfile(plain / f"{split}_roles.bin", dtype=np.uint8)
        in_prose, pos = np.zeros(len(text), dtype=bool), 0
        for paragraph in paragraphs[split]:  # in order, between whole problems
            pos = text.index(paragraph, pos)
            assert pos == 0 or text[pos - 1] == "\n"
            in_prose[pos:pos + len(paragraph)] = True
            pos += len(paragraph)
        assert "".join(np.array(list(text))[~in_prose]) == plain_text  # the same problems, in the same order
        np.testing.assert_array_equal(roles[~in_prose], plain_roles)
        digits = np.array([c.isdigit() for c in text]) & in_prose
        assert (roles[digits] == prep.CLASSES.index("digits")).all() and digits.sum() == 3 * (split == "train")
        others = np.flatnonzero(in_prose & ~digits & (roles > 0))  # only the '.' right after a number (as in a problem)
        assert [text[i - 5:i + 1] for i in others] == (["Act 3."] if split == "train" else [])
        assert (roles[others] == prep.CLASSES.index("point")).all()
        assert (steps_of[in_prose] == -1).all()
        assert summary[split]["prose_tokens"] == in_prose.sum()
    val_prose = np.fromfile(mixed / "val_prose.bin", dtype=np.uint16)
    assert "".join(itos[i] for i in val_prose) == paragraphs["val"][0]
    assert summary["paths"]["val_prose"] == str(mixed / "val_prose.bin")
    prep.prepare(str(mixed), **small)  # no prose now: no prose loss to measure
    assert not (mixed / "val_prose.bin").exists()

    with pytest.raises(FileNotFoundError, match="--prose=PATH"):
        prep.prepare(str(mixed), prose=str(tmp_path / "missing.txt"), **small)
    prose_file.write_text("one paragraph only\n")
    with pytest.raises(ValueError, match="1 paragraph"):
        prep.prepare(str(mixed), prose=str(prose_file), **small)
    prose_file.write_text("caf\u00e9\n\nna\u00efve\n")
    with pytest.raises(ValueError, match="not in ALPHABET"):
        prep.prepare(str(mixed), prose=str(prose_file), **small)


def test_p_multi_sets_the_share_of_chains_in_train_and_val_only():
    """p_multi draws "multi" with that probability for train and val; the held-out splits, and every split without
    it, draw uniformly over the ten categories (a tenth chains); out of 0..1 it is refused."""
    rng = random.Random(3)

    def share(split, p_multi):
        return sum(prep.make_problem(rng, split, p_multi=p_multi)["op"] == "multi" for _ in range(2000)) / 2000
    assert abs(share("train", 0.4) - 0.4) < 0.04 and abs(share("val", 0.4) - 0.4) < 0.04
    assert abs(share("test", 0.4) - 0.1) < 0.03 and abs(share("train", None) - 0.1) < 0.03
    with pytest.raises(ValueError, match="p_multi=1.5"):
        prep.make_problem(rng, "train", p_multi=1.5)


def test_no_answer_all_steps_keeps_the_roots_close_row_at_the_answer(tmp_path, corpus):
    """answer_all_steps=False (--no-answer_all_steps): the same text and roles; the answer's chars hold the row of
    the char that closes the whole expression (the children that close with the root on the earlier steps)."""
    out = str(tmp_path)
    prep.prepare(out, seed=1337, answer_all_steps=False, **SIZES)
    text, labels = corpus["texts"]["train"], corpus["labels"]["train"]
    assert np.fromfile(os.path.join(out, "train.bin"), dtype=np.uint16).tobytes() == prep.encode(text).tobytes()
    np.testing.assert_array_equal(np.fromfile(os.path.join(out, "train_roles.bin"), dtype=np.uint8), labels["roles"])
    check_step_labels(text, np.fromfile(os.path.join(out, "train_steps_of.bin"), dtype=np.int32),
                      np.load(os.path.join(out, "train_steps.npy")), answer_all_steps=False)


def test_cli_passes_p_multi_and_answer_all_steps(tmp_path):
    """The script's --p_multi and --no-answer_all_steps reach prepare(): the same files as the call; a p_multi out of
    0..1 is one line and a non-zero exit."""
    small = dict(n_train=200, n_test=20, n_extrap=10, n_phrasing=10)
    prep.prepare(str(tmp_path / "call"), p_multi=0.4, answer_all_steps=False, **small)
    script = os.path.join(ROOT, "data", "numeric", "prepare.py")
    sizes = [f"--{k}={v}" for k, v in small.items()]
    subprocess.run([sys.executable, script, f"--out_dir={tmp_path / 'cli'}", *sizes, "--p_multi=0.4",
                    "--no-answer_all_steps"], capture_output=True, text=True, check=True)
    for name in ("train.bin", "train_steps.npy", "train_steps_of.bin"):
        assert (tmp_path / "cli" / name).read_bytes() == (tmp_path / "call" / name).read_bytes(), name
    bad = subprocess.run([sys.executable, script, f"--out_dir={tmp_path / 'bad'}", *sizes, "--p_multi=1.5"],
                         capture_output=True, text=True)
    assert bad.returncode != 0 and "p_multi=1.5" in bad.stderr and "Traceback" not in bad.stderr


def test_the_default_share_of_chains_in_train_and_val_is_p_multi(corpus):
    """prepare()'s default P_MULTI: a problem whose ops labels name ops at two or more places (runs of adjacent
    chars: "7." in "5 + 7. " is one) is a chain; a single op names one at most. The held-out test split keeps a
    tenth (make_problem's uniform draw)."""
    def places(line):
        chars = sorted(expected_ops(*split_line(line)))
        return sum(1 for i, c in enumerate(chars) if i == 0 or c != chars[i - 1] + 1)
    assert prep.P_MULTI == 0.3
    for split, tolerance in (("train", 0.03), ("val", 0.08)):
        lines = corpus["texts"][split].splitlines()
        share = sum(places(line) >= 2 for line in lines) / len(lines)
        assert abs(share - prep.P_MULTI) < tolerance, (split, share)
    test = [p for p in corpus["problems"] if p["split"] == "test"]
    assert abs(sum(p["op"] == "multi" for p in test) / len(test) - 0.1) < 0.05
