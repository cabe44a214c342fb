"""``verify probe``: analysis of good files, and a fuzz test of bad ones (ProbeError, one line, never another
exception)."""

from __future__ import annotations

import io
import json
import zipfile
import zlib

import numpy as np
import pytest
from numpy.lib import format as npy_format

from proofs import hessian_reference as hr
from proofs import linear_network as ln
from proofs import minima
from verify import probe

DIMS = (3, 4, 3, 2)


def network(kind: str, rng: np.random.Generator, dims=DIMS) -> tuple[list[np.ndarray], np.ndarray]:
    T = rng.standard_normal((dims[-1], dims[0]))
    return minima.GENERATORS[kind](T, dims, rng), T


def statistics(weights, T, Sigma_x=None, y2_noise=0.25) -> dict[str, np.ndarray]:
    Sx = np.eye(T.shape[1]) if Sigma_x is None else Sigma_x
    arrays = {f"W{k}": W for k, W in enumerate(weights, start=1)}
    return arrays | {"Sigma_x": Sx, "Sigma_yx": T @ Sx, "y2": np.array(np.trace(T @ Sx @ T.T) + y2_noise)}


def save(path, arrays: dict) -> str:
    np.savez(path, **arrays)
    return str(path)


def analyse(path) -> dict:
    weights, data, source = probe.load(path)
    return probe.analyze(weights, data)


# --- good files ------------------------------------------------------------------------------------


def test_canonical_minimum_is_flattest_and_coupled(tmp_path, rng):
    W, T = network("canonical", rng)
    result = analyse(save(tmp_path / "c.npz", statistics(W, T)))
    assert result["minimum"]["is_global_minimum"]
    assert result["sharpness"]["ratio"] == pytest.approx(1, abs=1e-9)
    assert result["verdict"].startswith("flattest minimum (ratio 1.0000)")
    assert result["minimum"]["loss_gap"] == pytest.approx(0, abs=1e-12)
    for row in result["layers"]:
        assert row["ratio"] == pytest.approx(1, abs=1e-12)
        assert row["gain"] == pytest.approx(row["target_gain"], rel=1e-12)
        assert row.get("coupling_angle_deg", 0) == pytest.approx(0, abs=1e-5)
    json.dumps(result, allow_nan=False)


def test_random_minimum_is_sharper_and_uncoupled(tmp_path, rng):
    W, T = network("random (S104)", rng)
    result = analyse(save(tmp_path / "r.npz", statistics(W, T)))
    assert result["minimum"]["is_global_minimum"]
    assert result["sharpness"]["ratio"] > 1.01
    assert "sharper than the flattest" in result["verdict"]
    assert max(r["coupling_angle_deg"] for r in result["layers"][:-1]) > 1
    assert result["sharpness"]["gd_stability_threshold"] == pytest.approx(2 / result["sharpness"]["lambda_max"])


def test_closed_form_agrees_with_finite_differences_at_a_minimum(tmp_path, rng):
    W, T = network("random (S104)", rng, dims=(2, 3, 2))
    weights, data, _ = probe.load(save(tmp_path / "r.npz", statistics(W, T)))
    fd = np.linalg.eigvalsh(hr.finite_difference_hessian(weights, data))[-1]
    assert probe.analyze(weights, data)["sharpness"]["lambda_max"] == pytest.approx(fd, rel=1e-7)


def test_samples_path(tmp_path, rng):
    X = rng.standard_normal((3, 40))
    T = rng.standard_normal((DIMS[-1], DIMS[0]))
    W = minima.canonical(ln.from_samples(X, T @ X).T, DIMS)
    result = analyse(save(tmp_path / "s.npz", {**{f"W{k}": w for k, w in enumerate(W, 1)}, "X": X, "Y": T @ X}))
    assert result["minimum"]["is_global_minimum"] and result["minimum"]["loss_gap"] == pytest.approx(0, abs=1e-10)
    assert result["sharpness"]["sigma_x"] == "general"
    assert result["sharpness"]["flattest_kind"].startswith("estimate")
    assert result["sharpness"]["lambda_max"] >= result["sharpness"]["flattest_value"]


def test_scaled_sigma_gives_c_times_the_printed_value(tmp_path, rng):
    W, T = network("canonical", rng)
    result = analyse(save(tmp_path / "c.npz", statistics(W, T, Sigma_x=2.5 * np.eye(3))))
    sharp = result["sharpness"]
    assert sharp["flattest_value"] == pytest.approx(2.5 * sharp["printed_flattest_value"])
    assert result["verdict"].startswith("flattest minimum")


def test_off_the_minimum_uses_the_true_hessian(tmp_path, rng):
    W, T = network("canonical", rng)
    W[0] = W[0] * 1.1
    result = analyse(save(tmp_path / "o.npz", statistics(W, T)))
    assert not result["minimum"]["is_global_minimum"]
    assert result["verdict"].startswith("not a global minimum")
    assert "finite-difference" in result["sharpness"]["lambda_max_note"]


def test_saddle_at_zero(tmp_path, rng):
    W = [np.zeros((DIMS[k + 1], DIMS[k])) for k in range(len(DIMS) - 1)]
    result = analyse(save(tmp_path / "z.npz", statistics(W, rng.standard_normal((DIMS[-1], DIMS[0])))))
    assert result["verdict"].startswith("critical point but not a global minimum")


def test_main_prints_tables_or_json(tmp_path, rng, capsys):
    W, T = network("canonical", rng)
    path = save(tmp_path / "c.npz", statistics(W, T))
    assert probe.main(path, as_json=False) == 0
    assert "flattest minimum" in capsys.readouterr().out
    assert probe.main(path, as_json=True) == 0
    assert json.loads(capsys.readouterr().out)["verdict"].startswith("flattest minimum")


# --- fuzz: malformed files ----------------------------------------------------------------------


def npy_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    npy_format.write_array(buf, array, allow_pickle=True)
    return buf.getvalue()


def declared(shape: tuple, descr: str = "<f8", data: bytes = b"") -> bytes:
    """A .npy header declaring ``shape`` followed by (too little) data."""
    buf = io.BytesIO()
    npy_format.write_array_header_1_0(buf, {"descr": descr, "fortran_order": False, "shape": shape})
    return buf.getvalue() + data


def members_with(arrays: dict, name: str, payload: bytes) -> dict[str, bytes]:
    """The archive members of ``arrays`` with member ``name`` replaced by raw bytes."""
    return {f"{k}.npy": npy_bytes(v) for k, v in arrays.items()} | {f"{name}.npy": payload}


def write_members(path, members: dict[str, bytes]) -> str:
    with zipfile.ZipFile(path, "w") as zf:
        for name, payload in members.items():
            zf.writestr(name, payload)
    return str(path)


def good(rng: np.random.Generator, samples: bool = False) -> dict[str, np.ndarray]:
    W, T = network("rotated flattest", rng)
    if samples:
        X = rng.standard_normal((3, 20))
        return {**{f"W{k}": w for k, w in enumerate(W, 1)}, "X": X, "Y": T @ X}
    return statistics(W, T)


def with_value(arrays: dict, name: str, value: float, rng) -> dict:
    out = dict(arrays)
    a = np.array(out[name], dtype=float)
    a.flat[rng.integers(a.size)] = value
    out[name] = a
    return out


def malformed_cases() -> list[tuple[str, object]]:
    """(description, builder(tmp_path, rng) -> path) for more than a hundred bad files."""
    cases: list[tuple[str, object]] = []

    def arrays_case(desc, edit, samples=False):
        cases.append((desc, lambda p, rng: save(p / "f.npz", edit(good(rng, samples), rng))))

    def raw_case(desc, members, samples=False):
        cases.append((desc, lambda p, rng: write_members(p / "f.npz", members(good(rng, samples), rng))))

    names = ["W1", "W2", "W3", "Sigma_x", "Sigma_yx"]
    for name in names + ["X", "Y"]:
        samples = name in ("X", "Y")
        arrays_case(f"missing {name}", lambda a, rng, n=name: {k: v for k, v in a.items() if k != n}, samples)
        for bad in (np.nan, np.inf, -np.inf):
            arrays_case(f"{bad} in {name}", lambda a, rng, n=name, b=bad: with_value(a, n, b, rng), samples)
        arrays_case(f"{name} empty rows", lambda a, rng, n=name: a | {n: np.zeros((0, a[n].shape[1]))}, samples)
        arrays_case(f"{name} empty columns", lambda a, rng, n=name: a | {n: np.zeros((a[n].shape[0], 0))}, samples)
        arrays_case(f"{name} 1-D", lambda a, rng, n=name: a | {n: a[n].ravel()}, samples)
        arrays_case(f"{name} 3-D", lambda a, rng, n=name: a | {n: a[n][None]}, samples)
        arrays_case(f"{name} 0-D", lambda a, rng, n=name: a | {n: np.array(1.0)}, samples)
        arrays_case(f"{name} extra row", lambda a, rng, n=name: a | {n: np.vstack([a[n], a[n][:1]])}, samples)
        arrays_case(f"{name} extra column", lambda a, rng, n=name: a | {n: np.hstack([a[n], a[n][:, :1]])}, samples)
        for dtype in (bool, complex, "U3", "S3", [("a", "f8"), ("b", "f8")], "M8[s]"):
            arrays_case(f"{name} of dtype {dtype}", lambda a, rng, n=name, d=dtype: a | {n: np.zeros(a[n].shape, dtype=d)},
                        samples)
        arrays_case(f"{name} object array", lambda a, rng, n=name: a | {n: a[n].astype(object)}, samples)
        raw_case(f"{name} declares 10^10 elements",
                 lambda a, rng, n=name: members_with(a, n, declared((100000, 100000))), samples)
        raw_case(f"{name} declares a negative size",
                 lambda a, rng, n=name: members_with(a, n, declared((-3, 4))), samples)
        raw_case(f"{name} truncated data", lambda a, rng, n=name: members_with(a, n, npy_bytes(a[n])[:-8]), samples)
        raw_case(f"{name} garbage header",
                 lambda a, rng, n=name: members_with(a, n, b"\x93NUMPY\x01\x00\x10\x00{'garbage': 1}   \n"), samples)
    for src, dst in (("W2", "W4"), ("W1", "W0"), ("W1", "W01"), ("W3", "w3"), ("Sigma_x", "sigma_x"), ("W2", "W")):
        arrays_case(f"rename {src} to {dst}", lambda a, rng, s=src, d=dst: {(d if k == s else k): v for k, v in a.items()})
    arrays_case("extra array", lambda a, rng: a | {"bias": np.ones(3)})
    arrays_case("W2 transposed", lambda a, rng: a | {"W2": a["W2"].T})
    arrays_case("Sigma_yx transposed", lambda a, rng: a | {"Sigma_yx": a["Sigma_yx"].T})
    arrays_case("Sigma_x not symmetric", lambda a, rng: a | {"Sigma_x": a["Sigma_x"] + np.triu(np.ones((3, 3)), 1)})
    arrays_case("Sigma_x indefinite", lambda a, rng: a | {"Sigma_x": np.diag([1.0, -0.5, 2.0])})
    arrays_case("Sigma_x zero", lambda a, rng: a | {"Sigma_x": np.zeros((3, 3))})
    arrays_case("Sigma_x singular", lambda a, rng: a | {"Sigma_x": np.diag([1.0, 1.0, 0.0])})
    arrays_case("Sigma_x condition 1e16", lambda a, rng: a | {"Sigma_x": np.diag([1.0, 1.0, 1e-16])})
    arrays_case("y2 negative", lambda a, rng: a | {"y2": np.array(-1.0)})
    arrays_case("y2 below the explained energy", lambda a, rng: a | {"y2": np.array(1e-6)})
    arrays_case("y2 vector", lambda a, rng: a | {"y2": np.ones(2)})
    arrays_case("y2 NaN", lambda a, rng: a | {"y2": np.array(np.nan)})
    arrays_case("y2 with samples", lambda a, rng: a | {"y2": np.array(1.0)}, samples=True)
    arrays_case("statistics and samples", lambda a, rng: a | {"X": np.ones((3, 5)), "Y": np.ones((3, 5))})
    arrays_case("only weights", lambda a, rng: {k: v for k, v in a.items() if k.startswith("W")})
    arrays_case("no weights", lambda a, rng: {k: v for k, v in a.items() if not k.startswith("W")})
    arrays_case("Y with another sample count", lambda a, rng: a | {"Y": a["Y"][:, :-1]}, samples=True)
    arrays_case("too few samples", lambda a, rng: a | {"X": a["X"][:, :2], "Y": a["Y"][:, :2]}, samples=True)
    arrays_case("collinear samples", lambda a, rng: a | {"X": np.vstack([a["X"][:2], a["X"][:1]])}, samples=True)
    arrays_case("d_x d_y over the limit", lambda a, rng: {"W1": np.ones((1, 2000)), "W2": np.ones((1000, 1)),
                                                          "Sigma_x": np.eye(2), "Sigma_yx": np.ones((1000, 2))})
    arrays_case("101 layers", lambda a, rng: {f"W{k}": np.ones((1, 1)) for k in range(1, 102)}
                | {"Sigma_x": np.eye(1), "Sigma_yx": np.ones((1, 1))})
    arrays_case("overflowing weights", lambda a, rng: a | {"W1": a["W1"] * 1e200, "W2": a["W2"] * 1e200})
    raw_case("member that is not .npy", lambda a, rng: members_with(a, "W1", npy_bytes(a["W1"])) | {"notes.txt": b"hi"})
    raw_case("member in a folder", lambda a, rng: members_with(a, "sub/W1", npy_bytes(a["W1"])))
    raw_case("empty archive", lambda a, rng: {})
    raw_case("member bigger than its header",
             lambda a, rng: members_with(a, "W1", npy_bytes(a["W1"]) + b"\0" * 200000))
    for n in range(12):
        cases.append((f"random bytes {n}", lambda p, rng, n=n: _bytes_file(p, rng.bytes(1 + 97 * n))))
    cases.append(("empty file", lambda p, rng: _bytes_file(p, b"")))
    cases.append(("text file", lambda p, rng: _bytes_file(p, b"W1 = [[1, 2], [3, 4]]\n")))
    cases.append(("a .npy, not a .npz", lambda p, rng: _bytes_file(p, npy_bytes(np.eye(3)))))
    cases.append(("pickle", lambda p, rng: _bytes_file(p, __import__("pickle").dumps({"W1": np.eye(2)}))))
    cases.append(("zip magic then garbage", lambda p, rng: _bytes_file(p, b"PK\x03\x04" + rng.bytes(300))))
    for cut in (0.3, 0.6, 0.9):
        cases.append((f"truncated archive at {cut}", lambda p, rng, c=cut: _truncated(p, rng, c)))
    cases.append(("corrupted compressed member", lambda p, rng: _corrupted(p, rng)))
    cases.append(("missing file", lambda p, rng: str(p / "nowhere.npz")))
    cases.append(("a folder", lambda p, rng: str(p)))
    return cases


def _bytes_file(tmp_path, payload: bytes) -> str:
    path = tmp_path / "f.npz"
    path.write_bytes(payload)
    return str(path)


def _truncated(tmp_path, rng, cut: float) -> str:
    path = save(tmp_path / "g.npz", good(rng))
    data = open(path, "rb").read()
    return _bytes_file(tmp_path, data[: int(len(data) * cut)])


def _corrupted(tmp_path, rng) -> str:
    """A compressed archive with bytes flipped inside the first member's data (the zip directory intact)."""
    path = tmp_path / "g.npz"
    np.savez_compressed(path, **good(rng))
    data = bytearray(path.read_bytes())
    for i in range(60, 90):
        data[i] ^= 0xFF
    return _bytes_file(tmp_path, bytes(data))


CASES = malformed_cases()


def test_there_are_more_than_a_hundred_cases():
    assert len(CASES) > 100


@pytest.mark.parametrize("desc,build", CASES, ids=[c[0] for c in CASES])
def test_malformed_file_raises_probe_error(desc, build, tmp_path, capsys):
    rng = np.random.default_rng(zlib.crc32(desc.encode()))
    path = build(tmp_path, rng)
    with pytest.raises(probe.ProbeError) as info:
        weights, data, _ = probe.load(path)
        probe.analyze(weights, data)
    message = str(info.value)
    assert message and "\n" not in message
    assert probe.main(path) == 2
    err = capsys.readouterr().err
    assert err.startswith("verify: error: ") and err.count("\n") == 1
