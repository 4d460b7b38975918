import os

import pytest

from configurator import configure

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def settings():
    return {'batch_size': 12, 'learning_rate': 6e-4, 'compile': True, 'device': 'cuda', 'betas': (0.9, 0.95),
            'peak': None, 'helper': print}


def test_overrides_parse_literals_and_strings():
    g = settings()
    configure(g, ['--batch_size=4', '--learning_rate=1', '--compile=False', '--device=cpu',
                  "--betas=[0.8, 0.9]", '--peak=3e12'])
    assert g['batch_size'] == 4
    assert g['learning_rate'] == 1.0 and isinstance(g['learning_rate'], float)
    assert g['compile'] is False and g['device'] == 'cpu'
    assert g['betas'] == (0.8, 0.9) and g['peak'] == 3e12


def test_config_file_then_override_in_order(tmp_path):
    cfg = tmp_path / 'c.py'
    cfg.write_text("import math\nbatch_size = 64\n_scratch = 3\nlearning_rate = math.sqrt(4) * 1e-3\n")
    g = settings()
    configure(g, [str(cfg), '--batch_size=8'])
    assert g['batch_size'] == 8 and g['learning_rate'] == pytest.approx(2e-3)


def test_unknown_key_names_key_and_close_match(capsys):
    with pytest.raises(SystemExit) as e:
        configure(settings(), ['--batch_sise=4'])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "'batch_sise'" in err and 'Did you mean batch_size' in err and 'learning_rate' in err


def test_unknown_key_in_config_file(tmp_path, capsys):
    cfg = tmp_path / 'c.py'
    cfg.write_text("learning_rat = 1e-3\n")
    with pytest.raises(SystemExit):
        configure(settings(), [str(cfg)])
    assert "'learning_rat'" in capsys.readouterr().err


def test_constants_are_not_settings(tmp_path, capsys):
    """An UPPER_CASE global (a constant, such as train.py's imported NO_OP) is no setting: --NO_OP=3 and a config
    file that rebinds it stop with the unknown-key line, while a config file that leaves it alone runs."""
    g = dict(settings(), NO_OP=255)
    with pytest.raises(SystemExit) as e:
        configure(g, ['--NO_OP=3'])
    assert e.value.code == 2 and "'NO_OP'" in capsys.readouterr().err and g['NO_OP'] == 255
    cfg = tmp_path / 'c.py'
    cfg.write_text("NO_OP = 3\n")
    with pytest.raises(SystemExit):
        configure(g, [str(cfg)])
    assert "'NO_OP'" in capsys.readouterr().err
    g = dict(settings(), NO_OP=255)
    cfg.write_text("batch_size = 64\n")
    assert configure(g, [str(cfg)]) == {'batch_size'} and g['NO_OP'] == 255


def test_type_mismatch(capsys):
    with pytest.raises(SystemExit) as e:
        configure(settings(), ['--batch_size=abc'])
    assert e.value.code == 2
    assert '--batch_size expects a int' in capsys.readouterr().err
    with pytest.raises(SystemExit):
        configure(settings(), ['--compile=1'])


def test_missing_file_and_malformed_argument(capsys):
    with pytest.raises(SystemExit):
        configure(settings(), ['config/does_not_exist.py'])
    assert 'not found' in capsys.readouterr().err
    with pytest.raises(SystemExit):
        configure(settings(), ['--batch_size'])
    assert '--key=value' in capsys.readouterr().err


def test_configure_returns_the_keys_it_set(tmp_path):
    cfg = tmp_path / 'c.py'
    cfg.write_text("batch_size = 64\nlearning_rate = 6e-4\n")  # learning_rate unchanged: not counted
    assert configure(settings(), [str(cfg), '--device=cpu']) == {'batch_size', 'device'}


@pytest.mark.parametrize('name', ['train_gpt2', 'eval_gpt2', 'eval_gpt2-medium', 'eval_gpt2-large', 'eval_gpt2-xl'])
def test_gpt2_configs_name_a_bpe_dataset(name):
    """GPT-2 reads BPE ids: its configs must not fall back to train.py's default, the character-level
    shakespeare_char (train.py also refuses GPT-2 weights on a dataset with a meta.pkl)."""
    import os
    from conftest import ROOT
    g = {'dataset': 'shakespeare_char', 'batch_size': 12, 'eval_iters': 200, 'eval_only': False, 'wandb_log': False,
         'init_from': 'scratch', 'wandb_project': '', 'wandb_run_name': '', 'block_size': 1024,
         'gradient_accumulation_steps': 1, 'max_iters': 1, 'lr_decay_iters': 1, 'eval_interval': 1,
         'log_interval': 1, 'weight_decay': 0.0}
    configure(g, [os.path.join(ROOT, 'config', f'{name}.py')])
    assert g['dataset'] == 'openwebtext'


def test_help_shows_each_settings_comment_from_the_script(tmp_path, capsys):
    script = tmp_path / 'script.py'
    script.write_text(
        "# I/O\n"
        "out_dir = 'out'  # where checkpoints go\n"
        "max_seconds = 0.0  # > 0: stop once training has run this long, and run the learning-rate schedule on\n"
        "                   # the clock (lr_decay_iters is reached at max_seconds): equal-time comparisons;\n"
        "                   # 0 = off\n"
        "# adamw optimizer\n"
        "learning_rate = 6e-4\n"
        "if __name__ == '__main__':\n"
        "    seed = 1337  # torch.manual_seed\n"
        "    # -----------------------------------------------------------------------------\n")
    g = {'__file__': str(script), 'out_dir': 'out', 'max_seconds': 0.0, 'learning_rate': 6e-4, 'seed': 1337}
    with pytest.raises(SystemExit) as e:
        configure(g, ['--help'])
    assert e.value.code == 0
    assert capsys.readouterr().out.splitlines()[1:] == [
        "  --out_dir='out'  # where checkpoints go",
        "  --max_seconds=0.0  # > 0: stop once training has run this long, and run the learning-rate schedule on "
        "the clock (lr_decay_iters is reached at max_seconds): equal-time comparisons; 0 = off",  # continued lines
        "  --learning_rate=0.0006",
        "  --seed=1337  # torch.manual_seed"]


def test_help_without_a_script_lists_names_and_values(capsys):
    with pytest.raises(SystemExit) as e:
        configure(settings(), ['--help'])
    assert e.value.code == 0
    assert "  --batch_size=12\n" in capsys.readouterr().out


def test_train_help_shows_comments(tmp_path):
    from conftest import run_script
    out = run_script('train.py', '--help', cwd=tmp_path).stdout
    assert '--dag_value_loss=0.1  # GPT+DAG: weight of the auxiliary loss' in out and '0 = off' in out
    assert 'adamw optimizer' not in out


@pytest.mark.parametrize('config', sorted(os.listdir(os.path.join(ROOT, 'config'))))
def test_every_config_file_sets_only_train_py_settings(config):
    """Each config/*.py applies to train.py's settings (the part of train.py before configure runs) with no
    unknown key and no type mismatch: configure would exit otherwise."""
    with open(os.path.join(ROOT, 'train.py')) as f:
        source = f.read()
    settings_part = source[:source.index('set_by_user = configure(globals())')]
    g = {'__file__': os.path.join(ROOT, 'train.py')}
    exec(compile(settings_part, 'train.py', 'exec'), g)
    changed = configure(g, [os.path.join(ROOT, 'config', config)])
    assert changed, f"{config} changes no setting"
