"""What each speed option buys one method's paper-config training step on this device, and whether it is exact.

    python benchmarks/bench_speed_options.py --methods mult fdmer                 # every option
    python benchmarks/bench_speed_options.py --methods hhmpn --options base fused --steps 1

Options (each in its own process, same model, same random batch at the config's batch size):

* ``base``: the step as ``mmerbench run`` takes it (Adam/AdamW's default per-tensor loop on CPU);
* ``foreach`` / ``fused``: the optimizer's multi-tensor or fused kernel (``param_group["foreach"]`` /
  ``["fused"]``);
* ``compile``: ``torch.compile`` of the model's forward (inductor); ``first s`` includes compiling;
* ``bf16``: bf16 autocast (``run --dtype bf16``).

Per option: the first step's seconds, the median of ``--steps`` more, the peak resident memory, and
the largest |Δ| of any parameter from ``base`` after the same steps — 0 means exact (dropout draws
included: a compiled graph draws its own masks, so it is never exact with dropout on).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

OPTIONS = ("base", "foreach", "fused", "compile", "bf16")


def _child(method: str, dataset: str, option: str, steps: int, weights_out: str) -> dict:
    import resource
    import time

    import torch

    from mmerbench import runner
    from mmerbench.profile import device_batch, random_split

    prep = runner.prepare(runner.RunRequest(method=method, dataset=dataset, device="cpu", progress=False))
    spec, p = prep.spec, prep.config["params"]
    bs, mods = int(p["batch_size"]), p.get("modalities") or list(prep.spec.modalities)
    runner.deterministic_mode("cpu")
    torch.manual_seed(0)
    model = runner.build_model(prep, spec)
    model.setup(random_split(spec, max(bs, 64), seed=1, modalities=mods))
    opt = model.configure_optimizer(100, int(p.get("epochs", 1))).optimizer
    if option in ("foreach", "fused"):
        for group in opt.param_groups:
            group["foreach"], group["fused"] = option == "foreach", option == "fused"
    if option == "compile":
        model.forward = torch.compile(model.forward)
    autocast = runner.autocast_factory("cpu", "bf16" if option == "bf16" else "fp32")
    batch = device_batch(spec, bs, "cpu", mods, seed=2)
    model.train()
    torch.manual_seed(1)
    seconds = []
    for _ in range(steps + 1):
        t = time.perf_counter()
        model.training_step(batch, opt, autocast=autocast)
        seconds.append(time.perf_counter() - t)
    torch.save({k: v.detach() for k, v in model.named_parameters()}, weights_out)
    later = sorted(seconds[1:])
    return {"first_s": seconds[0], "step_s": later[len(later) // 2] if later else None,
            "peak_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--methods", nargs="+", default=[])
    ap.add_argument("--dataset", default="synth-mosei-aligned")
    ap.add_argument("--options", nargs="*", default=list(OPTIONS), choices=OPTIONS)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        method, option, steps, out = args.child
        print(json.dumps(_child(method, args.dataset, option, int(steps), out)))
        return
    if not args.methods:
        ap.error("name at least one method: --methods mult fdmer")

    import torch
    from tabulate import tabulate

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for method in args.methods:
            base, base_step = None, None
            for option in dict.fromkeys(["base", *args.options]):
                out = os.path.join(tmp, f"{method}-{option}.pt")
                proc = subprocess.run([sys.executable, __file__, "--dataset", args.dataset, "--child", method,
                                       option, str(args.steps), out], capture_output=True, text=True, check=False)
                if proc.returncode != 0:
                    rows.append([method, option, "failed: " + (proc.stderr.strip().splitlines() or ["?"])[-1][:80],
                                 "", "", "", ""])
                    print(" | ".join(rows[-1]), file=sys.stderr, flush=True)
                    continue
                r = json.loads(proc.stdout.strip().splitlines()[-1])
                weights = torch.load(out)
                step = r["step_s"]
                if option == "base":
                    base, base_step = weights, step
                diff = max(float((weights[k] - base[k]).abs().max()) for k in base) if base else float("nan")
                speed = f"{base_step / step:.2f}×" if base_step and step else ""
                rows.append([method, option, f"{r['first_s']:.2f}", "" if step is None else f"{step:.3f}", speed,
                             f"{r['peak_gib']:.2f}", f"{diff:.2g}"])
                print(" | ".join(rows[-1]), file=sys.stderr, flush=True)
    print(tabulate(rows, headers=["method", "option", "first s", "s/step", "speed vs base", "peak GiB",
                                  "largest abs. Δ vs base"], tablefmt="github", disable_numparse=True))


if __name__ == "__main__":
    main()
