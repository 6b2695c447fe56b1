"""Plant, one at a time, the certificate bugs that the test suite once missed; run the tests that
must catch each; restore the file. Prints CAUGHT or MISSED per bug.

    python tests/planted_bugs.py
"""
import subprocess, sys
from pathlib import Path
ROOT = Path(__file__).resolve().parents[1]
PLANTS = [
    ("occam forgets the configuration bits in its KL", "plugins/occam.py",
     "kl = bounds_math.occam_kl_nats(artifact.compressed.bits, ctx.config_bits)",
     "kl = bounds_math.occam_kl_nats(artifact.compressed.bits, 0.0)",
     ["tests/test_bound_plugins.py"]),
    ("a row's message bits come from the bound, not the artifact", "bench/rows.py",
     '"message_bits": bits, "length_code_bits"',
     '"message_bits": result.message_bits if result.message_bits is not None else bits, "length_code_bits"',
     ["tests/test_bound_plugins.py::test_bound_columns_take_the_message_from_the_artifact_not_the_bound"]),
    ("a certificate of the decoded model may skip its message", "bench/rows.py",
     "        if result.kl_nats < floor.nats - TOLERANCE * max(1.0, floor.nats):",
     "        if False:",
     ["tests/test_bound_plugins.py::test_contract_checks_name_the_plugin"]),
    ("BatchNorm statistics left out of the quantization message", "bench/kit/quantization.py",
     "    return [k for k, v in model.state_dict().items() if v.is_floating_point() and k not in coded]",
     "    return [k for k, v in model.state_dict().items() if v.is_floating_point() and k not in coded and k in dict(model.named_parameters())]",
     ["tests/test_roundtrip.py"]),
    ("robust catoni uses δ instead of δ − δ'", "plugins/catoni.py",
     "result = bounds_math.catoni_bound(err_upper, ctx.task.n_train, parts[\"nats\"], ctx.delta - delta_prime,",
     "result = bounds_math.catoni_bound(err_upper, ctx.task.n_train, parts[\"nats\"], ctx.delta,",
     ["tests/test_bound_plugins.py", "tests/test_oracle.py::test_every_row_agrees_with_the_oracle"]),
    ("robust catoni uses the raw Monte-Carlo error instead of its upper bound", "plugins/catoni.py",
     "err_upper = bounds_math.mc_error_upper_bound(err_mc, m, delta_prime, ctx.config_bits)",
     "err_upper = err_mc",
     ["tests/test_bound_plugins.py", "tests/test_oracle.py::test_every_row_agrees_with_the_oracle"]),
    ("robust catoni takes its Monte-Carlo term at δ′, not δ′·2^-L(c)", "plugins/catoni.py",
     "err_upper = bounds_math.mc_error_upper_bound(err_mc, m, delta_prime, ctx.config_bits)",
     "err_upper = bounds_math.mc_error_upper_bound(err_mc, m, delta_prime)",
     ["tests/test_bound_plugins.py"]),
    ("a noisy convolution called twice draws twice", "bench/kit/stochastic.py",
     "        if self.name in state.draws:",
     "        if False:",
     ["tests/test_one_draw.py"]),
    ("the configuration code leaves the escape out of the name index", "bench/configcode.py",
     "        return fixed(known.index(name), len(known) + 1)",
     "        return fixed(known.index(name), len(known))",
     ["tests/test_configcode.py"]),
    ("the decoded model's outputs are not compared with the compressor's own", "bench/runner.py",
     "        if own_outputs is not None:",
     "        if False:",
     ["tests/test_integrity.py::test_a_forward_that_reads_state_left_by_compress_fails_its_cell"]),
    ("the sandbox checks paths without resolving them", "bench/sandbox.py",
     "    path = os.path.realpath(path)",
     "    path = os.path.abspath(path)",
     ["tests/test_integrity.py::test_a_decoder_that_fetches_the_trained_model_fails_its_cell"]),
    ("the binomial deep-tail sum drops its j = 0 term", "bench/kit/bounds.py",
     "m_terms = min(m_terms, k + 1)\n    else:\n        m_terms = k + 1",
     "m_terms = min(m_terms, k)\n    else:\n        m_terms = k",
     ["tests/test_oracle.py::test_binomial_logcdf_in_the_deep_tail"]),
]
for what, path, old, new, tests in PLANTS:
    f = ROOT / path
    text = f.read_text()
    assert text.count(old) == 1, (what, old)
    f.write_text(text.replace(old, new))
    try:
        out = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-rf", "-p", "no:cacheprovider", *tests],
                             cwd=ROOT, capture_output=True, text=True)
        failed = [l for l in out.stdout.splitlines() if l.startswith("FAILED")]
        print(f"{'CAUGHT' if out.returncode else 'MISSED'}: {what} -> {failed[0] if failed else out.stdout.splitlines()[-1:]}", flush=True)
    finally:
        f.write_text(text)
