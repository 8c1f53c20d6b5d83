"""Inject faults into training, saving, loading and data on tiny data; print what each did.

    $ python scripts/fault_injection.py

Runs, in a temporary folder: a crash while saving, SIGTERM during training then
--resume, corrupted model folders (a changed byte, a missing file, a wrong
vocabulary size), a malicious pickle as checkpoint, and bad data (a missing
column, an empty split, a single class, an unsupported file). Prints a table of
scenario, expected, observed and PASS/FAIL; exits 0 only if all pass.
"""

import contextlib
import hashlib
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sentiment_gru.inference.folder import load_model, save_atomically  # noqa: E402
from sentiment_gru.cli import train_main  # noqa: E402
from sentiment_gru.errors import UserError  # noqa: E402
from sentiment_gru.data.synthetic import make_rows, write_csv  # noqa: E402

ARGS = ["--epochs", "4", "--patience", "4", "--batch-size", "8", "--vocab-size", "200", "--embedding-dim", "16",
        "--hidden-size", "16", "--learning-rate", "0.01", "--quiet"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


class _Evil:
    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (str(self.path), "w"))


def train_in_process(argv):
    """Exit status and stderr of the train command run in this process."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        status = train_main(argv)
    return status, err.getvalue().strip()


def train_subprocess(argv):
    return subprocess.Popen([sys.executable, str(ROOT / "scripts" / "train.py"), *argv], env=ENV,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def load_error(folder):
    try:
        load_model(folder)
        return "loaded"
    except UserError as exc:
        return str(exc)


def scores(folder):
    m = json.loads((folder / "metrics.json").read_text())
    return m["accuracy"], m["log_loss"], m["confusion_matrix"]


def run(tmp: Path):
    data = [f"--{s}-file={write_csv(tmp / f'{s}.csv', make_rows(n, seed=k))}" for s, n, k in (("train", 240, 1), ("validation", 60, 2), ("test", 60, 3))]
    reference = tmp / "reference"
    ref = train_subprocess([*data, *ARGS, "--output-dir", str(reference)])
    ref_status = ref.wait()

    # crash while saving
    before = (reference / "model.safetensors").read_bytes()

    def crash(folder):
        (folder / "model.safetensors").write_bytes(b"half")
        raise OSError("disk full")

    with contextlib.suppress(OSError):
        save_atomically(reference, crash)
    leftovers = [p.name for p in tmp.iterdir() if p.name.startswith(".reference")]
    intact = ref_status == 0 and (reference / "model.safetensors").read_bytes() == before and load_error(reference) == "loaded"
    yield "crash while saving", "old model intact, no staging left", f"intact={intact}, leftovers={leftovers}", intact and not leftovers

    # interrupt + resume
    out, ckpt = tmp / "model", tmp / "model.checkpoint" / "checkpoint.pt"
    proc = train_subprocess([*data, *ARGS, "--output-dir", str(out)])
    deadline = time.monotonic() + 120
    while not ckpt.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate()
    again = train_subprocess([*data, *ARGS, "--output-dir", str(out), "--resume"])
    resumed = again.wait()
    same = resumed == 0 and scores(out) == scores(reference)
    yield ("SIGTERM mid-training, --resume", "exit 143, then same metrics as uninterrupted",
           f"exit {proc.returncode}, resume exit {resumed}, same={same}", proc.returncode == 143 and "--resume" in err and same)

    # corrupt artifacts
    bad = tmp / "changed"
    shutil.copytree(reference, bad)
    with open(bad / "model.safetensors", "r+b") as handle:
        handle.seek(-1, 2)
        last = handle.read(1)
        handle.seek(-1, 2)
        handle.write(bytes([last[0] ^ 1]))
    msg = load_error(bad)
    yield "changed byte in weights", "checksum error", msg.split(": ", 1)[-1][:60], "checksum does not match" in msg
    missing = tmp / "missing"
    shutil.copytree(reference, missing)
    (missing / "tokenizer.json").unlink()
    msg = load_error(missing)
    yield "missing tokenizer.json", "'incomplete' error", msg.split(": ", 1)[-1][:60], "tokenizer.json missing" in msg
    vocab = tmp / "vocab"
    shutil.copytree(reference, vocab)
    config = json.loads((vocab / "config.json").read_text())
    config["model"]["vocab_size"] += 7
    (vocab / "config.json").write_text(json.dumps(config))
    manifest = json.loads((vocab / "MANIFEST.json").read_text())
    manifest["files"]["config.json"] = hashlib.sha256((vocab / "config.json").read_bytes()).hexdigest()
    (vocab / "MANIFEST.json").write_text(json.dumps(manifest))
    msg = load_error(vocab)
    yield "wrong vocabulary size", "vocabulary mismatch error", msg.split(": ", 1)[-1][:60], "but the model's embedding has" in msg

    # malicious pickle
    marker = tmp / "pwned"
    (tmp / "evil.checkpoint").mkdir()
    import torch

    torch.save({"format_version": 1, "x": _Evil(marker)}, tmp / "evil.checkpoint" / "checkpoint.pt")
    status, err = train_in_process([*data, *ARGS, "--output-dir", str(tmp / "evil"), "--resume"])
    yield ("malicious pickle checkpoint", "refused (exit 2), no file created", f"exit {status}, file created={marker.exists()}",
           status == 2 and "refused" in err and not marker.exists())

    # bad data
    cases = {
        "missing text column": (write_csv(tmp / "nocol.csv", [{"body": "good", "label": "positive"}] * 20), "No text column"),
        "empty split": (tmp / "empty.csv", "no usable rows"),
        "single class": (write_csv(tmp / "one.csv", make_rows(40, labels=("positive",))), "class"),
        "unsupported file": (tmp / "train.xlsx", "xlsx"),
        "non-UTF-8 bytes": (tmp / "latin1.csv", "not valid UTF-8 (lines 42)"),
        "labels mixing numbers and names": (tmp / "mixed.csv", "mixes numbers and names"),
    }
    good = make_rows(40)
    (tmp / "latin1.csv").write_bytes(
        ("text,label\n" + "".join(f"{r['text']},{r['label']}\n" for r in good) + "caf\xe9 cr\xe8me,negative\n").encode("latin-1")
    )
    write_csv(tmp / "mixed.csv", good[:20] + [{"text": "a fine film", "label": "1"}] + good[20:])
    (tmp / "empty.csv").write_text("text,label\n")
    (tmp / "train.xlsx").write_bytes(b"PK\x03\x04")
    for name, (file, expected) in cases.items():
        status, err = train_in_process([f"--train-file={file}", *ARGS, "--output-dir", str(tmp / "bad")])
        one_line = err.count("\n") == 0 and err.startswith("error:")
        yield name, f"exit 2, one line naming '{expected}'", f"exit {status}: {err[:60]}", status == 2 and one_line and expected.lower() in err.lower()


def main(argv=None) -> int:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for row in run(Path(tmp)):
            rows.append(row)
            print(f"{'PASS' if row[3] else 'FAIL'}  {row[0]}", file=sys.stderr, flush=True)
    widths = [max(len(str(r[i])) for r in rows + [("scenario", "expected", "observed", "")]) for i in range(3)]
    print(f"{'scenario':<{widths[0]}}  {'expected':<{widths[1]}}  {'observed':<{widths[2]}}  result")
    for name, expected, observed, ok in rows:
        print(f"{name:<{widths[0]}}  {expected:<{widths[1]}}  {observed:<{widths[2]}}  {'pass' if ok else 'FAIL'}")
    return 0 if all(r[3] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
