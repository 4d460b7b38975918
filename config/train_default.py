# The CPU toy: a tiny GPT on the built-in numeric corpus (arithmetic written in text; no download, no GPU).
# python data/numeric/prepare.py && python train.py config/train_default.py --dag_depth=4
# Without --dag_depth (0) it trains the plain GPT of the same size, the baseline GPT+DAG is compared with.

out_dir = 'out-numeric'
eval_interval = 250
eval_iters = 20
log_interval = 10
always_save_checkpoint = True

wandb_log = False
wandb_project = 'nanogpt-dag'
wandb_run_name = 'numeric-cpu'

dataset = 'numeric'
gradient_accumulation_steps = 1
batch_size = 32
block_size = 64  # a problem is at most 61 characters

n_layer = 4
n_head = 4
n_embd = 128
dropout = 0.0

learning_rate = 1e-3
max_iters = 2000
lr_decay_iters = 2000
min_lr = 1e-4
beta2 = 0.99
warmup_iters = 100

device = 'cpu'
compile = False
