#!/usr/bin/env python3
"""Peers on Freshet's own sample stream: Vowpal Wabbit and a PyTorch MMoE+ESMM.

Reads the file `freshet replay --samples-out FILE` writes (docs/samples-dump.md) and replays it
through a peer model with Freshet's own schedule: the samples of one mini-batch are scored with
the parameters from before that batch, then the batch trains; a MATURED sample is scored with the
parameters of the moment it was emitted and trains nothing. A peer therefore sees each label
exactly when Freshet's join released it, with the same loss weights (the default policy's
delayed-feedback weights included), and is scored on exactly the samples Freshet scores, with
the same rule for the CVR and CTCVR labels that mature later: the prediction taken when the
impression's first sample was emitted (the "prior").

Prints one JSON object per line on stdout: metrics per task, overall and for one scenario,
examples/s of training and peak resident memory. `--peer freshet` computes Freshet's own numbers
from the scores the dump records, with the same code.
"""
import argparse
import json
import resource
import sys
import time

import numpy as np

TASKS = ("ctr", "cvr", "ctcvr")
OP_TRAIN, OP_SCORE = 1, 2
FLAG_SCORED, FLAG_TAKES_PRIOR, FLAG_USES_PRIOR = 1, 2, 4
KIND_MATURED = 7


def read_dump(path):
    with open(path, "rb") as f:
        head = f.read(36)
    if len(head) < 36 or head[:16] != b"FRESHET-SAMPLES\n":
        sys.exit(f"{path}: not a Freshet samples dump")
    version, n_cat, n_num, n_multi, multi_len = (int(x) for x in np.frombuffer(head[16:36], dtype="<u4"))
    if version != 1:
        sys.exit(f"{path}: samples dump version {version}, this script reads 1")
    dt = np.dtype([("op", "u1"), ("flags", "u1"), ("kind", "u1"), ("scenario", "<u4"), ("step", "<u8"),
                   ("key", "<u8"), ("ts", "<i8"), ("fscore", "<f4", 3), ("has_label", "u1", 3),
                   ("label", "<f4", 3), ("weight", "<f4", 3), ("cat", "<u8", n_cat), ("num", "<f4", n_num),
                   ("multi", "<u8", (n_multi, multi_len)), ("multi_len", "u1", n_multi)])
    return np.fromfile(path, dtype=dt, offset=36), (n_cat, n_num, n_multi, multi_len)


def batches(rec):
    """Yields (score_idx, train_idx) per step, in file order: the MATURED samples scored before
    the step's batch trains, and the batch itself."""
    step = rec["step"]
    op = rec["op"]
    bounds = np.flatnonzero(np.diff(step)) + 1
    start = 0
    for end in list(bounds) + [len(rec)]:
        idx = np.arange(start, end)
        yield idx[op[idx] == OP_SCORE], idx[op[idx] == OP_TRAIN]
        start = end


# ---- metrics (the same for every peer and for Freshet's recorded scores) ----

def auc(p, y, w):
    if len(p) == 0 or y.min() == y.max():
        return float("nan")
    order = np.argsort(p, kind="mergesort")
    p, y, w = p[order], y[order], w[order]
    # ties share their rank mass: group equal scores
    uniq, start = np.unique(p, return_index=True)
    pos = np.add.reduceat(w * y, start)
    neg = np.add.reduceat(w * (1 - y), start)
    neg_below = np.cumsum(neg) - neg
    return float((pos * (neg_below + 0.5 * neg)).sum() / (pos.sum() * neg.sum()))


def summary(p, y, w):
    p = np.clip(p.astype(np.float64), 1e-7, 1 - 1e-7)
    ll = -(w * (y * np.log(p) + (1 - y) * np.log(1 - p))).sum() / w.sum() if len(p) else float("nan")
    cal = (w * p).sum() / max((w * y).sum(), 1e-12) if len(p) else float("nan")
    return {"auc": auc(p, y, w), "logloss": float(ll), "calibration": float(cal), "n": int(len(p))}


class Scores:
    """Collects (task, scenario, score, label, weight) for every scored sample."""

    def __init__(self, final):
        self.rows = {t: ([], [], [], []) for t in range(3)}
        self.final = final  # the model's scores already are the ones to judge (Freshet's record)

    def add(self, rec, idx, now, prior_of):
        for i, r in zip(idx, rec[idx]):
            if not r["flags"] & FLAG_SCORED:
                continue
            for t in range(3):
                if not r["has_label"][t]:
                    continue
                x = now[i][t]
                if r["flags"] & FLAG_USES_PRIOR and t != 0 and not self.final:
                    x = prior_of(int(r["key"]), now[i])[t]
                w = r["weight"][t] if r["weight"][t] > 0 else 1.0
                s, sc, y, ww = self.rows[t]
                s.append(x), sc.append(r["scenario"]), y.append(r["label"][t]), ww.append(w)

    def report(self, scenario):
        out = {}
        for t, name in enumerate(TASKS):
            s, sc, y, w = (np.asarray(a) for a in self.rows[t])
            out[name] = summary(s, y, w)
            m = sc == scenario
            out[name + "_cold"] = summary(s[m], y[m], w[m])
        return out


def run(rec, dims, model, scenario):
    """Freshet's schedule for any model with predict(rec_slice) -> (n, 3) and train(rec_slice)."""
    scores = Scores(getattr(model, "final_scores", False))
    priors = {}
    trained = 0
    t_train = 0.0

    def prior_of(key, fallback):
        return priors.get(key, fallback)

    for score_idx, train_idx in batches(rec):
        now = {}
        if len(score_idx):
            p = model.predict(rec[score_idx])
            now.update(zip(score_idx, p))
            scores.add(rec, score_idx, now, prior_of)
            for i in score_idx:
                if rec["kind"][i] == KIND_MATURED:
                    priors.pop(int(rec["key"][i]), None)
        if len(train_idx):
            p = model.predict(rec[train_idx])
            now.update(zip(train_idx, p))
            for i in train_idx:
                if rec["flags"][i] & FLAG_TAKES_PRIOR:
                    priors[int(rec["key"][i])] = now[i]
            scores.add(rec, train_idx, now, prior_of)
            t0 = time.perf_counter()
            model.train(rec[train_idx])
            t_train += time.perf_counter() - t0
            trained += len(train_idx)
    return scores.report(scenario), trained, t_train


class Recorded:
    """Freshet: the scores its own progressive metrics used (the prior where it used one), as the
    dump recorded them."""

    final_scores = True

    def predict(self, r):
        return r["fscore"]

    def train(self, r):
        pass


class VowpalWabbit:
    """One logistic VW model per task, hashed features by field namespace, quadratic interactions."""

    def __init__(self, dims, args):
        from vowpalwabbit import Workspace
        self.ws = [Workspace(args + " --quiet") for _ in range(3)]
        self.dims = dims

    def features(self, r):
        n_cat, n_num, n_multi, _ = self.dims
        out = []
        for x in r:
            cat = " ".join(f"{j}_{x['cat'][j]:x}" for j in range(n_cat))
            num = " ".join(f"n{j}:{x['num'][j]:.6g}" for j in range(n_num))
            mul = " ".join(f"m{j}_{x['multi'][j][k]:x}" for j in range(n_multi) for k in range(x["multi_len"][j]))
            out.append(f"|c {cat} |n {num} |m {mul}")
        return out

    def predict(self, r):
        p = np.zeros((len(r), 3), dtype=np.float64)
        for i, feats in enumerate(self.features(r)):
            for t in range(3):
                p[i, t] = self.ws[t].predict(feats)
        return p

    def train(self, r):
        for x, feats in zip(r, self.features(r)):
            for t in range(3):
                # a delayed-feedback copy's label is w1 / (w1 + w0), not 0 or 1: VW's logistic loss
                # takes it as two examples, (1, w1) and (-1, w0), which is the same gradient
                w, y = float(x["weight"][t]), float(x["label"][t])
                for label, wt in (("1", w * y), ("-1", w * (1 - y))):
                    if wt > 0:
                        self.ws[t].learn(f"{label} {wt:.6g} {feats}")


class TorchMMoE:
    """MMoE (4 experts, a gate per task) with ESMM's pCTCVR = pCTR x pCVR, hashed embeddings."""

    def __init__(self, dims, buckets=1 << 20, dim=8, experts=4, lr=0.05, seed=1):
        import warnings
        import torch
        warnings.filterwarnings("ignore", message="Sparse invariant checks")
        torch.manual_seed(seed)
        torch.set_num_threads(1)
        n_cat, n_num, n_multi, _ = dims
        self.torch, self.dims, self.buckets = torch, dims, buckets
        nn = torch.nn
        self.emb = nn.Embedding(buckets, dim, sparse=True)
        nn.init.normal_(self.emb.weight, std=0.01)
        width = (n_cat + n_multi) * dim + n_num
        self.experts = nn.ModuleList(nn.Sequential(nn.Linear(width, 64), nn.ReLU(), nn.Linear(64, 32), nn.ReLU())
                                     for _ in range(experts))
        self.gates = nn.ModuleList(nn.Linear(width, experts) for _ in range(2))
        self.towers = nn.ModuleList(nn.Sequential(nn.Linear(32, 16), nn.ReLU(), nn.Linear(16, 1)) for _ in range(2))
        dense = list(self.experts.parameters()) + list(self.gates.parameters()) + list(self.towers.parameters())
        self.opt_sparse = torch.optim.Adagrad(self.emb.parameters(), lr=lr)
        self.opt_dense = torch.optim.Adagrad(dense, lr=lr)

    def forward(self, r):
        torch = self.torch
        n_cat, n_num, n_multi, multi_len = self.dims
        cat = torch.from_numpy((r["cat"] % self.buckets).astype(np.int64))
        parts = [self.emb(cat).flatten(1)]
        if n_multi:
            ids = torch.from_numpy((r["multi"] % self.buckets).astype(np.int64))
            mask = torch.arange(multi_len)[None, None, :] < torch.from_numpy(r["multi_len"].astype(np.int64))[:, :, None]
            e = self.emb(ids) * mask[..., None]
            parts.append((e.sum(2) / mask.sum(2, keepdim=True).clamp(min=1)).flatten(1))
        if n_num:
            parts.append(torch.tensor(np.array(r["num"], dtype=np.float32)))
        x = torch.cat(parts, 1)
        ex = torch.stack([e(x) for e in self.experts], 1)
        outs = []
        for g, tw in zip(self.gates, self.towers):
            w = torch.softmax(g(x), 1)[..., None]
            outs.append(torch.sigmoid(tw((w * ex).sum(1)).squeeze(1)))
        ctr, cvr = outs
        return torch.stack([ctr, cvr, ctr * cvr], 1)

    def predict(self, r):
        with self.torch.no_grad():
            return self.forward(r).double().numpy()

    def train(self, r):
        torch = self.torch
        p = self.forward(r).clamp(1e-7, 1 - 1e-7)
        y = torch.tensor(np.array(r["label"], dtype=np.float32))
        w = torch.tensor(np.array(r["weight"], dtype=np.float32))
        loss = -(w * (y * torch.log(p) + (1 - y) * torch.log(1 - p))).sum()
        self.opt_sparse.zero_grad(), self.opt_dense.zero_grad()
        loss.backward()
        self.opt_sparse.step(), self.opt_dense.step()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dump")
    ap.add_argument("--peer", choices=("freshet", "vw", "torch"), required=True)
    ap.add_argument("--cold-scenario", type=int, default=3, help="scenario index reported as *_cold")
    ap.add_argument("--vw-args", default="--loss_function logistic --link logistic -b 24 -q cc -q cm "
                                          "--learning_rate 0.3 --power_t 0.5 --l2 1e-8")
    ap.add_argument("--torch-lr", type=float, default=0.05)
    a = ap.parse_args()
    rec, dims = read_dump(a.dump)
    model = {"freshet": lambda: Recorded(), "vw": lambda: VowpalWabbit(dims, a.vw_args),
             "torch": lambda: TorchMMoE(dims, lr=a.torch_lr)}[a.peer]()
    t0 = time.perf_counter()
    metrics, trained, t_train = run(rec, dims, model, a.cold_scenario)
    out = {"peer": a.peer, "samples": int(len(rec)), "trained": trained,
           "seconds": round(time.perf_counter() - t0, 2),
           "train_examples_per_s": round(trained / t_train) if t_train > 0 else None,
           "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}
    out.update(metrics)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
