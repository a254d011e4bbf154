"""``cnn docs [TOPIC]``: the backprop guide, shipped inside the package.

``backprop.md`` in this folder is the one copy of the guide (the repository's
docs/backprop.md only points here), so an installed ``cnn`` can print the section
on a layer, a loss or a command wherever it runs. A section is a heading and
everything under it down to the next heading of the same or a higher level.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources

from cnn_cli.errors import CnnError

GUIDE = "backprop.md"

# topic -> the start of the heading it prints (after the "#"s); layer and loss names as configs spell them.
TOPICS = {
    "notes": "The lecture notes",
    "conventions": "1. Conventions",
    "shapes": "1.1 Shapes",
    "output-size": "1.2 The output-size formula",
    "channels-last": "1.3 Channels-last",
    "cache": "1.4 Forward keeps a cache",
    "batch-mean": "1.5 The batch mean",
    "layers": "2. Layers and losses",
    "conv2d": "2.1 Conv2D",
    "padding": "2.2 Padding",
    "maxpool2d": "2.3 MaxPool2D",
    "avgpool2d": "2.4 AvgPool2D",
    "relu": "2.5 ReLU",
    "leaky_relu": "2.6 LeakyReLU",
    "sigmoid": "2.7 Sigmoid",
    "tanh": "2.8 Tanh",
    "flatten": "2.9 Flatten",
    "dense": "2.10 Dense",
    "dropout": "2.11 Dropout",
    "softmax_cross_entropy": "2.12 Softmax cross-entropy",
    "binary_cross_entropy": "2.13 Binary cross-entropy",
    "sum_squared_error": "2.14 Sum of squared errors",
    "batchnorm": "2.15 BatchNorm2D and BatchNorm1D",
    "global_avg_pool": "2.16 Global average pooling",
    "optim": "3. After backward",
    "l2": "3.1 L2 regularisation",
    "seesaw": "Notes 001's seesaw updates",
    "sgd": "3.2 SGD",
    "momentum": "3.3 Momentum and Nesterov",
    "adam": "3.4 Adam",
    "schedules": "3.5 Learning-rate schedules",
    "clipping": "3.6 Gradient clipping",
    "init": "3.7 Initialisation",
    "initial-loss": "3.8 The initial loss",
    "trace": "4. Worked trace",
    "seed004": "Notes 004's network",
    "checks": "5. How we know it is right",
    "numeric": "5.1 Numeric gradient checks",
    "reference": "5.2 Loop references",
    "pytorch": "5.3 PyTorch autograd parity",
    "explain": "5.4 The notes' own numbers",
    "gradcheck": "5.5 A whole model",
    "exercises": "5.6 Exercises",
    "errata": "6. Where the notes and the code differ",
    "notes-errata": "The notes' own errata",
}
ALIASES = {
    "conv": "conv2d",
    "batchnorm2d": "batchnorm",
    "batchnorm1d": "batchnorm",
    "batch-norm": "batchnorm",
    "gap": "global_avg_pool",
    "global-avg-pool": "global_avg_pool",
    "maxpool": "maxpool2d",
    "avgpool": "avgpool2d",
    "leakyrelu": "leaky_relu",
    "softmax": "softmax_cross_entropy",
    "softmax-ce": "softmax_cross_entropy",
    "cross_entropy": "softmax_cross_entropy",
    "bce": "binary_cross_entropy",
    "sse": "sum_squared_error",
    "linear": "dense",
    "weight_decay": "l2",
    "l2-update": "l2",
    "exercise": "exercises",
    "ln-c": "initial-loss",
}


@dataclass(frozen=True)
class Section:
    level: int
    title: str
    text: str


def guide_text() -> str:
    """The whole guide, read from the installed package."""
    return resources.files(__package__).joinpath(GUIDE).read_text(encoding="utf-8")


def sections(text: str | None = None) -> list[Section]:
    """Every heading of the guide with the text under it (to the next heading of the same or a higher level)."""
    lines = (guide_text() if text is None else text).splitlines()
    headings = []
    in_code = False
    for number, line in enumerate(lines):
        if line.startswith("```"):
            in_code = not in_code
        match = None if in_code else re.match(r"^(#{1,4}) (.+)$", line)
        if match:
            headings.append((number, len(match.group(1)), match.group(2).strip()))
    found = []
    for position, (start, level, title) in enumerate(headings):
        end = next((n for n, lvl, _ in headings[position + 1 :] if lvl <= level), len(lines))
        found.append(Section(level, title, "\n".join(lines[start:end]).rstrip() + "\n"))
    return found


def docs_section(topic: str) -> str:
    """The section for ``topic``: a name from :data:`TOPICS`, an alias, a section number (``2.1``) or words of a heading."""
    wanted = topic.strip().lower()
    wanted = ALIASES.get(wanted, wanted)
    all_sections = sections()
    if wanted in TOPICS:
        prefix = TOPICS[wanted].lower()
        for section in all_sections:
            if section.title.lower().startswith(prefix):
                return section.text
        raise CnnError(f"docs: the guide has no section '{TOPICS[wanted]}' (topic {topic!r}); the installed guide is out of step")
    for section in all_sections:
        title = section.title.lower()
        if title.split(" ")[0].rstrip(".") == wanted.rstrip(".") or (len(wanted) >= 3 and wanted in title):
            return section.text
    raise CnnError(f"docs: unknown topic {topic!r}; try one of: {', '.join(TOPICS)} (or a section number such as 2.1)")


def list_topics() -> str:
    """Every topic with the heading it prints."""
    width = max(len(name) for name in TOPICS)
    lines = ["cnn docs TOPIC prints one section of the backprop guide:", ""]
    lines += [f"  {name:<{width}}  {heading}" for name, heading in TOPICS.items()]
    lines += ["", "A section number (cnn docs 2.1) or words from a heading (cnn docs 'bias gradient') work too."]
    return "\n".join(lines)
