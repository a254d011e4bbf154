"""config/yaml_cache.py reads a config entry by entry and gives what parse_yaml gives for the whole file, errors included."""

from __future__ import annotations

import pytest

from cnn_cli.config.yaml_cache import YamlCache
from cnn_cli.config.yaml_text import parse_yaml
from cnn_cli.errors import ConfigError

BLOCK = (
    "name: tiny\nmodel:\n  layers:\n  - {type: relu, name: r}\n  - type: dense\n    out_features: 10\n  loss: mse\n"
    "train:\n  epochs: 3\n  seed: 1\n"
)

SAME_AS_WHOLE = {
    "block style, as cnn writes it": BLOCK,
    "comments and blank lines": "# top\nname: a  # the name\n\ntrain:\n  # inside\n  epochs: 2\n\n  seed: 0\n",
    "an anchor used in another entry": "base: &b {lr: 0.1}\noptimizer: *b\n",
    "an anchor used in another key of the section": "train:\n  a: &x [1, 2]\n  b: *x\n",
    "flow style at the top": "{name: a, train: {epochs: 2}}\n",
    "a document marker": "---\nname: a\n",
    "a top-level list under a key": "freeze:\n- conv1\n- fc1\n",
    "a literal block": "description: |\n  epochs: 99\n  more\ntrain:\n  epochs: 7\n",
    "yes as a key": "yes: 1\nname: a\n",
    "1e-3 as a float": "optimizer:\n  lr: 1e-3\n",
    "an empty section": "train:\nname: a\n",
    "an indent of 4": "train:\n    epochs: 2\n    seed: 3\n",
    "a key split over lines of a flow mapping": "data:\n  paths: {a: 1,\n    b: 2}\n",
    "a quoted key": "'name': a\n",
    "CRLF line ends": "name: a\r\ntrain:\r\n  epochs: 2\r\n",
    "no line end at the end": "name: a\ntrain:\n  epochs: 2",
    "JSON": '{"name": "a", "optimizer": {"lr": 1e-3, "betas": [0.9, 0.999]}, "train": {"epochs": 2, "tag": "\\u00e9", "x": null}}',
    "JSON with one key at two levels": '{"name": "a", "train": {"seed": 1}, "model": {"name": "b"}}',
    "a kept literal in a section": "train:\n  note: |+\n    kept\n\n  epochs: 2\n",
    "a kept literal at the end": "note: |+\n  kept\n\n",
    "spaces on the last line": "train:\n  epochs: 2\n  ",
}

REFUSED = {
    "a key twice at the top": ("name: a\nname: b\n", "duplicate key 'name'"),
    "a key twice in a section": ("train:\n  epochs: 1\n  epochs: 2\n", "duplicate key 'epochs'"),
    "a key twice in JSON": ('{"train": {"epochs": 1, "epochs": 2}}', "duplicate key 'epochs'"),
    "JSON nested too deep": ('{"x": ' + "[" * 100 + "]" * 100 + "}", "nested deeper than 64 levels"),
    "an alias to nothing": ("optimizer: *nothing\n", "nothing"),
    "a tab": ("name: a\n\tseed: 1\n", "YAML error"),
    "a form feed": ("name: 'a\x0cb: c'\n", "special characters are not allowed"),
    "a Python tag": ("name: !!python/object:os.system 1\n", "Python object tags are refused"),
    "nested too deep": ("x: " + "[" * 100 + "]" * 100 + "\n", "nested deeper than 64 levels"),
    "a billion laughs": (
        "a: &a [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]\n"
        + "".join(f"{chr(98 + i)}: &{chr(98 + i)} [" + ", ".join([f"*{chr(97 + i)}"] * 10) + "]\n" for i in range(6)),
        "expands to more than",
    ),
}


@pytest.mark.parametrize("text", list(SAME_AS_WHOLE.values()), ids=list(SAME_AS_WHOLE))
def test_entry_by_entry_reads_as_the_whole_file(text: str) -> None:
    cache = YamlCache()
    assert cache.parse(text, "c.yaml") == parse_yaml(text, "c.yaml")[0]
    assert cache.parse(text, "c.yaml") == parse_yaml(text, "c.yaml")[0]  # from the cache the second time


@pytest.mark.parametrize(("text", "fragment"), list(REFUSED.values()), ids=list(REFUSED))
def test_what_the_whole_file_refuses_is_refused_with_its_message(text: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as whole:
        parse_yaml(text, "c.yaml")
    with pytest.raises(ConfigError) as cached:
        YamlCache().parse(text, "c.yaml")
    assert str(cached.value) == str(whole.value)
    assert fragment in str(whole.value)


def test_configs_that_share_entries_parse_each_entry_once() -> None:
    cache = YamlCache()
    configs = [BLOCK.replace("seed: 1", f"seed: {seed}") for seed in range(50)]
    parsed = [cache.parse(text, "c.yaml") for text in configs]
    assert [config["train"]["seed"] for config in parsed] == list(range(50))
    assert parsed[0]["model"] is parsed[49]["model"]  # the same section text: one parse, one (read-only) value
    assert len(cache._entries) < 60  # 50 seeds + the few other entries, not 50 whole files' worth
