"""Captions from a scene description: what a viewer of the scene would say it contains.

    "an indoor room with a beige checkered floor, cream walls, a large red cube, two small blue
     cylinders and a green sphere"
    "a sunny yard on grassy ground with a white fence, two trees, a medium yellow ball and ..."

Objects with the same size class, colour and noun are counted together ("two small blue cylinders"),
larger things first. The phrasing (template, whether sizes are said, list joints) is drawn from the
scene seed, so a scene always gets the same caption and different scenes read differently.
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from .scene import SceneSpec

_NUMBERS = {1: "a", 2: "two", 3: "three", 4: "four", 5: "five", 6: "six", 7: "seven", 8: "eight", 9: "nine"}
_PLURAL = {"box": "boxes", "tree": "trees", "fence": "fences"}
_SIZE_ORDER = {"large": 0, "medium": 1, "small": 2}
_SKY_WORDS = {"sunny": "sunny", "hazy": "hazy", "overcast": "overcast", "evening": "evening"}


def _article(phrase: str) -> str:
    return ("an " if phrase[0] in "aeiou" else "a ") + phrase


def _count_phrase(count: int, words: str, noun: str) -> str:
    if count == 1:
        return _article(f"{words} {noun}".strip())
    number = _NUMBERS.get(count, "several")
    return f"{number} {words} {_PLURAL.get(noun, noun + 's')}".replace("  ", " ")


def _join(items: list[str], oxford: bool) -> str:
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + ("," if oxford and len(items) > 2 else "") + " and " + items[-1]


def _surface(material, noun: str) -> str:
    pattern = "" if material.pattern == "plain" else material.pattern
    return " ".join(w for w in (material.colour, pattern, noun) if w)


def object_phrases(scene: SceneSpec, with_sizes: bool = True, limit: int = 6) -> list[str]:
    """Counted noun phrases for the scene's captioned objects, large first ("two small blue cylinders")."""
    groups = Counter(
        (o.size_class if with_sizes else "", o.colour, o.label) for o in scene.objects if o.role == "object"
    )
    order = sorted(groups.items(), key=lambda kv: (_SIZE_ORDER.get(kv[0][0], 3), -kv[1], kv[0][2], kv[0][1]))
    phrases = [_count_phrase(n, f"{size} {colour}".strip(), label) for (size, colour, label), n in order]
    if len(phrases) > limit:
        rest = sum(n for _, n in order[limit:])
        phrases = phrases[:limit] + [f"{_NUMBERS.get(rest, 'several') if rest > 1 else 'one'} more object"
                                     + ("s" if rest > 1 else "")]  # fmt: skip
    return phrases


def caption_for(scene: SceneSpec) -> str:
    """A one-sentence caption of `scene` (lower case, no final full stop), the same every time."""
    rng = np.random.default_rng([scene.seed, 3])
    things = object_phrases(scene, with_sizes=bool(rng.random() < 0.8), limit=int(rng.integers(4, 8)))
    oxford = bool(rng.random() < 0.5)
    if scene.kind == "indoor":
        floor = _surface(scene.floor, "floor")
        walls = _surface(scene.wall, "walls") if scene.wall is not None else "bare walls"
        room = _choice(rng, ["an indoor room", "a room", "a walled room"])
        if scene.ceiling is None:
            room = f"{room} open to the {_SKY_WORDS[scene.sky]} sky"
        template = int(rng.integers(3))
        if template == 0:
            return f"{room} with {_article(floor)}, {walls}, " + _join(things, oxford)
        if template == 1:
            return f"{room} with {walls} and {_article(floor)}, containing " + _join(things, oxford)
        return _join(things, oxford) + f" in {room} with {walls} and {_article(floor)}"
    sky = _SKY_WORDS[scene.sky]
    yard = _choice(rng, ["yard", "courtyard", "open yard"])
    place = f"a yard in the {sky}" if sky == "evening" else _article(f"{sky} {yard}")
    extras = []
    trees = sum(o.role == "tree" for o in scene.objects)
    if trees:
        extras.append(_count_phrase(trees, "", "tree"))
    fence = [o for o in scene.objects if o.role == "fence"]
    if fence:
        extras.append(_article(f"{fence[0].colour} fence"))
    if any(o.role == "backdrop" for o in scene.objects):
        extras.append(_choice(rng, ["buildings in the distance", "buildings around it", "distant buildings"]))
    ground = f"{scene.floor.colour} ground" if scene.floor.colour else "open ground"
    template = int(rng.integers(3))
    if template == 0:
        return f"{place} on {ground} with " + _join(extras + things, oxford)
    if template == 1:
        return f"{place} with " + _join(things + extras, oxford) + f" on {ground}"
    return (
        _join(things, oxford)
        + f" in {place} on {ground}"
        + (" with " + _join(extras, oxford) if extras else "")
    )


def _choice(rng: np.random.Generator, options: list[str]) -> str:
    return options[int(rng.integers(len(options)))]
