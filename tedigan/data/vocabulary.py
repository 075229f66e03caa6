"""A domain's vocabulary: its attributes, their values and the words for them, and how prompts are read.

Each pipeline carries its own vocabulary (``vocabulary.json``) so that editing, layer analysis and metrics
never need to know which domain they serve. :meth:`Vocabulary.read` turns free text into
``{attribute: value}``:

- **phrases** (``"blond hair"``, ``"sunglasses"``, ``"clean-shaven"``) are matched whole, longest first; a
  match overlapping a longer one of the same attribute is dropped (``"no glasses"`` wins over
  ``"glasses"``), and attributes do not compete (``"long blond hair"`` names a style and a colour);
- **value words next to a noun**: an attribute may name nouns (``"hair"``) and, per value, words that
  describe it (``"golden"``, ``"ginger"``); a value word within a few words of the noun in the same clause
  counts (``"make the hair golden"``, ``"hair that is ginger"``);
- **negation**: a negator (``"remove"``, ``"no longer"``, ``"stop"``, ``"without"``...) shortly before a
  match in the same clause, or a post-negator (``"off"``, ``"away"``) right after it (``"take the glasses
  off"``), turns it into the attribute's *absent* value (``"remove the glasses"`` →
  eyewear none, ``"stop smiling"`` → a neutral mouth); an attribute without an absent value is then
  dropped, never read the wrong way round;
- **numbers**: an attribute may read a number written in one of its forms (``"# years old"``, ``"make him
  #"``; ``#`` stands for the number) as the value whose bin holds it (``"70 years old"`` → age group old); a
  number match competes with the attribute's phrases as a phrase of its own length (``"5 years old"`` wins
  over ``"old"``), and is negated like one;
- when several values of one attribute remain, the earliest in the text wins.

A prompt that names nothing reads as ``{}``; callers refuse it (or warn) instead of editing at random.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from tedigan.fs import atomic_write_text

__all__ = ["NEGATORS", "POST_NEGATORS", "VOCABULARY_NAME", "Reading", "Vocabulary", "VocabularyError"]

VOCABULARY_NAME = "vocabulary.json"
FORMAT_VERSION = 1

#: words that negate what follows them (within ``negation_window`` words, in the same clause)
NEGATORS: tuple[str, ...] = (
    "no",
    "not",
    "without",
    "remove",
    "removes",
    "removed",
    "removing",
    "take off",
    "takes off",
    "taking off",
    "take away",
    "get rid of",
    "rid of",
    "lose",
    "loses",
    "losing",
    "drop",
    "stop",
    "stops",
    "no longer",
    "never",
    "isn't",
    "aren't",
    "don't",
    "doesn't",
    "non",
    "minus",
    "less",
)
#: words that negate what precedes them ("take the hat off")
POST_NEGATORS: tuple[str, ...] = ("off", "away", "gone", "removed")
_CLAUSE = re.compile(r"[,;.!?]|\b(?:and|but|while|whereas|then)\b")
_TOKEN = re.compile(r"[\w'-]+")
_NUMBER = r"(?<![\d.])(\d{1,3}(?:\.\d+)?)(?!\d)"


class VocabularyError(ValueError):
    """A vocabulary file is malformed; the message names the file and the problem."""


@dataclass
class Reading:
    """What :meth:`Vocabulary.read` found: ``values`` (attribute → value), ``negated`` (attributes a negation
    turned to their absent value) and ``dropped`` (negated attributes with no absent value)."""

    values: dict[str, str] = field(default_factory=dict)
    negated: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.values)


@dataclass
class Vocabulary:
    """``attributes[a][v]``: the phrases naming value ``v`` of attribute ``a`` (every value listed, in order,
    even when it has no phrase). ``nouns[a]`` / ``words[a][v]``: value words read next to a noun.
    ``absent[a]``: the value a negation of ``a`` means (``"none"``, ``"neutral"``). ``numbers[a]``: numbers
    read as values, ``{"forms": ["# years old", ...], "bins": [[value, upper bound or None], ...]}`` (a number
    takes the first value whose exclusive upper bound is above it; ``None`` is no bound)."""

    domain: str
    attributes: dict[str, dict[str, list[str]]]
    nouns: dict[str, list[str]] = field(default_factory=dict)
    words: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    absent: dict[str, str] = field(default_factory=dict)
    negators: list[str] = field(default_factory=lambda: list(NEGATORS))
    post_negators: list[str] = field(default_factory=lambda: list(POST_NEGATORS))
    negation_window: int = 3
    noun_window: int = 3
    numbers: dict[str, dict[str, list]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for a, value in self.absent.items():
            if a not in self.attributes or value not in self.attributes[a]:
                raise VocabularyError(f"absent[{a!r}] = {value!r} is not a value of that attribute")
        for a in [*self.nouns, *self.words]:
            if a not in self.attributes:
                raise VocabularyError(f"nouns/words name an unknown attribute {a!r}")
        for a, per_value in self.words.items():
            for v in per_value:
                if v not in self.attributes[a]:
                    raise VocabularyError(f"words[{a!r}] names an unknown value {v!r}")
        numbers = {}
        for a, spec in self.numbers.items():
            forms, bins = list(spec.get("forms", [])), [list(b) for b in spec.get("bins", [])]
            if a not in self.attributes or any(v not in self.attributes[a] for v, _ in bins):
                raise VocabularyError(f"numbers[{a!r}] names an unknown attribute or value")
            if not bins or any(f.count("#") != 1 for f in forms):
                raise VocabularyError(f"numbers[{a!r}] needs bins, and one '#' in each form")
            bins = [[str(v), None if u is None or u == float("inf") else float(u)] for v, u in bins]
            uppers = [u for _, u in bins if u is not None]
            if uppers != sorted(uppers) or None in [u for _, u in bins[:-1]]:
                raise VocabularyError(f"numbers[{a!r}]: the bins' upper bounds must ascend (None only last)")
            numbers[a] = {"forms": [str(f) for f in forms], "bins": bins}
        self.numbers = numbers

    # ------------------------------------------------------------------------------------------ queries
    @property
    def attribute_values(self) -> dict[str, list[str]]:
        return {a: list(values) for a, values in self.attributes.items()}

    def describe(self, max_phrases: int = 2) -> str:
        """One line per attribute: its values with an example phrase each (for ``--help``)."""
        lines = []
        for a, values in self.attributes.items():
            shown = [f"{v} ({', '.join(p[:max_phrases])})" if p else v for v, p in values.items()]
            if self.numbers.get(a, {}).get("forms"):
                shown.append(f"or a number ({self.numbers[a]['forms'][0].replace('#', 'N')})")
            lines.append(f"{a.replace('_', ' ')}: {'; '.join(shown)}")
        return "\n".join(lines)

    # ------------------------------------------------------------------------------------------ reading
    @staticmethod
    def _pattern(phrase: str) -> re.Pattern:
        body = re.escape(phrase.lower()).replace(r"\ ", r"\s+")
        return re.compile(rf"(?<![\w-]){body}(?![\w-])")

    @cached_property
    def _phrase_patterns(self) -> dict[str, list[tuple[int, re.Pattern, str]]]:
        return {
            a: [(len(p), self._pattern(p), v) for v, phrases in values.items() for p in phrases]
            for a, values in self.attributes.items()
        }

    @cached_property
    def _number_patterns(self) -> dict[str, list[re.Pattern]]:
        out = {}
        for a, spec in self.numbers.items():
            bodies = [
                _NUMBER.join(re.escape(p).replace(r"\ ", r"\s+") for p in f.lower().split("#"))
                for f in spec["forms"]
            ]
            out[a] = [re.compile(rf"(?<![\w-]){body}(?![\w-])") for body in bodies]
        return out

    def _number_value(self, a: str, number: float) -> str | None:
        return next((v for v, upper in self.numbers[a]["bins"] if upper is None or number < upper), None)

    @staticmethod
    def _any(words: list[str]) -> re.Pattern:
        alts = "|".join(re.escape(n).replace(r"\ ", r"\s+") for n in sorted(words, key=len, reverse=True))
        return re.compile(rf"(?<![\w-])(?:{alts or '(?!)'})(?![\w-])")

    @cached_property
    def _negator_pattern(self) -> re.Pattern:
        return self._any(self.negators)

    @cached_property
    def _post_negator_pattern(self) -> re.Pattern:
        return self._any(self.post_negators)

    def _clauses(self, text: str) -> list[tuple[int, int]]:
        bounds, start = [], 0
        for m in _CLAUSE.finditer(text):
            bounds.append((start, m.start()))
            start = m.end()
        bounds.append((start, len(text)))
        return bounds

    def _matches(self, text: str, clauses: list[tuple[int, int]]) -> dict[str, list[tuple[int, int, str]]]:
        """Per attribute, the non-overlapping (start, end, value) matches: phrases, then noun-anchored words."""
        out: dict[str, list[tuple[int, int, str]]] = {}
        for a, pats in self._phrase_patterns.items():
            found = [
                (m.end() - m.start(), n, m.start(), m.end(), v) for n, p, v in pats for m in p.finditer(text)
            ]
            for p in self._number_patterns.get(a, []):  # a number in one of the forms: the value of its bin
                for m in p.finditer(text):
                    v = self._number_value(a, float(m.group(1)))
                    if v is not None:
                        found.append((m.end() - m.start(), m.end() - m.start(), m.start(), m.end(), v))
            found.sort(key=lambda f: (-f[0], -f[1], f[2]))
            taken: list[tuple[int, int, str]] = []
            for _, _, s, e, v in found:
                if all(e <= s2 or s >= e2 for s2, e2, _ in taken):
                    taken.append((s, e, v))
            # value words near one of the attribute's nouns, in the same clause
            for noun in self.nouns.get(a, []):
                for nm in self._pattern(noun).finditer(text):
                    c0, c1 = next((c0, c1) for c0, c1 in clauses if c0 <= nm.start() <= c1)
                    for v, ws in self.words.get(a, {}).items():
                        for w in ws:
                            for wm in self._pattern(w).finditer(text, c0, c1):
                                s, e = wm.start(), wm.end()
                                lo, hi = min(s, nm.start()), max(e, nm.end())
                                gap = len(_TOKEN.findall(text[lo:hi])) - len(_TOKEN.findall(text[s:e])) - 1
                                if gap <= self.noun_window and all(e <= s2 or s >= e2 for s2, e2, _ in taken):
                                    taken.append((s, e, v))
            if taken:
                out[a] = sorted(taken)
        return out

    def read(self, text: str) -> Reading:
        """Read ``text`` (see the module docs)."""
        low = " ".join(str(text).lower().split())
        clauses = self._clauses(low)
        negs = [(m.start(), m.end()) for m in self._negator_pattern.finditer(low)]
        posts = [(m.start(), m.end()) for m in self._post_negator_pattern.finditer(low)]
        reading = Reading()
        for a, matches in self._matches(low, clauses).items():
            for start, end, value in matches:  # earliest first
                c0, c1 = next((c0, c1) for c0, c1 in clauses if c0 <= start <= c1)
                before = any(
                    c0 <= ne <= start and len(_TOKEN.findall(low[ne:start])) <= self.negation_window - 1
                    for _, ne in negs
                )
                after = any(end <= ps <= c1 and not _TOKEN.findall(low[end:ps]) for ps, _ in posts)
                negated = before or after
                if negated:
                    if a in self.absent:
                        value = self.absent[a]
                        reading.negated.append(a)
                    else:
                        reading.dropped.append(a)
                        continue
                reading.values.setdefault(a, value)
        order = list(self.attributes)
        reading.values = {a: reading.values[a] for a in order if a in reading.values}
        return reading

    # -------------------------------------------------------------------------------------------- files
    def to_dict(self) -> dict[str, Any]:
        return {
            "format_version": FORMAT_VERSION,
            "domain": self.domain,
            "attributes": self.attributes,
            "nouns": self.nouns,
            "words": self.words,
            "absent": self.absent,
            **({"numbers": self.numbers} if self.numbers else {}),  # optional: older files have none
            "negators": self.negators,
            "post_negators": self.post_negators,
            "negation_window": self.negation_window,
            "noun_window": self.noun_window,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "vocabulary") -> Vocabulary:
        if not isinstance(data, dict):
            raise VocabularyError(f"{where}: expected a JSON object")
        version = data.get("format_version", 0)
        if not isinstance(version, int) or version > FORMAT_VERSION:
            raise VocabularyError(f"{where}: format version {version!r} is newer than this tedigan reads")
        try:
            return cls(
                domain=str(data["domain"]),
                attributes={
                    str(a): {str(v): [str(p) for p in ps] for v, ps in dict(values).items()}
                    for a, values in dict(data["attributes"]).items()
                },
                nouns={str(a): [str(n) for n in ns] for a, ns in dict(data.get("nouns", {})).items()},
                words={
                    str(a): {str(v): [str(w) for w in ws] for v, ws in dict(per).items()}
                    for a, per in dict(data.get("words", {})).items()
                },
                absent={str(a): str(v) for a, v in dict(data.get("absent", {})).items()},
                numbers={str(a): dict(spec) for a, spec in dict(data.get("numbers", {})).items()},
                negators=[str(n) for n in data.get("negators", NEGATORS)],
                post_negators=[str(n) for n in data.get("post_negators", POST_NEGATORS)],
                negation_window=int(data.get("negation_window", 3)),
                noun_window=int(data.get("noun_window", 3)),
            )
        except (KeyError, TypeError, ValueError) as err:
            if isinstance(err, VocabularyError):
                raise VocabularyError(f"{where}: {err}") from None
            raise VocabularyError(f"{where}: malformed vocabulary ({type(err).__name__}: {err})") from None

    def save(self, folder: str | Path) -> Path:
        return atomic_write_text(Path(folder) / VOCABULARY_NAME, json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> Vocabulary:
        """From ``vocabulary.json`` or the folder holding it."""
        path = Path(path)
        if path.is_dir():
            path = path / VOCABULARY_NAME
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            raise VocabularyError(f"{path} is not valid JSON ({err})") from None
        return cls.from_dict(data, where=str(path))
