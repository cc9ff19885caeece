"""Spectrum scan benchmark: ours against WeightWatcher and plain torch SVD, measured in one run.

    python benchmarks/spectrum.py [--layers-7b 4]      (needs: pip install -e ".[bench]")

Prints markdown tables:
 1. full spectra of MiniLM (real weights) and of a GPT-2-small-shaped model, same matrices for
    every tool;
 2. the allocation-grade scan (top 64) of a checkpoint with Llama-2-7B's matrix shapes (bf16
    safetensors written here, decaying spectra), cold and cached, time and peak RSS measured in a
    fresh process each, extrapolated linearly to 32 layers;
 3. the relative error of top-k against exact singular values on MiniLM's real weights;
 4. the cached re-scan of MiniLM.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
import lamda_core as lc  # noqa: E402
from lamda_core.models.targets import default_targets, weight_as_linear  # noqa: E402


def timed(fn, repeats: int = 1) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def gpt2_small():
    from transformers import GPT2Config, GPT2Model

    torch.manual_seed(0)
    return GPT2Model(GPT2Config(n_layer=12, n_embd=768, n_head=12, vocab_size=50257)).eval()


def weightwatcher_layer_ids(watcher, names: list[str]) -> list[int]:
    details = watcher.describe()
    by_name = dict(zip(details["longname"], details["layer_id"]))
    return [int(by_name[n]) for n in names if n in by_name]


def full_spectra_rows(label: str, model, repeats: int) -> list[dict]:
    import weightwatcher

    targets = default_targets(model)
    names = [m.name for m in targets]
    weights = [weight_as_linear(model.get_submodule(n)).detach().float() for n in names]
    watcher = weightwatcher.WeightWatcher(model=model)
    ids = weightwatcher_layer_ids(watcher, names)
    rows = [
        (
            "lamda_core scan_spectra (Gram route, float64 eigvalsh)",
            "all singular values + scalars, no cache",
            lambda: lc.scan_spectra(model, cache=False),
        ),
        (
            "torch.linalg.svd per matrix (float32)",
            "U, sigma, V^T",
            lambda: [torch.linalg.svd(w, full_matrices=False) for w in weights],
        ),
        (
            "torch.linalg.svdvals per matrix (float32)",
            "all singular values",
            lambda: [torch.linalg.svdvals(w) for w in weights],
        ),
        (
            "WeightWatcher get_ESD per matrix",
            "all eigenvalues of W^T W",
            lambda: [watcher.get_ESD(layer=i) for i in ids],
        ),
        (
            "WeightWatcher analyze()",
            "eigenvalues + power-law fit per matrix",
            lambda: watcher.analyze(layers=ids, plot=False),
        ),
    ]
    results = []
    for tool, computes, fn in rows:
        fn()  # warm-up
        results.append({"model": label, "matrices": len(names) if "WeightWatcher" not in tool else len(ids),
                        "tool": tool, "computes": computes, "seconds": timed(fn, repeats)})
    ours = results[0]["seconds"]
    for r in results:
        r["ratio"] = r["seconds"] / ours
    return results


def write_7b_shaped_checkpoint(folder: Path, layers: int) -> None:
    """Llama-2-7B matrix shapes (hidden 4096, MLP 11008, 32 heads) in bf16 safetensors, one file
    per layer, each matrix with a power-law spectrum (sigma_i ~ i^-0.8 over 256 directions) plus a
    small noise floor. Only the layer matrices are written (the scan reads nothing else)."""
    from safetensors.torch import save_file
    from transformers import LlamaConfig

    config = LlamaConfig(hidden_size=4096, intermediate_size=11008, num_hidden_layers=layers,
                         num_attention_heads=32, num_key_value_heads=32, vocab_size=32000)
    config.save_pretrained(folder)
    generator = torch.Generator().manual_seed(0)
    decay = torch.arange(1, 257, dtype=torch.float32) ** -0.8
    shapes = {"self_attn.q_proj": (4096, 4096), "self_attn.k_proj": (4096, 4096), "self_attn.v_proj": (4096, 4096),
              "self_attn.o_proj": (4096, 4096), "mlp.gate_proj": (11008, 4096), "mlp.up_proj": (11008, 4096),
              "mlp.down_proj": (4096, 11008)}
    for layer in range(layers):
        tensors = {}
        for name, (d_out, d_in) in shapes.items():
            left = torch.randn(d_out, 256, generator=generator) / d_out ** 0.5
            right = torch.randn(256, d_in, generator=generator) / d_in ** 0.5
            weight = (left * decay) @ right + 1e-4 * torch.randn(d_out, d_in, generator=generator)
            tensors[f"model.layers.{layer}.{name}.weight"] = weight.to(torch.bfloat16)
        save_file(tensors, str(folder / f"model-{layer:05d}.safetensors"), metadata={"format": "pt"})


SCAN_IN_CHILD = """
import json, sys, time
import lamda_core as lc
start = time.perf_counter()
report = lc.scan_spectra(sys.argv[1], top_k=64)
seconds = time.perf_counter() - start
# VmHWM: this process's peak resident set (ru_maxrss would carry the parent's over the exec)
status = dict(line.split(":", 1) for line in open("/proc/self/status"))
print(json.dumps({"seconds": seconds, "max_rss_mb": int(status["VmHWM"].split()[0]) / 1024,
                  "matrices": len(report.matrices), "cache_hits": report.cache_hits}))
"""


def scan_in_child(folder: Path, cache: Path) -> dict:
    env = {**os.environ, "LAMDA_CACHE": str(cache)}
    out = subprocess.run([sys.executable, "-c", SCAN_IN_CHILD, str(folder)], env=env, capture_output=True,
                         text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def top_k_error(source, k: int, targets=None) -> dict:
    """Relative error of the randomized top-k route against the exact (Gram) route."""
    exact = lc.scan_spectra(source, targets=targets, cache=False)
    start = time.perf_counter()
    top = lc.scan_spectra(source, targets=targets, top_k=k, cache=False)
    seconds = time.perf_counter() - start
    errors = np.concatenate([np.abs(t.sigma - e.sigma[:k]) / e.sigma[:k] for t, e in zip(top.matrices, exact.matrices)])
    return {"k": k, "matrices": len(top.matrices), "max": float(errors.max()), "median": float(np.median(errors)),
            "seconds": seconds}


def cached_rescan_minilm(cache: Path) -> tuple[float, float]:
    os.environ["LAMDA_CACHE"] = str(cache)
    cold = timed(lambda: lc.scan_spectra("default"))
    warm = statistics.median(timed(lambda: lc.scan_spectra("default")) for _ in range(5))
    return cold, warm


def heavy_tail_against_weightwatcher(model, repeats: int) -> tuple[list[tuple], dict]:
    """Per matrix: our alpha (full SVD from the weights, no cache, then heavy_tail.fit_power_law)
    against WeightWatcher analyze()'s, and both timings on the same matrices."""
    import numpy as np
    import weightwatcher

    from lamda_core.spectra.heavy_tail import heavy_tail_metrics

    names = [m.name for m in lc.default_targets(model)]
    watcher = weightwatcher.WeightWatcher(model=model)
    ids = weightwatcher_layer_ids(watcher, names)
    details = watcher.analyze(layers=ids, plot=False)

    def ours():
        return {m.name: heavy_tail_metrics(m.sigma) for m in lc.scan_spectra(model, cache=False).matrices}

    mine = ours()
    rows = []
    for name in names:
        row = details[details.longname == name].iloc[0]
        rows.append((name, mine[name]["alpha"], float(row.alpha), mine[name]["log_spectral_norm"],
                     float(row.log_spectral_norm)))
    differences = np.array([abs(r[1] - r[2]) for r in rows])
    times = {
        "ours": timed(ours, repeats),
        "weightwatcher": timed(lambda: watcher.analyze(layers=ids, plot=False), repeats),
        "median": float(np.median(differences)),
        "max": float(differences.max()),
    }
    return rows, times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers-7b", type=int, default=4, help="layers of the 7B-shaped checkpoint (of 32)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--only-alpha", action="store_true", help="only the heavy-tail alpha table")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} cores\n")

    minilm, _ = lc.load_model("default", task="encoder")
    alpha_rows, alpha_times = heavy_tail_against_weightwatcher(minilm, args.repeats)
    print("### Heavy-tail alpha on MiniLM: ours against WeightWatcher analyze(), same 36 matrices\n")
    print(f"Median absolute alpha difference {alpha_times['median']:.2e}, largest {alpha_times['max']:.2e}; "
          f"seconds (best of {args.repeats}, SVD from the weights included): ours {alpha_times['ours']:.3f}, "
          f"WeightWatcher {alpha_times['weightwatcher']:.3f} "
          f"({alpha_times['weightwatcher'] / alpha_times['ours']:.1f}x ours).\n")
    print(
        "| matrix | alpha (ours) | alpha (WeightWatcher) | log10 lambda_max (ours) | log10 lambda_max (WeightWatcher) |"
    )
    print("|---|---:|---:|---:|---:|")
    for name, a, b, c, d in alpha_rows:
        print(f"| {name} | {a:.4f} | {b:.4f} | {c:.4f} | {d:.4f} |")
    if args.only_alpha:
        return
    print()
    rows = full_spectra_rows("MiniLM-L6 (real)", minilm, args.repeats) + full_spectra_rows(
        "GPT-2 small shape", gpt2_small(), args.repeats
    )
    print("### Full spectra, same matrices for every tool (best of runs, seconds)\n")
    print("| model | tool | what the timed call computes | matrices | seconds | x ours |")
    print("|---|---|---|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['model']} | {r['tool']} | {r['computes']} | {r['matrices']} "
            f"| {r['seconds']:.3f} | {r['ratio']:.2f} |"
        )

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        ckpt = tmp / "llama7b-shaped"
        ckpt.mkdir()
        write_7b_shaped_checkpoint(ckpt, args.layers_7b)
        size_gb = sum(f.stat().st_size for f in ckpt.glob("*.safetensors")) / 1e9
        cold = scan_in_child(ckpt, tmp / "cache")
        warm = scan_in_child(ckpt, tmp / "cache")
        scale = 32 / args.layers_7b
        print(f"\n### Allocation-grade scan (top 64) of a Llama-2-7B-shaped bf16 checkpoint, "
              f"{args.layers_7b} of 32 layers ({size_gb:.2f} GB on disk), fresh process each\n")
        print("| scan | matrices | seconds | extrapolated to 32 layers (s) | peak RSS (MB) |")
        print("|---|---:|---:|---:|---:|")
        print(
            f"| cold (computed) | {cold['matrices']} | {cold['seconds']:.1f} | {cold['seconds'] * scale:.0f} "
            f"| {cold['max_rss_mb']:.0f} |"
        )
        print(
            f"| cached re-scan | {warm['matrices']} | {warm['seconds']:.2f} | {warm['seconds'] * scale:.1f} "
            f"| {warm['max_rss_mb']:.0f} |"
        )
        print("\nPeak RSS includes the Python interpreter, torch and transformers; it does not grow with the "
              "number of layers (one matrix is resident at a time).")

        errors = [
            ("MiniLM (real weights)", top_k_error("default", 8)),
            ("MiniLM (real weights)", top_k_error("default", 12)),
            (
                "7B-shaped layer 0 q_proj, gate_proj",
                top_k_error(str(ckpt), 64, targets=["layers.0.self_attn.q_proj", "layers.0.mlp.gate_proj"]),
            ),
        ]
        print("\n### Top-k accuracy of the randomized block Krylov route against exact singular values\n")
        print("| weights | matrices | k | max relative error | median relative error | top-k seconds |")
        print("|---|---:|---:|---:|---:|---:|")
        for label, e in errors:
            print(f"| {label} | {e['matrices']} | {e['k']} | {e['max']:.2e} | {e['median']:.2e} | {e['seconds']:.3f} |")
        print("\n(MiniLM with k = 64 takes the exact route: a 480-column Krylov basis would span its 384 dimensions.)")

        cold_minilm, warm_minilm = cached_rescan_minilm(tmp / "cache-minilm")
        print("\n### MiniLM full scan: cold against cached re-scan (seconds)\n")
        print("| cold | cached (median of 5) |")
        print("|---:|---:|")
        print(f"| {cold_minilm:.3f} | {warm_minilm:.3f} |")


if __name__ == "__main__":
    main()
