"""Plant, one at a time, the certificate bugs that the test suite once missed; run the tests that
must catch each; restore the file. Prints CAUGHT or MISSED per bug.

    python tests/planted_bugs.py
"""
import subprocess, sys
from pathlib import Path
ROOT = Path(__file__).resolve().parents[1]
PLANTS = [
    ("occam reports 0 length-code bits in its row", "plugins/occam.py",
     "message_bits=kl.message_bits, length_code_bits=kl.length_code_bits,",
     "message_bits=kl.message_bits, length_code_bits=0.0,", ["tests/test_bound_plugins.py", "tests/test_oracle.py::test_every_row_agrees_with_the_oracle"]),
    ("BatchNorm statistics left out of the quantization message", "bench/kit/quantization.py",
     "    return [k for k, v in model.state_dict().items() if v.is_floating_point() and k not in coded]",
     "    return [k for k, v in model.state_dict().items() if v.is_floating_point() and k not in coded and k in dict(model.named_parameters())]",
     ["tests/test_roundtrip.py"]),
    ("robust catoni uses δ instead of δ − δ'", "plugins/catoni.py",
     "result = bounds_math.catoni_bound(err_upper, ctx.task.n_train, parts[\"nats\"], ctx.delta - delta_prime,",
     "result = bounds_math.catoni_bound(err_upper, ctx.task.n_train, parts[\"nats\"], ctx.delta,",
     ["tests/test_bound_plugins.py", "tests/test_oracle.py::test_every_row_agrees_with_the_oracle"]),
    ("robust catoni uses the raw Monte-Carlo error instead of its upper bound", "plugins/catoni.py",
     "err_upper = bounds_math.mc_error_upper_bound(err_mc, m, delta_prime)",
     "err_upper = err_mc",
     ["tests/test_bound_plugins.py", "tests/test_oracle.py::test_every_row_agrees_with_the_oracle"]),
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
