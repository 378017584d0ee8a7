"""SpamAssassin real-text check: email parsing, the cache contract of scripts/fetch-datasets.sh,
and the F1 bar of the threat pipeline family on the real corpus.

The corpus is fetched at set-up time (``bash scripts/fetch-datasets.sh``). Without it the
corpus tests skip — except under ``CI=true``, where a missing corpus is a failure.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from sibyl.errors import NotFoundError
from sibyl.zoo._training import TrainResult
from sibyl.zoo.threat import spam
from tests.unit.zoo.threat._corpus import FETCH_SCRIPT as SCRIPT
from tests.unit.zoo.threat._corpus import require_corpus


@pytest.fixture(scope="module")
def spam_result() -> TrainResult:
    return spam.train_spam(require_corpus(), seed=0)


RAW = """From spammer@example.com  Thu Aug 22 13:17:22 2002
Return-Path: <spammer@example.com>
Received: from relay.example.com by mx.example.org
Subject: =?utf-8?b?Q2hlYXAgbWVkcyDigJQgbm93IQ==?=
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="XX"

--XX
Content-Type: text/plain; charset="utf-8"
Content-Transfer-Encoding: quoted-printable

Buy=20now, limited offer.
--XX
Content-Type: text/html; charset="us-ascii"

<html><style>p {color: red}</style><body><p>Click&nbsp;<a href="x">here</a></p></body></html>
--XX
Content-Type: application/octet-stream
Content-Transfer-Encoding: base64

UEsDBBQAAAAIAA==
--XX--
"""


def test_email_text_is_subject_and_decoded_bodies() -> None:
    text = spam.email_text(RAW)
    assert text.startswith("Cheap meds \u2014 now!")
    assert "Buy now, limited offer." in text
    assert "Click here" in text.replace("\xa0", " ")
    assert "color" not in text and "<" not in text  # tags and style sheets are gone
    assert "Received" not in text and "relay.example.com" not in text  # routing headers
    assert "UEsDB" not in text  # a binary attachment is not text


def test_missing_corpus_names_the_fetch_script(tmp_path: Path) -> None:
    assert not spam.corpus_available(tmp_path)
    with pytest.raises(NotFoundError, match=r"scripts/fetch-datasets\.sh"):
        spam.load_spam_assassin(tmp_path)


def test_fetch_script_pins_the_version_the_loader_reads() -> None:
    pinned = re.search(r'^SPAM_VERSION="([^"]+)"', SCRIPT.read_text(), re.MULTILINE)
    assert pinned is not None and pinned.group(1) == spam.SPAM_ASSASSIN_VERSION


def test_fetch_script_is_a_no_op_when_the_corpus_is_cached(tmp_path: Path) -> None:
    cached = spam.corpus_dir(tmp_path)
    cached.mkdir(parents=True)
    (cached / ".complete").touch()
    env = {**os.environ, "SIBYL_DATASETS_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        ["bash", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "already in" in done.stdout
    assert sorted(p.name for p in cached.iterdir()) == [".complete"]


def test_corpus_has_the_documented_shape() -> None:
    corpus = spam.load_spam_assassin(require_corpus())
    assert len(corpus) == spam.SPAM_ASSASSIN_EMAILS
    assert corpus["label"].eq("spam").mean() == pytest.approx(0.31, abs=0.01)
    assert set(corpus["group"]) == {"easy-ham-1", "easy-ham-2", "hard-ham-1", "spam-1", "spam-2"}
    assert corpus["text"].str.len().min() > 0
    # every raw message has a Return-Path header; only a few bodies quote one
    assert corpus["text"].str.contains("Return-Path:").mean() < 0.01


def test_spam_pipeline_meets_the_f1_bar(spam_result: TrainResult) -> None:
    m = spam_result.metrics
    print(f"spamassassin: {m}")
    assert m["spam_f1"] >= 0.97
    assert m["n_test"] == pytest.approx(0.25 * spam.SPAM_ASSASSIN_EMAILS, abs=1)
    assert spam.check_metrics(spam_result)["spamassassin_f1"] == m["spam_f1"]
