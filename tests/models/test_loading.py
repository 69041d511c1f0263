"""Packaged models: a tokenizer read alone from the GGUF until the weights are converted."""

from __future__ import annotations

from langbuild.models.loading import (
    converted_folder,
    converted_tokenizer_folder,
    load_tokenizer,
    resolve_tokenizer,
)
from tests.tiny import chichewa_split, english_lines


def test_a_packaged_tokenizer_is_converted_alone_until_the_model_is(tmp_path, monkeypatch):
    monkeypatch.setenv("LANGBUILD_CACHE", str(tmp_path / "cache"))  # nothing converted yet
    folder = resolve_tokenizer("smollm2-135m")
    assert folder == converted_tokenizer_folder("smollm2-135m")
    assert not list(folder.glob("*.safetensors")) and not (folder / "config.json").exists()  # no weights read
    tokenizer = load_tokenizer(folder)
    assert len(tokenizer) == 49152 and tokenizer.chat_template  # SmolLM2's vocabulary and its chat template
    for text in chichewa_split()[1][:50] + english_lines()[:50]:
        assert tokenizer.decode(tokenizer(text, add_special_tokens=False)["input_ids"]) == text

    stamp = (folder / "tokenizer.json").stat().st_mtime_ns
    assert resolve_tokenizer("smollm2-135m") == folder  # cached: not converted again
    assert (folder / "tokenizer.json").stat().st_mtime_ns == stamp

    converted = converted_folder("smollm2-135m")  # once the whole model is converted, its folder serves
    converted.mkdir(parents=True)
    (converted / "config.json").write_text("{}")
    assert resolve_tokenizer("smollm2-135m") == converted


def test_each_packaged_model_names_its_distribution_as_pip_installs_it():
    from importlib import metadata

    from langbuild.models.loading import PACKAGED, _package_version

    for spec in PACKAGED.values():
        assert f"{spec.distribution}==" in spec.pip_install
        assert _package_version(spec) == metadata.version(spec.distribution) != "unknown"  # both are installed here
