"""Is S_bound really held out from a data-dependent prior? For each task with a prior_fraction in
bench.toml: the S_prior / S_bound sizes, shared indices and identical images between them, and the
cached prior model's error on S_prior, S_bound and the test set.

    python benchmarks/prior_split_check.py [TASK ...]   (default: the fashion-mnist-datadep tasks)

Run it after `bench run --profile fashion-mnist-datadep` (it loads the prior models from the cache).
"""
import torch, numpy as np, hashlib
torch.set_num_threads(2)
from bench.registry import load_registry
from bench.tasks import BaseModels, instantiate_task
from bench.cache import ModelCache, default_cache_dir
from bench.progress import progress
from bench.kit.evaluation import error_count
reg = load_registry()
import sys
for name in sys.argv[1:] or ["fashion-mnist-convnet-p50", "fashion-mnist-convnet-p80"]:
    import tomllib
    from bench.tasks import merge_task
    cfg = tomllib.load(open("bench.toml", "rb"))["tasks"][name]
    cfg = {k: v for k, v in cfg.items() if k != "description"}
    task = instantiate_task(merge_task(None, cfg, name), reg)
    d = task.data
    idx = d.prior_indices.numpy()
    n = len(d.train)
    mask = np.zeros(n, bool); mask[idx] = True
    sp, sb = d.prior_split(), d.bound_split()
    hp = {hashlib.sha1(x.numpy().tobytes()).hexdigest() for x in sp.x}
    hb = [hashlib.sha1(x.numpy().tobytes()).hexdigest() for x in sb.x]
    dup = sum(h in hp for h in hb)
    models = BaseModels(ModelCache(default_cache_dir()), torch.device("cpu"), progress)
    prior = models.prior(task, 0)
    m = prior.eval()
    e = lambda s: error_count(m, s) / len(s)
    print(name, "n_prior", len(sp), "n_bound", len(sb), "overlap idx", int(mask.sum()) + len(sb) - n, "identical images S_bound in S_prior", dup)
    print("  prior model err: S_prior %.4f  S_bound %.4f  test %.4f" % (e(sp), e(sb), e(d.test)))
