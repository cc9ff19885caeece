"""Cost model: exact parameter counts, activations against measurement, big configs, bad input."""
import pytest
from transformers import LlamaConfig

import lamda_core as lc
from lamda_core import figures
from lamda_core.costs.memory import CostBreakdown
from lamda_core.methods import PeftMethod, get_method, method_names

SOURCES = {"minilm": ("default", "classification"), "llama": ("tiny-llama", "causal-lm"),
           "gpt2": ("tiny-gpt2", "causal-lm")}
# every registered method outside the PEFT family (tests/test_peft_family.py measures those) at dropout 0, and
# the dropout paths of LoRA's and LaMDA's memory terms
COVERED = [n for n in method_names() if not isinstance(get_method(n), PeftMethod) or n == "lora"]
METHODS = [(m, 0.0) for m in COVERED] + [("lora", 0.05), ("lamda", 0.1)]


def rank_pattern(source):
    return lc.allocate_ranks(lc.scan_spectra(source, top_k=16), base_rank=4, r_max=16).rank_pattern


@pytest.mark.parametrize("family", list(SOURCES))
@pytest.mark.parametrize("method,dropout", METHODS)
def test_estimate_matches_measurement(family, method, dropout):
    source, task = SOURCES[family]
    pattern = rank_pattern(source) if method == "lamda++" else None
    shape = dict(batch_size=2, seq_len=24, task=task, dropout=dropout)
    estimate = lc.estimate_costs(lc.CostQuery(source, method, 4, pattern, **shape))
    measured = lc.measure_costs(lc.CostQuery(source, method, 4, pattern, **shape))
    # parameter counts are exact
    for count in ("trainable_start", "trainable_end", "adapter_start", "adapter_end"):
        assert getattr(estimate, count) == getattr(measured, count), count
    assert estimate.trainable_average == pytest.approx(measured.trainable_average)
    assert estimate.weights == measured.weights and estimate.gradients == measured.gradients
    # activations within 10% (they agree to well under 1% here), component by component
    for component in ("activations_base", "activations_adapter", "logits"):
        if getattr(measured, component):
            assert getattr(estimate, component) == pytest.approx(getattr(measured, component), rel=0.10), component
    assert estimate.total == pytest.approx(measured.total, rel=0.10)
    assert estimate.optimizer == pytest.approx(measured.optimizer, rel=0.01)  # step counters are tiny
    # the peak the allocator reached in a steady-state step (benchmarks/memory.py: within 1% on its grid).
    # Known gap: at this tiny shape full fine-tuning of GPT-2 peaks in the optimizer step, where AdamW's
    # scratch for its tied embedding is about 2x the gradients, not the 1x modelled (-11%; README)
    if (family, method) != ("gpt2", "full"):
        assert estimate.peak == pytest.approx(measured.peak, rel=0.05)
    assert measured.peak_phase in ("forward", "backward", "optimizer step") and measured.rss_growth >= 0


def test_allocator_peak_is_the_highest_running_sum_and_names_its_phase():
    import torch
    from torch.profiler import ProfilerActivity, profile, record_function

    from lamda_core.costs.peak import allocator_peak

    mib = 2 ** 20
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as profiler:
        with record_function("forward"):
            kept = torch.ones(mib // 4)  # 1 MiB kept
            transient = torch.ones(3 * mib // 4)  # 3 MiB, freed at once
            del transient
        with record_function("backward"):
            grown = torch.ones(2 * mib // 4)  # 2 MiB on top of the kept 1 MiB: 3 MiB, not above 4
        with record_function("optimizer step"):
            del kept, grown
    peak = allocator_peak(profiler)
    assert peak.extra == 4 * mib and peak.phase == "forward"


def test_checkpointed_step_is_measured_and_its_peak_estimated():
    query = lc.CostQuery("tiny-gpt2", "lamda", 4, batch_size=4, seq_len=64, task="causal-lm")
    plain, checkpointed = lc.measure_costs(query), lc.measure_costs(query.replace(gradient_checkpointing=True))
    assert checkpointed.activations_base < plain.activations_base / 2
    estimate = lc.estimate_costs(query.replace(gradient_checkpointing=True))
    assert estimate.peak == pytest.approx(checkpointed.peak, rel=0.10)


def test_lamda_keeps_less_than_lora_and_averages_fewer_parameters():
    lamda = lc.estimate_costs(lc.CostQuery("default", "lamda", 8, batch_size=8, seq_len=128))
    lora = lc.estimate_costs(lc.CostQuery("default", "lora", 8, batch_size=8, seq_len=128))
    assert lamda.activations_adapter < lora.activations_adapter / 10
    assert lamda.total < lora.total
    assert lamda.adapter_start == 36 * (64 + 8 * 384) + 6 * 8 * (1536 - 384)
    assert lamda.adapter_end == 36 * 64
    assert lora.adapter_start / (lamda.trainable_average - 770) > 10  # 770: the classifier, same for both


def test_llama_7b_config_estimates_without_allocating_weights():
    import resource

    config = LlamaConfig(hidden_size=4096, intermediate_size=11008, num_hidden_layers=32, num_attention_heads=32,
                         num_key_value_heads=32, vocab_size=32000, max_position_embeddings=4096)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    lamda = lc.estimate_costs(lc.CostQuery(config, "lamda", 16, batch_size=1, seq_len=2048, dtype="bfloat16",
                              task="causal-lm", device="cuda", mixed_precision=True))
    full = lc.estimate_costs(
        lc.CostQuery(config, "full", batch_size=1, seq_len=2048, dtype="bfloat16", task="causal-lm")
    )
    grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mib < 500  # its bf16 weights alone are 12.6 GiB
    assert full.weights == 6_738_415_616 * 2  # Llama-2-7B's parameter count
    assert lamda.weights > full.weights  # plus the float32 adapters
    assert lamda.adapter_start == 32 * (4 * (256 + 16 * 4096) + 2 * (256 + 16 * 11008) + (256 + 16 * 4096))


def test_gradient_checkpointing_keeps_block_inputs_only():
    plain = lc.estimate_costs(lc.CostQuery("default", "lamda", 8, batch_size=8, seq_len=128))
    checkpointed = lc.estimate_costs(
        lc.CostQuery("default", "lamda", 8, batch_size=8, seq_len=128, gradient_checkpointing=True)
    )
    assert checkpointed.activations_base < plain.activations_base / 2


@pytest.mark.parametrize("kwargs,error,message", [
    (dict(batch_size=0), lc.ConfigError, "batch size must be a positive integer"),
    (dict(seq_len=-4), lc.ConfigError, "sequence length must be a positive integer"),
    (dict(seq_len=4096), lc.ConfigError, "exceeds the model's maximum of 512 positions"),
    (dict(method="qlorax"), lc.ConfigError, "unknown method 'qlorax'"),
    (dict(rank_pattern={"model.layers.0.q_proj": 4}), lc.TargetError, "match none of the targeted matrices"),
    (dict(optimizer="lion"), lc.ConfigError, "unknown optimizer"),
])
def test_bad_input_is_a_specific_error(kwargs, error, message):
    arguments = dict(source="default", method="lamda", rank=8, batch_size=4, seq_len=64) | kwargs
    with pytest.raises(error, match=message):
        lc.estimate_costs(lc.CostQuery(**arguments))


def test_cost_figure_stacks_the_breakdown():
    breakdowns = {
        m: lc.estimate_costs(lc.CostQuery("default", m, 8, batch_size=4, seq_len=64)) for m in ("full", "lora", "lamda")
    }
    figure = figures.cost_figure(breakdowns)
    assert [t.name for t in figure.data][:2] == ["weights", "gradients"] and figure.layout.barmode == "stack"
    for trace, component in zip(figure.data, CostBreakdown.COMPONENTS):
        assert list(trace.y) == pytest.approx([getattr(breakdowns[m], component) / 2 ** 20 for m in breakdowns])
    assert "MiB" in figure.layout.yaxis.title.text


def test_estimate_each_leaves_out_a_method_the_model_cannot_take_unless_it_is_required():
    queries = {m: lc.CostQuery("tiny-gpt2", m, 4, batch_size=2, seq_len=16, task="causal-lm")
               for m in ("lamda", "psoft")}
    estimates, left_out = lc.estimate_each(queries)
    assert list(estimates) == ["lamda"] and list(left_out) == ["psoft"] and "Conv1D" in str(left_out["psoft"])
    with pytest.raises(lc.ConfigError, match="Conv1D"):
        lc.estimate_each(queries, required="psoft")
    with pytest.raises(lc.ConfigError, match="Conv1D"):  # nothing left to show
        lc.estimate_each({"psoft": queries["psoft"]})
