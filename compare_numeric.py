"""
GPT+DAG against a plain GPT of about the same number of parameters, on the numeric corpus, over several seeds:
exact-match accuracy on the held-out test, extrapolation and phrasing problems (eval_numeric.py). Each run is
`train.py config/train_default.py` for a fixed number of iterations (by default the config's: the main job's 2400
batches of 16, so the figures do not depend on the machine), or, with --seconds, for equal wall-clock time (the
learning-rate schedule then runs on the clock). Each run's ms/iter is printed, so the cost is seen next to the
accuracy. Runs are sequential; keep the machine otherwise idle for --seconds.

$ python data/numeric/prepare.py && python compare_numeric.py          # GPT+DAG, matched GPT, 3 seeds x 2400 iters
$ python compare_numeric.py --models=gpt,dag,dag-nolabels --seeds=1337  # with and without the auxiliary labels
$ python compare_numeric.py --seconds=300                               # equal time instead of equal iterations
$ python compare_numeric.py --train_args="--n_embd=64 --batch_size=16"   # more train.py settings for every run
$ python compare_numeric.py --config=config/train_numeric_gpt2.py --tiktoken_file=gpt2.tiktoken  # in GPT-2 BPE
$ python compare_numeric.py --config=config/train_numeric_mix.py --models=gpt4,dag  # prose and problems mixed

Prints each run's `iter` and `step` lines as they come (prefixed with [model-seed]), one line per run (with the
val loss on the prose alone when the dataset is a mixture of prose and problems) and a summary table (mean and
min..max over seeds), writes <out_dir>/compare.png (left: the val loss of every run, from its metrics.jsonl;
right: mean exact match by split and model, min..max over seeds as error bars) and prints its path, then the
summary as a JSON line.
"""
import argparse
import json
import os
import re
import subprocess
import sys

import matplotlib.pyplot as plt

from configurator import check_rules
from plot import plot_curves, read_metrics  # also selects matplotlib's Agg backend (files only)

ROOT = os.path.dirname(os.path.abspath(__file__))
SPLITS = ('test', 'extrap', 'phrasing')  # the held-out splits of data/numeric/problems.jsonl
# name: (description, train.py overrides); 'gpt' has at least GPT+DAG's parameters, with a deeper trunk (6 layers
# would do for today's 1.22M; 9 were chosen when GPT+DAG had 1.81M, and NOTES.md's figures are of 9, last measured
# against today's GPT+DAG in the thirty-eighth session)
MODELS = {
    'dag': ('GPT+DAG, 4 layers, dag_depth 4', ['--dag_depth=4']),
    # (its collapsed choices make denormal floats, which the CPU is slow on: flushed to 0, 2.6x faster; NOTES.md)
    'dag-nolabels': ('GPT+DAG, no auxiliary labels (LM loss only)', ['--dag_depth=4', '--dag_value_loss=0',
                                                                     '--flush_denormal=True']),
    'gpt': ('GPT, 9 layers (1.78M parameters, GPT+DAG 1.22M)', ['--n_layer=9']),
    'gpt4': ('GPT, 4 layers (the same trunk)', []),
}


def run(args, cwd, name=''):
    """Run a python script of this repo and return its stdout. With a name, its 'iter' and 'step' lines are
    printed as they come, prefixed with [name]; its stderr goes straight to the console. Exits with the end of
    its output when it fails."""
    env = {**os.environ, 'PYTHONUNBUFFERED': '1'}  # the child's lines as it prints them, not when a buffer fills
    lines = []
    with subprocess.Popen([sys.executable, *args], cwd=cwd, env=env, stdout=subprocess.PIPE, text=True) as proc:
        for line in proc.stdout:
            lines.append(line)
            if name and line.startswith(('iter ', 'step ')):
                print(f"[{name}] {line}", end='', flush=True)
    stdout = ''.join(lines)
    if proc.returncode != 0:
        sys.exit(f"{' '.join(args)} failed ({proc.returncode}); its stderr is above, the end of its output:\n"
                 f"{stdout[-2000:]}")
    return stdout


def plot_summary(path, out_dir, summary):
    """Write the PNG at path: the val-loss curves of every run of summary (read from out_dir/<model>-<seed>/
    metrics.jsonl), one colour a model and one line style a seed; and a bar a model and split of the mean exact
    match, with min..max over seeds as error bars. Raises what read_metrics raises."""
    fig, (curves, bars) = plt.subplots(1, 2, figsize=(13, 5))
    runs, styles = {}, []
    for j, (name, model) in enumerate(summary.items()):
        for k, row in enumerate(model['runs']):
            runs[f"{name}-{row['seed']}"] = read_metrics(os.path.join(out_dir, f"{name}-{row['seed']}"))
            styles.append({'color': f'C{j % 10}', 'linestyle': ('-', '--', ':', '-.')[k % 4]})
    plot_curves(curves, runs, ['val_loss'], styles)
    curves.set(ylabel='val loss', title='validation loss (LM loss)')
    width = 0.8 / len(summary)
    for j, (name, model) in enumerate(summary.items()):
        mean = [model[split]['mean'] for split in SPLITS]
        spread = [[m - model[split]['min'] for m, split in zip(mean, SPLITS)],
                  [model[split]['max'] - m for m, split in zip(mean, SPLITS)]]
        bars.bar([i + (j - (len(summary) - 1) / 2) * width for i in range(len(SPLITS))], mean, width, yerr=spread,
                 capsize=3, color=f'C{j % 10}', label=f"{name}: {model['description']}")
    bars.set_xticks(range(len(SPLITS)), SPLITS)
    bars.set(ylim=(0, 1), ylabel='exact match (mean, min..max over seeds)', title='accuracy by split')
    bars.legend(fontsize='small')
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--iters', type=int, default=0, help="training iterations per run (0: the config's max_iters)")
    parser.add_argument('--seconds', type=float, default=0, help='> 0: train for this long instead (equal time)')
    parser.add_argument('--seeds', default='1337,1338,1339')
    parser.add_argument('--models', default='gpt,dag', help=f"comma-separated, of {', '.join(MODELS)}")
    parser.add_argument('--out_dir', default='out-compare')
    parser.add_argument('--train_args', default='', help="train.py settings for every run, e.g. '--n_embd=64' "
                        "(after the config, before each model's own)")
    parser.add_argument('--config', default=os.path.join(ROOT, 'config', 'train_default.py'),
                        help='the train.py config of every run (config/train_numeric_gpt2.py: the corpus in BPE)')
    parser.add_argument('--tiktoken_file', default='', help='GPT-2 BPE offline: a local gpt2.tiktoken')
    args = parser.parse_args()
    models, seeds = args.models.split(','), args.seeds.split(',')
    unknown = [m for m in models if m not in MODELS]
    check_rules('compare_numeric.py', [
        (args.iters >= 0, f"--iters={args.iters}: use a number of iterations >= 1, or 0 for the config's max_iters"),
        (args.seconds >= 0, f"--seconds={args.seconds:g}: use > 0 for equal time, or 0 for equal iterations"),
        (re.fullmatch(r'\d+(,\d+)*', args.seeds), f"--seeds={args.seeds!r}: use comma-separated integers, e.g. "
                                                  f"1337,1338,1339"),
        (not unknown, f"unknown model {unknown}: choose from {list(MODELS)}"),
        (len(set(seeds)) == len(seeds) and len(set(models)) == len(models),
         f"--seeds={args.seeds!r} --models={args.models!r} name a run twice (each writes <out_dir>/<model>-<seed>, "
         f"and the mean would count it twice): list each seed and model once"),
    ])
    # every run's budget; the last eval writes the checkpoint: at max_seconds, or at iteration --iters (or, with
    # neither, at the config's own max_iters)
    budget = []
    if args.seconds > 0:
        budget = ['--max_iters=1000000', '--eval_interval=1000000', f'--max_seconds={args.seconds}']
    elif args.iters > 0:
        budget = [f'--max_iters={args.iters}', f'--lr_decay_iters={args.iters}', f'--eval_interval={args.iters}']
    results = {m: [] for m in models}
    for seed in seeds:
        for name in models:
            out = os.path.join(args.out_dir, f'{name}-{seed}')
            tiktoken = [f'--tiktoken_file={args.tiktoken_file}'] if args.tiktoken_file else []
            train_log = run([os.path.join(ROOT, 'train.py'), args.config, *tiktoken,
                             *args.train_args.split(), *MODELS[name][1], f'--seed={seed}', *budget,
                             '--log_interval=1', f'--out_dir={out}'],
                            cwd=os.getcwd(), name=f'{name}-{seed}')
            logged = [line for line in train_log.splitlines() if line.startswith('iter ')]
            iters = logged[-1].split(':')[0][5:]
            ms = sorted(float(line.split('time ')[1].split('ms')[0]) for line in logged[1:])  # steady state
            ms_per_iter = ms[len(ms) // 2] if ms else float('nan')
            scores = json.loads(run([os.path.join(ROOT, 'eval_numeric.py'), f'--out_dir={out}', '--show_errors=0',
                                     *tiktoken],
                                    cwd=os.getcwd()).strip().splitlines()[-1])
            row = {'seed': int(seed), 'iters': int(iters), 'ms_per_iter': ms_per_iter, 'n_params': scores['n_params'],
                   **{split: scores['by_split'].get(split, {}).get('acc', float('nan')) for split in SPLITS},
                   'by_op': {op: v['acc'] for op, v in scores['by_op'].items()},
                   'by_steps': {k: v['acc'] for k, v in scores['by_steps'].items()}}
            prose = ''
            if 'prose_val_loss' in scores:  # a mixture of prose and problems (prepare.py --prose)
                row['prose_val_loss'] = scores['prose_val_loss']
                prose = f", prose val loss {row['prose_val_loss']:.4f}"
            results[name].append(row)
            print(f"{name:12s} seed {seed}: {row['iters']} iters, {ms_per_iter:.0f} ms/iter, {row['n_params']:,} "
                  f"params, " + ', '.join(f"{split} {row[split]:.1%}" for split in SPLITS) + prose, flush=True)
    summary = {}
    print(f"\n{'model':46s} {'params':>10s} {'iters':>6s} {'ms/it':>6s}" + ''.join(f"{s:>22s}" for s in SPLITS))
    for name, rows in results.items():
        stat = {k: (sum(r[k] for r in rows) / len(rows), min(r[k] for r in rows), max(r[k] for r in rows))
                for k in SPLITS + ('iters', 'ms_per_iter', 'prose_val_loss') if k in rows[0]}
        summary[name] = {'description': MODELS[name][0], 'n_params': rows[0]['n_params'], 'runs': rows,
                         **{k: {'mean': v[0], 'min': v[1], 'max': v[2]} for k, v in stat.items()}}
        fmt = lambda k: f"{stat[k][0]:.1%} ({stat[k][1]:.1%}..{stat[k][2]:.1%})"  # noqa: E731
        print(f"{MODELS[name][0]:46s} {rows[0]['n_params']:>10,} {stat['iters'][0]:>6.0f} "
              f"{stat['ms_per_iter'][0]:>6.0f}" + ''.join(f"{fmt(s):>22s}" for s in SPLITS) +
              (f"   prose val loss {stat['prose_val_loss'][0]:.4f}" if 'prose_val_loss' in stat else ''))
    picture = os.path.join(args.out_dir, 'compare.png')
    try:
        plot_summary(picture, args.out_dir, summary)
    except (FileNotFoundError, ValueError) as e:
        sys.exit(f"compare_numeric.py: {e}")
    print(f"\nwrote {picture}")
    first_run = next(iter(results.values()))[0]
    iters = args.iters or (0 if args.seconds > 0 else first_run['iters'])  # --iters=0: the config's max_iters, as run
    print(json.dumps({'iters': iters, 'seconds': args.seconds, 'models': summary}))


if __name__ == '__main__':
    main()
