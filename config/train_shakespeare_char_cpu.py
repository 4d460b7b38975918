# nanoGPT's documented CPU run of the shakespeare_char model, as a config file:
# python train.py config/train_shakespeare_char_cpu.py
# (the same as: config/train_shakespeare_char.py --device=cpu --compile=False --eval_iters=20 --log_interval=1
#  --block_size=64 --batch_size=12 --n_layer=4 --n_head=4 --n_embd=128 --max_iters=2000 --lr_decay_iters=2000
#  --dropout=0.0); nanoGPT reports a val loss of about 1.88 after its 2000 iterations

exec(open('config/train_shakespeare_char.py').read())

out_dir = 'out-shakespeare-char-cpu'
device = 'cpu'
compile = False
eval_iters = 20
log_interval = 1
block_size = 64
batch_size = 12
n_layer = 4
n_head = 4
n_embd = 128
max_iters = 2000
lr_decay_iters = 2000
dropout = 0.0
