"""
GPT+DAG against a plain GPT of about the same number of parameters, on the numeric corpus, over several seeds:
exact-match accuracy on the held-out test, extrapolation and phrasing problems (eval_numeric.py). Each run is
`train.py config/train_default.py` for a fixed number of iterations (the main job's 750 by default, so the figures
do not depend on the machine), or, with --seconds, for equal wall-clock time (the learning-rate schedule then runs
on the clock). Each run's ms/iter is printed, so the cost is seen next to the accuracy. Runs are sequential; keep the
machine otherwise idle for --seconds.

$ python data/numeric/prepare.py && python compare_numeric.py          # GPT+DAG, matched GPT, 3 seeds x 750 iters
$ python compare_numeric.py --models=gpt,dag,dag-nolabels --seeds=1337  # with and without the auxiliary labels
$ python compare_numeric.py --seconds=300                               # equal time instead of equal iterations
$ python compare_numeric.py --train_args="--n_embd=64 --batch_size=16"   # more train.py settings for every run

Prints one line per run and a summary table (mean and min..max over seeds), then the summary as a JSON line.
"""
import argparse
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.abspath(__file__))
SPLITS = ('test', 'extrap', 'phrasing')  # the held-out splits of data/numeric/problems.jsonl
# name: (description, train.py overrides); 'gpt' matches GPT+DAG's parameter count with a deeper trunk
MODELS = {
    'dag': ('GPT+DAG, 4 layers, dag_depth 4', ['--dag_depth=4']),
    'dag-nolabels': ('GPT+DAG, no auxiliary labels (LM loss only)', ['--dag_depth=4', '--dag_value_loss=0']),
    'gpt': ('GPT, 8 layers (about the same parameters)', ['--n_layer=8']),
    'gpt4': ('GPT, 4 layers (the same trunk)', []),
}


def run(args, cwd):
    """Run a python script of this repo; return its stdout, or exit with its output when it fails."""
    proc = subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"{' '.join(args)} failed ({proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    return proc.stdout


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--iters', type=int, default=750, help='training iterations per run')
    parser.add_argument('--seconds', type=float, default=0, help='> 0: train for this long instead (equal time)')
    parser.add_argument('--seeds', default='1337,1338,1339')
    parser.add_argument('--models', default='gpt,dag', help=f"comma-separated, of {', '.join(MODELS)}")
    parser.add_argument('--out_dir', default='out-compare')
    parser.add_argument('--train_args', default='', help="train.py settings for every run, e.g. '--n_embd=64' "
                        "(after config/train_default.py, before each model's own)")
    args = parser.parse_args()
    models = args.models.split(',')
    unknown = [m for m in models if m not in MODELS]
    if unknown:
        sys.exit(f"unknown model {unknown}: choose from {list(MODELS)}")
    results = {m: [] for m in models}
    for seed in args.seeds.split(','):
        for name in models:
            out = os.path.join(args.out_dir, f'{name}-{seed}')
            # the last eval writes the checkpoint: at max_seconds, or at iteration --iters
            budget = ['--max_iters=1000000', '--eval_interval=1000000', f'--max_seconds={args.seconds}'] \
                if args.seconds > 0 else [f'--max_iters={args.iters}', f'--lr_decay_iters={args.iters}',
                                          f'--eval_interval={args.iters}']
            train_log = run([os.path.join(ROOT, 'train.py'), os.path.join(ROOT, 'config', 'train_default.py'),
                             *args.train_args.split(), *MODELS[name][1], f'--seed={seed}', *budget,
                             '--log_interval=1', f'--out_dir={out}'],
                            cwd=os.getcwd())
            logged = [line for line in train_log.splitlines() if line.startswith('iter ')]
            iters = logged[-1].split(':')[0][5:]
            ms = sorted(float(line.split('time ')[1].split('ms')[0]) for line in logged[1:])  # steady state
            ms_per_iter = ms[len(ms) // 2] if ms else float('nan')
            scores = json.loads(run([os.path.join(ROOT, 'eval_numeric.py'), f'--out_dir={out}', '--show_errors=0'],
                                    cwd=os.getcwd()).strip().splitlines()[-1])
            row = {'seed': int(seed), 'iters': int(iters), 'ms_per_iter': ms_per_iter, 'n_params': scores['n_params'],
                   **{split: scores['by_split'].get(split, {}).get('acc', float('nan')) for split in SPLITS},
                   'by_op': {op: v['acc'] for op, v in scores['by_op'].items()},
                   'by_steps': {k: v['acc'] for k, v in scores['by_steps'].items()}}
            results[name].append(row)
            print(f"{name:12s} seed {seed}: {row['iters']} iters, {ms_per_iter:.0f} ms/iter, {row['n_params']:,} "
                  f"params, " + ', '.join(f"{split} {row[split]:.1%}" for split in SPLITS), flush=True)
    summary = {}
    print(f"\n{'model':46s} {'params':>10s} {'iters':>6s} {'ms/it':>6s}" + ''.join(f"{s:>22s}" for s in SPLITS))
    for name, rows in results.items():
        stat = {k: (sum(r[k] for r in rows) / len(rows), min(r[k] for r in rows), max(r[k] for r in rows))
                for k in SPLITS + ('iters', 'ms_per_iter')}
        summary[name] = {'description': MODELS[name][0], 'n_params': rows[0]['n_params'], 'runs': rows,
                         **{k: {'mean': v[0], 'min': v[1], 'max': v[2]} for k, v in stat.items()}}
        fmt = lambda k: f"{stat[k][0]:.1%} ({stat[k][1]:.1%}..{stat[k][2]:.1%})"  # noqa: E731
        print(f"{MODELS[name][0]:46s} {rows[0]['n_params']:>10,} {stat['iters'][0]:>6.0f} "
              f"{stat['ms_per_iter'][0]:>6.0f}" + ''.join(f"{fmt(s):>22s}" for s in SPLITS))
    print(json.dumps({'iters': args.iters, 'seconds': args.seconds, 'models': summary}))


if __name__ == '__main__':
    main()
