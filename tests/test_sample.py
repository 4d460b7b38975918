from conftest import run_script
from test_train import TINY


def samples_of(stdout):
    """The generated texts, after sample.py's set-up messages."""
    return [s.strip('\n') for s in stdout.split('meta.pkl...\n', 1)[1].split('---------------')[:-1]]


def test_sample_from_checkpoint(char_data):
    run_script('train.py', *TINY, '--max_iters=20', '--eval_interval=20', '--out_dir=out-sample', cwd=char_data)
    args = ['--out_dir=out-sample', '--device=cpu', '--num_samples=2', '--max_new_tokens=40', '--start=ROMEO:']
    proc = run_script('sample.py', *args, '--seed=7', cwd=char_data)
    samples = samples_of(proc.stdout)
    assert len(samples) == 2 and all(s.startswith('ROMEO:') and len(s) == len('ROMEO:') + 40 for s in samples), samples
    assert samples == samples_of(run_script('sample.py', *args, '--seed=7', cwd=char_data).stdout)  # seeded
    greedy = [samples_of(run_script('sample.py', *args, '--temperature=0', f'--use_cache={c}', cwd=char_data).stdout)
              for c in (True, False)]
    assert greedy[0] == greedy[1]


def test_sample_start_from_file(char_data):
    run_script('train.py', *TINY, '--max_iters=10', '--eval_interval=10', '--out_dir=out-sample2', cwd=char_data)
    (char_data / 'prompt.txt').write_text('JULIET:\n')
    proc = run_script('sample.py', '--out_dir=out-sample2', '--device=cpu', '--num_samples=1', '--max_new_tokens=5',
                      '--start=FILE:prompt.txt', cwd=char_data)
    assert 'JULIET:\n' in proc.stdout


def test_sample_corrupt_checkpoint_exits_with_message(char_data):
    run_script('train.py', *TINY, '--max_iters=10', '--eval_interval=10', '--out_dir=out-corrupt', cwd=char_data)
    ckpt = char_data / 'out-corrupt' / 'ckpt.pt'
    ckpt.write_bytes(ckpt.read_bytes()[:1000])
    proc = run_script('sample.py', '--out_dir=out-corrupt', '--device=cpu', cwd=char_data, check=False)
    assert proc.returncode != 0 and 'corrupt or truncated' in proc.stderr


def test_sample_from_dag_checkpoint(numeric_data):
    from test_train import DAG
    run_script('train.py', *DAG, '--max_iters=10', '--eval_interval=10', '--out_dir=out-dag-sample', cwd=numeric_data)
    args = ['--out_dir=out-dag-sample', '--device=cpu', '--num_samples=1', '--max_new_tokens=12', '--start=12+3=']
    greedy = [samples_of(run_script('sample.py', *args, '--temperature=0', f'--use_cache={c}', cwd=numeric_data).stdout)
              for c in (True, False)]
    assert greedy[0] == greedy[1] and greedy[0][0].startswith('12+3=') and len(greedy[0][0]) == 5 + 12
    explained = run_script('sample.py', *args, '--temperature=0', '--explain=True', '--explain_png=dag.png',
                           cwd=numeric_data).stdout
    lines = [line for line in explained.splitlines() if line.startswith('-> ')]
    assert len(lines) == 12 and all('; step 4: ' in line and '; gate ' in line for line in lines)  # one per token
    assert (numeric_data / 'dag.png').read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'


def test_explain_needs_a_dag_checkpoint(char_data):
    run_script('train.py', *TINY, '--max_iters=2', '--eval_interval=2', '--out_dir=out-explain', cwd=char_data)
    proc = run_script('sample.py', '--out_dir=out-explain', '--device=cpu', '--num_samples=1', '--max_new_tokens=2',
                      '--explain=True', cwd=char_data, check=False)
    assert proc.returncode != 0 and 'needs a GPT+DAG checkpoint' in proc.stderr and 'Traceback' not in proc.stderr
