# The CPU toy: a tiny GPT on the built-in numeric corpus (arithmetic written in text; no download, no GPU).
# python data/numeric/prepare.py && python train.py config/train_default.py --dag_depth=4
# Without --dag_depth (0) it trains the plain GPT with the same trunk; --n_layer=9 gives a plain GPT with at least
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
batch_size = 16  # 16 x 1400 against 32 x 750: twice the updates in about the same time (the CPU's step is
# ~linear in the batch); over 10 seeds test 93.6 -> 94.2%, test chains 44.3 -> 48.4%, held-out phrasings 54.4 -> 59.5%,
# single ops 99.1 -> 99.3%, extrap 91.5 -> 91.2% (its single ops 98.1 -> 97.5%) (NOTES.md, 20th session; 8 x 2100 was
# lower on 2 seeds, and 8 x 2800 takes 1.37x the time on 2 threads)
block_size = 64  # 99.5% of the problems are shorter (the longest, 4-op chains, reach ~95 characters)

n_layer = 4
n_head = 4
n_embd = 128
dropout = 0.0

learning_rate = 3e-3  # against 1e-3 (3 seeds, NOTES.md): extrap 87.2 -> 90.3%, phrasing 23.6 -> 30.2%
max_iters = 2400  # 4-6 minutes of GPT+DAG on 2 CPU cores; a fixed count, so the result does not depend on the
# machine's speed (compare_numeric.py --seconds uses max_seconds for equal-time comparisons instead). 1,800 until the
# 31st session, when dag_train_positions made the step ~0.7x as long: 2,400 take the time 1,800 took, and over seeds
# 1337-1341 gave test 95.0 -> 95.4%, test chains 54.2 -> 56.7%, extrapolation 93.4 -> 94.3% (each up on every seed),
# held-out phrasings 67.7% both (NOTES.md). Before: 1600 -> 1800 raised every figure over 10 seeds (23rd session)
lr_decay_iters = 2400
min_lr = 3e-4  # learning_rate / 10, as nanoGPT's
beta2 = 0.99
warmup_iters = 50
multi_step_windows = 5  # 5 more windows a batch that start at a chain's line (batches of 21, not 16); measured as 10
# on batches of 32 from halfway: with prepare.py's 30% chains, over 6 seeds, test chains 31.0 -> 44.1%, test
# 92.6 -> 93.6%, extrapolation 91.5 -> 91.3%, held-out phrasings 56.7 -> 54.5%, single ops 99.4 -> 99.1% (NOTES.md,
# 18th session)
multi_step_from = 0.25  # the chain windows from a quarter of the training, not train.py's halfway: over 10 seeds test
# chains 48.4 -> 50.9%, extrapolation 91.2 -> 92.3% (its single ops 97.5 -> 98.3%), held-out phrasings 59.5 -> 58.3%,
# for 2-3% more time (NOTES.md, 21st session; from the start, 2 seeds: phrasings -4, 12% more time)
dag_train_positions = 0.3  # a training step runs the DAG at ~30% of the positions: every one with a step label, then
# every one after a number, then random others (evaluation runs them all): the step ~0.70x as long (bench.py's ratio
# to the GPT 2.77 -> 1.91x). At the same 1,800 iterations, over 6 seeds, within a point but for chains (test chains
# 54.1 -> 52.4%, the chains suite -2%): the time it saves buys max_iters 2,400 instead (NOTES.md, 31st session). The
# labelled first (32nd session; one draw over both kinds lost ~4% of the labels), 5 seeds: test chains 56.7 -> 58.8%

# device, dtype and compile: train.py's defaults (CUDA with bf16 and torch.compile where there is a GPU, as on a
# RunPod pod; else the CPU, eager). GPT+DAG compiles on the CPU too, as one graph (bench.py's step ratio to the GPT:
# 1.94x eager, 1.73-1.76x compiled), but inductor's compiles and recompiles took minutes, more than they save in
# 2,400 iterations (NOTES.md)
