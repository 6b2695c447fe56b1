"""Tests for bench.kit.coding: lossless round trips, coded sizes near the entropy, corruption."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bench.kit.coding import (
    BitReader,
    BitWriter,
    CorruptMessage,
    decode_floats,
    decode_positions,
    decode_symbols,
    elias_delta_bits,
    encode_floats,
    encode_positions,
    encode_symbols,
    pack_sections,
    round_to_precision,
    split_known_lengths,
    unpack_sections,
)

# Deterministic property tests: the same examples on every run, no example database.
PROPERTY = settings(derandomize=True, deadline=None, max_examples=150, database=None)
GARBAGE = settings(derandomize=True, deadline=None, max_examples=300, database=None)


def empirical_entropy_bits(symbols: np.ndarray) -> float:
    """n * H(p_hat) in bits."""
    counts = np.bincount(symbols).astype(np.float64)
    counts = counts[counts > 0]
    n = counts.sum()
    return float(n * np.log2(n) - (counts * np.log2(counts)).sum())


def h2(p: float) -> float:
    return 0.0 if p in (0.0, 1.0) else -(p * math.log2(p) + (1 - p) * math.log2(1 - p))


def skewed_symbols(rng: np.random.Generator, alphabet: int, n: int, concentration: float) -> np.ndarray:
    probabilities = rng.dirichlet(np.full(alphabet, concentration))
    return rng.choice(alphabet, size=n, p=probabilities)


# --- Elias delta and the bit layer ---------------------------------------------------------


def elias_delta_reference(n: int) -> int:
    log_n = n.bit_length() - 1  # floor(log2 n), exact for big ints
    return log_n + 2 * ((log_n + 1).bit_length() - 1) + 1


HUGE = [2**32 - 1, 2**32, 2**53 + 1, 2**64 - 1, 2**64, 10**30, 2**200 + 12345, 2**1000 - 1, 2**1000]


def test_elias_delta_bits_matches_written_length() -> None:
    for n in list(range(1, 5001)) + HUGE:
        writer = BitWriter()
        writer.write_elias_delta(n)
        assert writer.bit_length == elias_delta_bits(n) == elias_delta_reference(n), n
    assert [elias_delta_bits(n) for n in (1, 2, 3, 4, 7, 8, 15, 16)] == [1, 4, 4, 5, 5, 8, 8, 9]


def test_elias_delta_round_trip_and_known_codes() -> None:
    values = list(range(1, 5001)) + HUGE
    writer = BitWriter()
    for n in values:
        writer.write_elias_delta(n)
    data = writer.getvalue()
    assert len(data) == math.ceil(sum(map(elias_delta_bits, values)) / 8)
    reader = BitReader(data)
    assert [reader.read_elias_delta(max_length_bits=128) for _ in values] == values
    reader.finish()
    # Textbook codes: 1 -> "1", 2 -> "0100", 10 -> "00100010".
    writer = BitWriter()
    for n in (1, 2, 10):
        writer.write_elias_delta(n)
    assert writer.getvalue() == int("1" "0100" "00100010" "000", 2).to_bytes(2, "big")
    with pytest.raises(ValueError):
        elias_delta_bits(0)
    with pytest.raises(ValueError):
        BitWriter().write_elias_delta(0)


def test_vectorized_elias_delta_matches_scalar() -> None:
    values = np.array([1, 2, 3, 100, 4095, 4096, 2**40 + 7, 2**53 - 1], dtype=np.uint64)
    vectorized, scalar = BitWriter(), BitWriter()
    vectorized.write_elias_delta_array(values)
    for n in values:
        scalar.write_elias_delta(int(n))
    assert vectorized.getvalue() == scalar.getvalue()


@PROPERTY
@given(st.data())
def test_bit_writer_reader_round_trip(data: st.DataObject) -> None:
    writer, expected = BitWriter(), []
    for _ in range(data.draw(st.integers(0, 12))):
        kind = data.draw(st.sampled_from(["bits", "delta", "fields", "bytes"]))
        if kind == "bits":
            nbits = data.draw(st.integers(0, 200))
            value = data.draw(st.integers(0, 2**nbits - 1))
            writer.write_bits(value, nbits)
            expected.append((kind, value, nbits))
        elif kind == "delta":
            value = data.draw(st.integers(1, 2**100))
            writer.write_elias_delta(value)
            expected.append((kind, value, None))
        elif kind == "fields":
            rng = np.random.default_rng(data.draw(st.integers(0, 2**32)))
            widths = rng.integers(0, 65, size=data.draw(st.integers(0, 300)))
            values = rng.integers(0, 2**63, size=widths.size, dtype=np.uint64) * np.uint64(2) + np.uint64(1)
            values &= np.where(widths == 64, np.uint64(2**64 - 1), (np.uint64(1) << widths.astype(np.uint64)) - np.uint64(1))
            writer.write_fields(values, widths)
            expected.append((kind, values, widths))
        else:
            raw = data.draw(st.binary(max_size=20))
            writer.write_bytes(raw)
            expected.append((kind, raw, None))
    reader = BitReader(writer.getvalue())
    for kind, value, extra in expected:
        if kind == "bits":
            assert reader.read_bits(extra) == value
        elif kind == "delta":
            assert reader.read_elias_delta() == value
        elif kind == "fields":
            np.testing.assert_array_equal(reader.read_fields(extra), value)
        else:
            assert reader.read_bytes(len(value)) == value
    reader.finish()


def test_bit_layer_rejects_bad_input() -> None:
    with pytest.raises(ValueError):
        BitWriter().write_bits(4, 2)
    with pytest.raises(ValueError):
        BitWriter().write_fields(np.array([4]), np.array([2]))
    with pytest.raises(CorruptMessage):
        BitReader(b"\x00").read_elias_delta()
    with pytest.raises(CorruptMessage):
        BitReader(b"\xff").read_bits(9)
    with pytest.raises(CorruptMessage):  # claims a 2**40-bit number: refused, not allocated
        BitReader(bytes([0, 0, 0, 0, 0, 0x80]) + bytes([0xFF] * 5)).read_elias_delta()
    with pytest.raises(CorruptMessage):  # found by fuzzing (used to raise MemoryError)
        decode_symbols(bytes.fromhex("3cad28800000000153610a74a0088a5501210002"))
    reader = BitReader(b"\x81")
    reader.read_bits(1)
    with pytest.raises(CorruptMessage):  # nonzero padding
        reader.finish()


# --- symbols --------------------------------------------------------------------------------


def assert_symbols_round_trip(x: np.ndarray, alphabet_size: int | None = None) -> bytes:
    data = encode_symbols(x, alphabet_size)
    decoded = decode_symbols(data)
    assert decoded.dtype == np.int64 and decoded.ndim == 1
    np.testing.assert_array_equal(decoded, np.asarray(x).ravel().astype(np.int64))
    assert encode_symbols(x, alphabet_size) == data  # deterministic
    return data


@PROPERTY
@given(
    seed=st.integers(0, 2**32 - 1),
    alphabet=st.sampled_from([1, 2, 3, 7, 16, 255, 256, 257, 1000, 65536, 70000]),
    shape=st.sampled_from([(0,), (1,), (5,), (33,), (3, 7), (2, 3, 4), (1000,), (64, 40)]),
    concentration=st.sampled_from([0.05, 0.5, 5.0]),
    dtype=st.sampled_from([np.int64, np.int32, np.uint16, np.uint32, np.uint64]),
)
def test_symbols_round_trip(seed: int, alphabet: int, shape: tuple, concentration: float, dtype: type) -> None:
    rng = np.random.default_rng(seed)
    size = int(np.prod(shape))
    x = skewed_symbols(rng, alphabet, size, concentration).reshape(shape)
    if np.iinfo(dtype).max >= alphabet - 1:
        x = x.astype(dtype)
    assert_symbols_round_trip(x, alphabet)


def test_symbols_edge_cases() -> None:
    assert_symbols_round_trip(np.zeros(0, dtype=np.int64))
    assert_symbols_round_trip(np.zeros(0, dtype=np.int64), 256)
    assert_symbols_round_trip(np.array([0]), 1)
    assert_symbols_round_trip(np.array([5]), 256)
    assert_symbols_round_trip(np.array([69999]), 70000)
    assert_symbols_round_trip(np.zeros(17, dtype=np.uint8), 1)
    assert_symbols_round_trip(np.array([0, 1]))
    assert_symbols_round_trip(np.array([True, False, True]))
    assert_symbols_round_trip(np.array([3, 2**40, 7, 2**40]))  # huge sparse alphabet
    assert_symbols_round_trip(np.arange(70000)[::-1], 70000)  # every symbol once
    assert_symbols_round_trip(np.array([0, 65535] * 10), 65536)  # alphabet >> symbols used
    x = np.random.default_rng(1).integers(0, 70000, 50)  # fewer symbols than the alphabet
    assert_symbols_round_trip(x, 70000)


def test_zero_entropy_symbols_cost_almost_nothing() -> None:
    for value, n in [(0, 10**6), (255, 10**6), (12345, 999)]:
        data = assert_symbols_round_trip(np.full(n, value), max(value + 1, 256))
        assert len(data) <= 16, (value, n, len(data))
    assert len(encode_symbols(np.zeros(0, dtype=int))) == 1


def test_symbols_reject_invalid_input() -> None:
    with pytest.raises(ValueError):
        encode_symbols(np.array([-1, 2]))
    with pytest.raises(ValueError):
        encode_symbols(np.array([0, 7]), alphabet_size=7)
    with pytest.raises(ValueError):
        encode_symbols(np.array([0.0, 1.0]))


@pytest.mark.parametrize("alphabet", [7, 256])
@pytest.mark.parametrize("concentration", [0.1, 0.5, 2.0])
def test_symbol_size_near_entropy(alphabet: int, concentration: float) -> None:
    rng = np.random.default_rng(alphabet)
    x = skewed_symbols(rng, alphabet, 100_000, concentration)
    data = assert_symbols_round_trip(x, alphabet)
    entropy_bytes = empirical_entropy_bits(x) / 8
    # Reference price of the counts table: Elias delta of count + 1 for every letter.
    counts = np.bincount(x, minlength=alphabet)
    table_bytes = sum(elias_delta_bits(int(c) + 1) for c in counts) / 8
    assert len(data) <= 1.01 * entropy_bytes + table_bytes + 64, (len(data), entropy_bytes, table_bytes)
    assert len(data) >= entropy_bytes  # sanity: no coder beats the empirical entropy here


def test_large_alphabet_few_symbols_falls_back_to_uniform() -> None:
    x = np.random.default_rng(3).integers(0, 65536, 1000)
    data = assert_symbols_round_trip(x, 65536)
    assert len(data) <= 1000 * 16 / 8 + 16


def test_constriction_model_is_rebuilt_bit_exactly_from_counts() -> None:
    """The quantized model depends only on the integer counts, not on how they were computed."""
    import constriction

    rng = np.random.default_rng(5)
    x = skewed_symbols(rng, 300, 20_000, 0.3).astype(np.int32)
    counts = np.bincount(x, minlength=300)
    encoder_model = constriction.stream.model.Categorical(counts.astype(np.float64), perfect=False)
    coder = constriction.stream.stack.AnsCoder()
    coder.encode_reverse(x, encoder_model)
    compressed = coder.get_compressed()
    rebuilt = np.array([float(int(c)) for c in counts.tolist()])  # via Python ints
    decoder_model = constriction.stream.model.Categorical(rebuilt, perfect=False)
    decoder = constriction.stream.stack.AnsCoder(compressed)
    np.testing.assert_array_equal(decoder.decode(decoder_model, x.size), x)
    assert decoder.is_empty()


def test_information_bound_never_exceeds_a_valid_payload() -> None:
    """Decoders refuse payloads shorter than this bound, so it must hold for real payloads."""
    import constriction

    from bench.kit.coding.symbols import _information_bits

    rng = np.random.default_rng(9)
    for _ in range(300):
        k, n = int(rng.integers(2, 300)), int(rng.integers(1, 3000))
        x = skewed_symbols(rng, k, n, float(rng.choice([0.01, 0.3, 3.0]))).astype(np.int32)
        weights = np.bincount(x, minlength=k).astype(np.float64)
        coder = constriction.stream.stack.AnsCoder()
        coder.encode_reverse(x, constriction.stream.model.Categorical(weights, perfect=False))
        payload_bits = 8 * len(coder.get_compressed().astype("<u4").tobytes().rstrip(b"\0"))
        assert payload_bits >= _information_bits(weights, n, True) - 1
        assert _information_bits(weights, n, True) >= _information_bits(weights, n, False) - 1e-6


# --- positions ------------------------------------------------------------------------------


def assert_positions_round_trip(indices: np.ndarray, length: int) -> bytes:
    data = encode_positions(indices, length)
    decoded = decode_positions(data, length)
    assert decoded.dtype == np.int64
    np.testing.assert_array_equal(decoded, indices)
    assert encode_positions(indices, length) == data
    return data


@PROPERTY
@given(
    seed=st.integers(0, 2**32 - 1),
    length=st.sampled_from([0, 1, 2, 7, 64, 1000, 4097, 100_000]),
    density=st.sampled_from([0.0, 0.001, 0.01, 0.1, 0.3, 0.5, 0.9, 0.999, 1.0]),
    clustered=st.booleans(),
)
def test_positions_round_trip(seed: int, length: int, density: float, clustered: bool) -> None:
    rng = np.random.default_rng(seed)
    mask = rng.random(length) < density
    if clustered:  # long runs, to get large and irregular gaps
        mask = np.repeat(mask[: max(length // 50, 1)], 50)[:length]
    assert_positions_round_trip(np.flatnonzero(mask), length)


def test_positions_edge_cases() -> None:
    for length in (1, 2, 1000, 10**6):
        assert len(assert_positions_round_trip(np.zeros(0, dtype=np.int64), length)) == 1
        everything = assert_positions_round_trip(np.arange(length), length)
        assert len(everything) <= 8
        assert_positions_round_trip(np.array([0]), length)
        assert_positions_round_trip(np.array([length - 1]), length)
        assert_positions_round_trip(np.unique([0, length - 1]), length)
    assert_positions_round_trip(np.zeros(0, dtype=np.int64), 0)
    assert_positions_round_trip(np.array([2**40]), 2**41)  # one huge gap


def test_positions_reject_invalid_input() -> None:
    for bad in ([3, 3], [4, 2], [-1], [10]):
        with pytest.raises(ValueError):
            encode_positions(np.array(bad), 10)


@pytest.mark.parametrize("density", [0.01, 0.03, 0.3, 0.5])
def test_positions_size_near_entropy(density: float) -> None:
    length = 200_000
    mask = np.random.default_rng(int(density * 1000)).random(length) < density
    data = assert_positions_round_trip(np.flatnonzero(mask), length)
    entropy_bytes = length * h2(density) / 8
    assert len(data) <= 1.03 * entropy_bytes + 64, (len(data), entropy_bytes)


# --- floats ---------------------------------------------------------------------------------


@PROPERTY
@given(
    seed=st.integers(0, 2**32 - 1),
    precision=st.sampled_from(["float16", "float32"]),
    size=st.integers(0, 300),
    scale=st.sampled_from([1e-6, 1.0, 1e3, 6e4]),
    source=st.sampled_from([np.float64, np.float32, np.float16]),
)
def test_floats_round_trip(seed: int, precision: str, size: int, scale: float, source: type) -> None:
    values = (np.random.default_rng(seed).standard_normal(size) * scale).clip(-65000, 65000).astype(source)
    data = encode_floats(values, precision)
    decoded = decode_floats(data, precision)
    assert decoded.dtype == np.float32 and decoded.shape == (size,)
    assert len(data) == size * (2 if precision == "float16" else 4)
    rounded = round_to_precision(values, precision)
    assert rounded.dtype == np.float32
    np.testing.assert_array_equal(decoded.view(np.uint32), rounded.view(np.uint32))  # bit-identical
    if precision == "float32" and source != np.float64:
        np.testing.assert_array_equal(decoded, values.astype(np.float32))


def test_float16_rounding_semantics() -> None:
    values = np.array(
        [
            1 + 2**-11,  # tie: rounds to even (1.0)
            1 + 3 * 2**-11,  # tie: rounds to even (1 + 2**-9)
            1 + 2**-11 + 2**-40,  # just above the tie: up; float32 first would round to 1.0
            65504.0,
            65519.0,  # still rounds down to 65504
            -0.0,
            1e-8,  # underflows to zero: rounding, not an error
            2**-24,  # smallest subnormal
        ]
    )
    expected = np.array([1.0, 1 + 2**-9, 1 + 2**-10, 65504, 65504, -0.0, 0.0, 2**-24], dtype=np.float32)
    rounded = round_to_precision(values, "float16")
    np.testing.assert_array_equal(rounded.view(np.uint32), expected.view(np.uint32))
    np.testing.assert_array_equal(decode_floats(encode_floats(values, "float16"), "float16"), expected)
    assert round_to_precision(np.ones((2, 3)), "float16").shape == (2, 3)


def test_floats_reject_out_of_range_and_non_finite() -> None:
    for bad in ([65520.0], [-1e6], [np.inf], [np.nan]):
        with pytest.raises(ValueError, match="float16|NaN"):
            encode_floats(np.array(bad), "float16")
        with pytest.raises(ValueError):
            round_to_precision(np.array(bad), "float16")
    with pytest.raises(ValueError, match="float32"):
        encode_floats(np.array([1e39]), "float32")
    with pytest.raises(ValueError, match="precision"):
        encode_floats(np.ones(2), "bfloat16")
    with pytest.raises(CorruptMessage):
        decode_floats(b"\x00\x00\x00", "float16")
    with pytest.raises(CorruptMessage):
        decode_floats(np.array([np.inf], dtype="<f4").tobytes(), "float32")


# --- container ------------------------------------------------------------------------------


@PROPERTY
@given(st.lists(st.binary(max_size=300), max_size=6), st.integers(0, 1))
def test_container_round_trip(bodies: list[bytes], big: int) -> None:
    if big and bodies:
        bodies[0] = bytes(70_000)
    sections = {f"section{i}": body for i, body in enumerate(bodies)}
    message = pack_sections(sections)
    assert unpack_sections(message, list(sections)) == sections
    header = sum(elias_delta_bits(len(body) + 1) for body in bodies)
    assert len(message) == math.ceil(header / 8) + sum(map(len, bodies))


def test_container_detects_truncation_and_trailing_data() -> None:
    sections = {"a": b"xyz", "empty": b"", "b": bytes(range(200))}
    message = pack_sections(sections)
    for cut in range(len(message)):
        with pytest.raises(CorruptMessage):
            unpack_sections(message[:cut], list(sections))
    with pytest.raises(CorruptMessage):
        unpack_sections(message + b"\x00", list(sections))
    with pytest.raises(CorruptMessage):  # one section more than was written
        unpack_sections(message, [*sections, "extra"])
    assert pack_sections({}) == b"" and unpack_sections(b"", []) == {}
    with pytest.raises(CorruptMessage):
        unpack_sections(b"\x00", [])


def test_split_known_lengths_gives_the_unknown_section_what_the_others_leave() -> None:
    message = b"ab" + b"0123456789" + b"XYZ"
    assert split_known_lengths(message, {"head": 2, "body": None, "tail": 3}) == {
        "head": b"ab", "body": b"0123456789", "tail": b"XYZ"}
    assert split_known_lengths(b"XYZ", {"body": None, "tail": 3}) == {"body": b"", "tail": b"XYZ"}
    with pytest.raises(CorruptMessage):  # the fixed sections do not fit
        split_known_lengths(b"abXY", {"head": 2, "body": None, "tail": 3})
    for lengths in ({"a": 1, "b": 2}, {"a": None, "b": None}, {"a": -1, "b": None}):
        with pytest.raises(ValueError):
            split_known_lengths(message, lengths)


# --- corruption of coded messages -----------------------------------------------------------


def sample_messages() -> list[tuple[str, bytes, object]]:
    rng = np.random.default_rng(11)
    mask = rng.random(5000) < 0.2
    return [
        ("symbols", encode_symbols(skewed_symbols(rng, 7, 3000, 0.5)), None),
        ("symbols", encode_symbols(skewed_symbols(rng, 256, 3000, 0.5)), None),
        ("symbols", encode_symbols(rng.integers(0, 65536, 100)), None),
        ("symbols", encode_symbols(np.full(50, 3)), None),
        ("symbols", encode_symbols(np.array([3, 9, 3, 3])), None),
        ("positions", encode_positions(np.flatnonzero(mask), 5000), 5000),
        ("positions", encode_positions(np.array([1, 5, 9]), 10), 10),
        ("positions", encode_positions(np.arange(100), 100), 100),
    ]


def decode(kind: str, data: bytes, length: object) -> np.ndarray:
    return decode_symbols(data) if kind == "symbols" else decode_positions(data, length)


def test_truncated_or_extended_messages_raise() -> None:
    for kind, data, length in sample_messages():
        for cut in sorted({0, 1, 2, len(data) // 2, len(data) - 2, len(data) - 1}):
            if 0 <= cut < len(data):
                with pytest.raises(CorruptMessage):
                    decode(kind, data[:cut], length)
        for tail in (b"\x00", b"\x01", b"\xff\xff"):
            with pytest.raises(CorruptMessage):
                decode(kind, data + tail, length)


@GARBAGE
@given(st.binary(max_size=64), st.sampled_from(["symbols", "positions", "container"]))
def test_garbage_raises_only_corrupt_message(garbage: bytes, kind: str) -> None:
    try:
        if kind == "container":
            unpack_sections(garbage, ["a", "b", "c"])
        else:
            decode(kind, garbage, 10_000)
    except CorruptMessage:
        pass


def test_bit_flips_raise_only_corrupt_message() -> None:
    rng = np.random.default_rng(0)
    for kind, data, length in sample_messages():
        for _ in range(40):
            flipped = bytearray(data)
            flipped[rng.integers(len(data))] ^= 1 << int(rng.integers(8))
            try:
                decode(kind, bytes(flipped), length)
            except CorruptMessage:
                pass
