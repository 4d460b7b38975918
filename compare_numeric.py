"""
GPT+DAG against a plain GPT of about the same number of parameters, on the numeric corpus, with equal
wall-clock training time on this machine, over several seeds: exact-match accuracy on the held-out test and
extrapolation problems (eval_numeric.py). Each run is `train.py config/train_default.py` with --max_seconds (the
learning-rate schedule then runs on the clock, so both models get a full schedule), then `eval_numeric.py`.
Runs are sequential, so they do not compete for the CPU; keep the machine otherwise idle.

$ python data/numeric/prepare.py && python compare_numeric.py                       # 2 models x 3 seeds x 300 s
$ python compare_numeric.py --seconds=60 --seeds=1337 --models=gpt,dag              # a quick look

Prints one line per run and a summary table (mean and min..max over seeds), then the summary as a JSON line.
"""
import argparse
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.abspath(__file__))
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
    parser.add_argument('--seconds', type=float, default=300, help='training time per run')
    parser.add_argument('--seeds', default='1337,1338,1339')
    parser.add_argument('--models', default='gpt,dag', help=f"comma-separated, of {', '.join(MODELS)}")
    parser.add_argument('--out_dir', default='out-compare')
    args = parser.parse_args()
    models = args.models.split(',')
    unknown = [m for m in models if m not in MODELS]
    if unknown:
        sys.exit(f"unknown model {unknown}: choose from {list(MODELS)}")
    results = {m: [] for m in models}
    for seed in args.seeds.split(','):
        for name in models:
            out = os.path.join(args.out_dir, f'{name}-{seed}')
            train_log = run([os.path.join(ROOT, 'train.py'), os.path.join(ROOT, 'config', 'train_default.py'),
                             *MODELS[name][1], f'--seed={seed}', f'--max_seconds={args.seconds}',
                             '--max_iters=1000000', '--eval_interval=1000000', f'--out_dir={out}'], cwd=os.getcwd())
            iters = [line for line in train_log.splitlines() if line.startswith('iter ')][-1].split(':')[0][5:]
            scores = json.loads(run([os.path.join(ROOT, 'eval_numeric.py'), f'--out_dir={out}', '--show_errors=0'],
                                    cwd=os.getcwd()).strip().splitlines()[-1])
            row = {'seed': int(seed), 'iters': int(iters), 'n_params': scores['n_params'],
                   'test': scores['by_split']['test']['acc'], 'extrap': scores['by_split']['extrap']['acc'],
                   'by_op': {op: v['acc'] for op, v in scores['by_op'].items()}}
            results[name].append(row)
            print(f"{name:5s} seed {seed}: {row['iters']} iters in {args.seconds:.0f} s, {row['n_params']:,} params, "
                  f"test {row['test']:.1%}, extrap {row['extrap']:.1%}", flush=True)
    summary = {}
    print(f"\n{'model':46s} {'params':>10s} {'iters':>6s} {'test':>22s} {'extrap':>22s}")
    for name, rows in results.items():
        stat = {k: (sum(r[k] for r in rows) / len(rows), min(r[k] for r in rows), max(r[k] for r in rows))
                for k in ('test', 'extrap', 'iters')}
        summary[name] = {'description': MODELS[name][0], 'n_params': rows[0]['n_params'], 'runs': rows,
                         **{k: {'mean': v[0], 'min': v[1], 'max': v[2]} for k, v in stat.items()}}
        fmt = lambda k: f"{stat[k][0]:.1%} ({stat[k][1]:.1%}..{stat[k][2]:.1%})"  # noqa: E731
        print(f"{MODELS[name][0]:46s} {rows[0]['n_params']:>10,} {stat['iters'][0]:>6.0f} {fmt('test'):>22s} "
              f"{fmt('extrap'):>22s}")
    print(json.dumps({'seconds': args.seconds, 'models': summary}))


if __name__ == '__main__':
    main()
