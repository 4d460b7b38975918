# The numeric corpus in GPT-2 BPE: the same problems as config/train_default.py, as GPT-2 tokens ("12345" is
# "123" "45"), so GPT+DAG reads numbers that span several tokens and writes its answers in GPT-2's chunks.
# python data/numeric/prepare.py --tokenizer=gpt2 --tiktoken_file=PATH --out_dir=data/numeric_gpt2
# python train.py config/train_numeric_gpt2.py --dag_depth=4 --tiktoken_file=PATH
# (PATH: a local gpt2.tiktoken; leave both out to let tiktoken download its own.) eval_numeric.py scores it.

out_dir = 'out-numeric-gpt2'
eval_interval = 250
eval_iters = 20
log_interval = 10
always_save_checkpoint = True

wandb_log = False
wandb_project = 'nanogpt-dag'
wandb_run_name = 'numeric-gpt2-cpu'

dataset = 'numeric_gpt2'
gradient_accumulation_steps = 1
batch_size = 32
block_size = 32  # ~12.5 tokens a problem (~27 characters): about the problems a block of 64 characters holds

n_layer = 4
n_head = 4
n_embd = 128
dropout = 0.0

dag_value_loss = 1.0  # the auxiliary labels' weight of the BPE figures in NOTES.md (train.py's 0.1 came later and
# is not measured in BPE)

learning_rate = 1e-3
max_iters = 750
lr_decay_iters = 750
min_lr = 1e-4
beta2 = 0.99
warmup_iters = 50
