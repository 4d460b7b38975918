# The CPU toy: a tiny GPT on the built-in numeric corpus (arithmetic written in text; no download, no GPU).
# python data/numeric/prepare.py && python train.py config/train_default.py --dag_depth=4
# Without --dag_depth (0) it trains the plain GPT with the same trunk; --n_layer=8 gives the plain GPT with about
# GPT+DAG's parameter count (compare_numeric.py runs that comparison).

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
max_seconds = 300.0  # five minutes of training, whatever the model's speed; the LR schedule runs on the clock
max_iters = 100000  # (a cap that the clock reaches first)
lr_decay_iters = 2000  # with max_seconds, in iteration-equivalents of the clock: warmup_iters / 2000 of the time
min_lr = 1e-4
beta2 = 0.99
warmup_iters = 100

# device and dtype: train.py's defaults (CUDA with bf16 where there is a GPU, as on a RunPod pod; else the CPU)
compile = False  # GPT+DAG under torch.compile is not yet checked on a GPU
