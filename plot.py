"""
Loss curves of one or more training runs, drawn into one PNG from the metrics.jsonl that train.py writes in each
out_dir: one JSON object a line, {"kind": "train", "iter", "loss", "lr", "ms", "mfu" (%, when known), and the
model's diagnostics: lm_loss, aux_loss, gate, op_add ...} per log line and {"kind": "eval", "iter", "train_loss",
"val_loss", "lr"} per eval. Each run is one colour, labelled by its out_dir; the keys of log lines are drawn thin,
those of evals with a marker at each eval.

$ python plot.py --out_dirs=out-numeric                             # train and val loss of one run -> loss.png
$ python plot.py --out_dirs=out-a,out-b --out=ab.png                # two runs on one plot
$ python plot.py --out_dirs=out-a,out-b --metrics=val_loss          # only the evals
$ python plot.py --out_dirs=out-numeric --metrics=gate --out=gate.png   # any key of the records, against iter

As a library (compare_numeric.py draws its runs with it): read_metrics, plot_curves.
"""
import json
import os
import sys

import matplotlib

matplotlib.use('Agg')  # files only, no display needed
import matplotlib.pyplot as plt  # noqa: E402


def read_metrics(out_dir):
    """The records of out_dir/metrics.jsonl, in file order: dicts with 'kind' ('train' or 'eval'), an int 'iter'
    and numbers. Raises FileNotFoundError for a missing file, and ValueError naming the line for a line that is
    not such a JSON object, or for a file with no records."""
    path = os.path.join(out_dir, 'metrics.jsonl')
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no metrics file at {path}: train.py writes it, train a run with "
                                f"--out_dir={out_dir} first")
    records = []
    with open(path) as f:
        for line_no, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{path} line {line_no}: not a JSON object ({e})") from e
            if not isinstance(record, dict) or record.get('kind') not in ('train', 'eval') or \
                    not isinstance(record.get('iter'), int):
                raise ValueError(f"{path} line {line_no}: a record needs 'kind' ('train' or 'eval') and an int "
                                 f"'iter', got {line.strip()[:80]!r}")
            records.append(record)
    if not records:
        raise ValueError(f"{path} has no records: the run logged nothing yet")
    return records


def plot_curves(ax, runs, keys, styles=None):
    """Draw keys (e.g. ['loss', 'val_loss']) against iter on the matplotlib Axes ax, for each run of runs (a dict
    label -> records, as read_metrics returns them): one colour a run (or styles: one dict of line settings a run,
    e.g. {'color': 'C0', 'linestyle': '--'}), thin lines for the keys of log lines, a marker at each eval for eval
    keys. A run without a key is skipped."""
    for i, (label, records) in enumerate(runs.items()):
        for key in keys:
            have = [r for r in records if key in r]
            if not have:
                continue
            style = dict(marker='o', markersize=3) if have[0]['kind'] == 'eval' else dict(linewidth=0.8, alpha=0.7)
            style.update(styles[i] if styles else {'color': f'C{i % 10}'})
            ax.plot([r['iter'] for r in have], [r[key] for r in have], label=f"{label} {key}", **style)
    ax.set_xlabel('iter')
    ax.legend(fontsize='small')


if __name__ == '__main__':
    from configurator import configure

    # -----------------------------------------------------------------------------
    out_dirs = 'out'  # comma-separated out_dirs of train.py runs, each with a metrics.jsonl
    out = 'loss.png'  # the PNG to write
    metrics = 'loss,val_loss'  # keys on one axes: loss (log lines), val_loss, train_loss (evals), gate, lr, ms ...
    logy = False  # a log-scale y axis
    # -----------------------------------------------------------------------------
    configure(globals())
    keys = [k for k in metrics.split(',') if k]
    try:
        runs = {d: read_metrics(d) for d in out_dirs.split(',') if d}
    except (FileNotFoundError, ValueError) as e:
        sys.exit(f"plot.py: {e}")
    if not runs or not keys:
        sys.exit(f"plot.py: --out_dirs={out_dirs!r} and --metrics={metrics!r} must each name at least one")
    for key in keys:
        if not any(key in r for records in runs.values() for r in records):
            found = sorted({k for records in runs.values() for r in records for k in r} - {'kind', 'iter'})
            sys.exit(f"plot.py: no run has {key!r} in its metrics.jsonl; its keys are {', '.join(found)}")
    fig, ax = plt.subplots(figsize=(8, 5))
    plot_curves(ax, runs, keys)
    if logy:
        ax.set_yscale('log')
    ax.set_ylabel(', '.join(keys))
    fig.tight_layout()
    try:
        fig.savefig(out)
    except (OSError, ValueError) as e:  # a folder that is not there, a format matplotlib does not know
        sys.exit(f"plot.py: cannot write --out={out!r}: {e}")
    print(f"wrote {out}")
