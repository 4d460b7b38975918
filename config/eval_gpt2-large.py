# evaluate the base gpt2-large
batch_size = 8
eval_iters = 500  # use more iterations to get good estimate
eval_only = True
wandb_log = False
init_from = 'gpt2-large'
dataset = 'openwebtext'  # GPT-2 reads BPE token ids: a BPE dataset (nanoGPT's openwebtext, or data/shakespeare)
