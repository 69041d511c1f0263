"""Language codes: whatever a user types (``ny``, ``nya``, ``nya_Latn``, ``ms``, ``zh-Hant``) as one record.

Benchmarks name their per-language tasks with different codes: Belebele and FLORES use ISO 639-3 plus a
script (``belebele_zsm_Latn``), XNLI and Global-MMLU use ISO 639-1 (``xnli_sw``), a few use English
names. :func:`parse_language` gives every code and name a language goes by. It lives in core because
the settings check (``project.language``), language identification and the task catalogue all need
it, and core may import nothing above itself.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import LangbuildError

# Macrolanguage -> the individual language that FLORES-200-style benchmarks index it by.
MACRO_DEFAULT = {
    "ara": "arb", "aze": "azj", "est": "ekk", "fas": "pes", "ful": "fuv", "kau": "knc", "kur": "kmr",
    "lav": "lvs", "mlg": "plt", "mon": "khk", "msa": "zsm", "nep": "npi", "nor": "nob", "orm": "gaz",
    "ori": "ory", "pus": "pbt", "que": "quy", "sqi": "als", "swa": "swh", "uzb": "uzn", "yid": "ydd",
    "zho": "cmn", "din": "dik", "grn": "gug", "kon": "ktu", "tmh": "taq",
}
_DEFAULT_OF_MACRO = {individual: macro for macro, individual in MACRO_DEFAULT.items()}

# Codes some task families use that ISO does not give the language (country codes, near-synonyms).
EXTRA_CODES = {"jpn": ("jp",), "tgl": ("fil",), "fil": ("tgl", "tl")}

# Withdrawn ISO 639-1 codes people still type.
DEPRECATED_ISO1 = {"iw": "he", "in": "id", "ji": "yi", "jw": "jv", "mo": "ro"}

# English names some families use where ISO's differ ("Modern Greek (1453-)", "Rundi").
NAME_ALIASES = {"ell": ("greek",), "run": ("kirundi",), "pcm": ("pidgin",)}

# Scripts of well-known languages not written in Latin; everything else defaults to Latn.
_SCRIPT_TABLE = """
Arab: arb ara ary arz apc ajp acm acq aeb ars ayl afb arq pes fas prs urd pbt pus snd uig ckb azb kas bcc
Deva: hin mar npi nep san mai bho mag awa hne bgc bra dhd rwr swv mwr
Hans: cmn zho wuu
Hant: yue
Jpan: jpn
Hang: kor
Cyrl: rus ukr bel bul srp mkd kaz kir tgk khk mon tat bak chv sah oss bxr kpv udm myv mdf
Ethi: amh tir gez
Thai: tha
Hebr: heb ydd yid
Grek: ell
Geor: kat
Armn: hye
Beng: ben asm mni
Taml: tam
Telu: tel
Knda: kan
Mlym: mal
Gujr: guj
Guru: pan
Orya: ory ori
Sinh: sin
Mymr: mya shn
Khmr: khm
Laoo: lao
Tibt: bod dzo
Thaa: div
Tfng: tzm zgh
Nkoo: nqo
Olck: sat
Cher: chr
Cans: iku
"""
DEFAULT_SCRIPT = {code: script for line in _SCRIPT_TABLE.strip().splitlines()
                  for script, codes in [line.split(":")] for code in codes.split()}

# Chinese written in these regions defaults to Traditional characters.
_HANT_REGIONS = {"TW", "HK", "MO"}

_USAGE = "pass an ISO 639-1 or 639-3 code, optionally with a script, e.g. 'ny', 'nya' or 'nya_Latn'"


@dataclass(frozen=True)
class Language:
    """A language as task names spell it: ``iso3`` is the individual language, ``codes`` every alias."""

    iso3: str                # individual-language code benchmarks index by, e.g. "zsm" for Malay
    iso1: str | None         # two-letter code, e.g. "ms"; None for most low-resource languages
    script: str              # ISO 15924, e.g. "Latn"
    name: str                # English name, e.g. "Standard Malay"
    codes: frozenset[str]    # every code a task may use: ms, msa, zsm
    names: frozenset[str]    # lower-case English names a task may use: malay, standard_malay

    @property
    def tag(self) -> str:
        """The FLORES-200 style code, e.g. ``zsm_Latn``."""
        return f"{self.iso3}_{self.script}"


def _pycountry():
    """pycountry is imported late so that a missing install fails with a fix, not an ImportError."""
    try:
        import pycountry
    except ImportError as err:  # pragma: no cover - a dependency of langbuild
        raise LangbuildError("pycountry is missing: pip install pycountry") from err
    return pycountry


def _lookup(code: str):
    """The ISO 639-3 record of a two- or three-letter code, or None."""
    languages = _pycountry().languages
    if len(code) == 2:
        return languages.get(alpha_2=DEPRECATED_ISO1.get(code, code))
    return languages.get(alpha_3=code) or languages.get(bibliographic=code)


def _split_code(code: str) -> tuple[str, str | None, str | None]:
    """``nya-Latn`` / ``zh_Hant_TW`` / ``pt-BR`` -> (language, script or None, region or None)."""
    parts = re.split(r"[-_]", code.strip())
    language, script, region = parts[0].lower(), None, None
    rest = parts[1:]
    if rest and re.fullmatch(r"[A-Za-z]{4}", rest[0]):
        script = rest.pop(0).title()
    if rest and re.fullmatch(r"[A-Za-z]{2}|\d{3}", rest[0]):
        region = rest.pop(0).upper()
    if rest or not re.fullmatch(r"[a-z]{2,3}", language):
        raise LangbuildError(f"unknown language code '{code}': {_USAGE}")
    return language, script, region


def _record_name(record) -> str:
    return re.sub(r"\s*\(.*?\)", "", record.name).strip()


def _names_of(records) -> frozenset[str]:
    """Lower-case, underscore-joined English names, as xlsum_swahili and include_base_44_malay use."""
    names = set()
    for record in records:
        names.add(_record_name(record).lower().replace(" ", "_"))
        names.update(NAME_ALIASES.get(record.alpha_3, ()))
    return frozenset(names)


def _related(record) -> tuple:
    """(individual record, macrolanguage record or None) for the record the user named."""
    languages = _pycountry().languages
    if record.scope == "M" and record.alpha_3 in MACRO_DEFAULT:
        return languages.get(alpha_3=MACRO_DEFAULT[record.alpha_3]), record
    macro = _DEFAULT_OF_MACRO.get(record.alpha_3)
    return record, languages.get(alpha_3=macro) if macro else None


def _default_script(iso3: str, macro: str | None, region: str | None) -> str:
    if region in _HANT_REGIONS and "zho" in (iso3, macro):
        return "Hant"
    return DEFAULT_SCRIPT.get(iso3) or DEFAULT_SCRIPT.get(macro or "") or "Latn"


def _check_script(script: str, code: str) -> str:
    if script in ("Hans", "Hant") or _pycountry().scripts.get(alpha_4=script):
        return script
    raise LangbuildError(f"unknown script '{script}' in language code '{code}': use an ISO 15924 script such as Latn, Arab or Cyrl")


def parse_language(code: str) -> Language:
    """Normalise a language code (``ny``, ``nya``, ``nya_Latn``, ``ms``, ``zh-Hant``) to a :class:`Language`."""
    language, script, region = _split_code(str(code))
    record = _lookup(language)
    if record is None or record.scope == "S":  # "und", "mul", "zxx" name no language
        raise LangbuildError(f"unknown language code '{code}': {_USAGE}")
    individual, macro = _related(record)
    records = [r for r in (individual, macro) if r is not None]
    codes = {r.alpha_3 for r in records} | {r.alpha_2 for r in records if hasattr(r, "alpha_2")}
    codes.update(EXTRA_CODES.get(individual.alpha_3, ()))
    typed_iso1 = language if len(language) == 2 else None
    iso1 = DEPRECATED_ISO1.get(typed_iso1, typed_iso1) or next((r.alpha_2 for r in records if hasattr(r, "alpha_2")), None)
    macro_code = macro.alpha_3 if macro else None
    return Language(
        iso3=individual.alpha_3,
        iso1=iso1,
        script=_check_script(script, code) if script else _default_script(individual.alpha_3, macro_code, region),
        name=_record_name(individual),
        codes=frozenset(codes | ({iso1} if iso1 else set())),
        names=_names_of(records),
    )


# --- finding a language by what a person types ----------------------------------------------------------

MAX_NAME_MATCHES = 9  # a choice list longer than this is no help: the person should type more


@dataclass(frozen=True)
class LanguageChoice:
    """One ISO 639-3 record a typed name may mean: the code to write into langbuild.toml and its name."""

    code: str   # the ISO 639-3 code, e.g. "nya"; parse_language() accepts it
    name: str   # ISO's English name, e.g. "Swahili (macrolanguage)"


def _plain_name(name: str) -> str:
    """'Swahili (macrolanguage)' -> 'swahili': what a person would type for it."""
    return re.sub(r"\s+", " ", re.sub(r"\s*\(.*?\)", "", name)).strip().lower()


def _usable(record) -> bool:
    """Individual languages and macrolanguages; special codes (und, mul, zxx) name no language."""
    return record.scope != "S" and getattr(record, "type", "L") in ("L", "C", "A", "H")


def _all_names(record) -> list[str]:
    names = [record.name] + [getattr(record, key) for key in ("common_name", "inverted_name") if hasattr(record, key)]
    return [_plain_name(name) for name in names] + list(NAME_ALIASES.get(record.alpha_3, ()))


def _name_matches(wanted: str) -> tuple[list[LanguageChoice], list[LanguageChoice], list[LanguageChoice]]:
    """(exact name matches, names starting with ``wanted``, names containing it), each sorted shortest first."""
    exact, starts, contains = [], [], []
    for record in _pycountry().languages:
        if not _usable(record):
            continue
        names = _all_names(record)
        choice = LanguageChoice(record.alpha_3, record.name)
        if wanted in names:
            exact.append(choice)
        elif any(name.startswith(wanted) for name in names):
            starts.append(choice)
        elif len(wanted) >= 4 and any(wanted in name for name in names):
            contains.append(choice)
    order = lambda c: (len(c.name), c.name)  # noqa: E731 - the one sort key of three lists
    return sorted(exact, key=order), sorted(starts, key=order), sorted(contains, key=order)


def find_languages(text: str) -> list[LanguageChoice]:
    """The languages a typed name may mean: exact name matches first, else names starting with it, else
    names containing it; at most MAX_NAME_MATCHES + 1 (so a caller can tell 'too many' from 'these')."""
    wanted = _plain_name(text.replace("_", " "))
    if len(wanted) < 2:
        return []
    exact, starts, contains = _name_matches(wanted)
    return (exact or starts or contains)[:MAX_NAME_MATCHES + 1]


def language_choices(text: str) -> list[LanguageChoice]:
    """What a person typed as a language, as ISO 639 choices: a valid code first (kept as typed, so
    ``nya_Latn`` stays ``nya_Latn``), then any language whose name it is exactly ("ga" is Irish's code
    and the name of Ga); otherwise the names it matches. Empty: nothing matches."""
    text = text.strip()
    try:
        language = parse_language(text)
    except LangbuildError:
        return find_languages(text)
    by_name = _name_matches(_plain_name(text))[0] if len(text) <= 3 else []
    return [LanguageChoice(text, language.name)] + [c for c in by_name if c.code != language.iso3]
