"""Language codes as users type them, normalised to every code and name a task may use."""

import pytest

from langbuild.core.errors import LangbuildError
from langbuild.core.languages import parse_language


@pytest.mark.parametrize("code, iso3, iso1, script, codes", [
    ("ny", "nya", "ny", "Latn", {"ny", "nya"}),
    ("nya", "nya", "ny", "Latn", {"ny", "nya"}),
    ("nya_Latn", "nya", "ny", "Latn", {"ny", "nya"}),
    ("NYA-latn", "nya", "ny", "Latn", {"ny", "nya"}),
    ("ms", "zsm", "ms", "Latn", {"ms", "msa", "zsm"}),
    ("zsm", "zsm", "ms", "Latn", {"ms", "msa", "zsm"}),
    ("msa", "zsm", "ms", "Latn", {"ms", "msa", "zsm"}),
    ("sw", "swh", "sw", "Latn", {"sw", "swa", "swh"}),
    ("swh", "swh", "sw", "Latn", {"sw", "swa", "swh"}),
    ("en", "eng", "en", "Latn", {"en", "eng"}),
    ("ar", "arb", "ar", "Arab", {"ar", "ara", "arb"}),
    ("zh", "cmn", "zh", "Hans", {"zh", "zho", "cmn"}),
    ("zh_Hant", "cmn", "zh", "Hant", {"zh", "zho", "cmn"}),
    ("zh-TW", "cmn", "zh", "Hant", {"zh", "zho", "cmn"}),
    ("sr_Cyrl", "srp", "sr", "Cyrl", {"sr", "srp"}),
    ("sr_Latn", "srp", "sr", "Latn", {"sr", "srp"}),
    ("fa", "pes", "fa", "Arab", {"fa", "fas", "pes"}),
    ("et", "ekk", "et", "Latn", {"et", "est", "ekk"}),
    ("no", "nob", "no", "Latn", {"no", "nor", "nob", "nb"}),
    ("am", "amh", "am", "Ethi", {"am", "amh"}),
    ("hi", "hin", "hi", "Deva", {"hi", "hin"}),
    ("ru", "rus", "ru", "Cyrl", {"ru", "rus"}),
    ("th", "tha", "th", "Thai", {"th", "tha"}),
    ("iw", "heb", "he", "Hebr", {"he", "heb"}),
    ("ary", "ary", None, "Arab", {"ary"}),  # a dialect is not its macrolanguage's default: no "ar" tasks
    ("bbj", "bbj", None, "Latn", {"bbj"}),
    ("pt-BR", "por", "pt", "Latn", {"pt", "por"}),
])
def test_parse_language(code, iso3, iso1, script, codes):
    language = parse_language(code)
    assert (language.iso3, language.iso1, language.script) == (iso3, iso1, script)
    assert language.codes == codes
    assert language.tag == f"{iso3}_{script}"


def test_parse_language_names_for_tasks_that_use_them():
    assert "malay" in parse_language("ms").names
    assert "swahili" in parse_language("sw").names
    assert "greek" in parse_language("el").names


@pytest.mark.parametrize("code", ["xx", "qqq", "und", "abcd", "", "nya_Latin", "nya_Latn_US_x", "n1", "nya_Qqqq"])
def test_parse_language_rejects_bad_codes(code):
    with pytest.raises(LangbuildError) as caught:
        parse_language(code)
    message = str(caught.value)
    assert "\n" not in message and ("nya_Latn" in message or "ISO 15924" in message)
